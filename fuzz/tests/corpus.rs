//! Every fuzz target over its seeds, its committed corpus (`fuzz/corpus/`)
//! and the inputs of past findings (`fuzz/regressions/`): the short run of
//! the fuzz targets in the test command, without AFL++.

use std::path::Path;

use sente_lite_fuzz::{TARGETS, Target, seeds};

/// The files of `dir/<target>`, sorted (none when the folder does not exist).
fn inputs(dir: &str, target: &str) -> Vec<(String, Vec<u8>)> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir).join(target);
    let Ok(entries) = std::fs::read_dir(&folder) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .map(|entry| entry.expect("a readable folder").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let data = std::fs::read(&path).expect("a readable file");
            (path.display().to_string(), data)
        })
        .collect()
}

fn run(target: &Target, name: &str, data: &[u8]) {
    let outcome = std::panic::catch_unwind(|| (target.run)(data));
    if let Err(panic) = outcome {
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("(no message)");
        panic!("target {} fails on {name}: {message}", target.name);
    }
}

#[test]
fn every_target_takes_its_seeds() {
    let seeds = seeds();
    for target in TARGETS {
        let mine: Vec<_> = seeds.iter().filter(|s| s.target == target.name).collect();
        assert!(!mine.is_empty(), "target {} has no seeds", target.name);
        for seed in mine {
            run(target, &seed.name, &seed.data);
        }
    }
}

#[test]
fn every_target_takes_its_corpus() {
    for target in TARGETS {
        let corpus = inputs("corpus", target.name);
        assert!(
            !corpus.is_empty(),
            "target {} has no committed corpus (scripts/fuzz --minimise writes it)",
            target.name
        );
        for (name, data) in corpus {
            run(target, &name, &data);
        }
    }
}

#[test]
fn every_past_finding_stays_fixed() {
    for target in TARGETS {
        for (name, data) in inputs("regressions", target.name) {
            run(target, &name, &data);
        }
    }
}

#[test]
fn the_spec_examples_are_seeds() {
    // The protocol's example frames are where the fuzzing starts: reading them
    // from PROTOCOL.md must find them all.
    assert_eq!(sente_lite_fuzz::spec_json_examples().len(), 24);
    assert_eq!(sente_lite_fuzz::spec_postcard_examples().len(), 19);
}
