//! Writes the seed inputs of every fuzz target into `DIR/<target>/`:
//! `cargo run -p sente-lite-fuzz --bin seeds -- DIR`. `scripts/fuzz` starts
//! from them together with the committed corpora.

fn main() -> std::process::ExitCode {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: seeds DIR");
        return std::process::ExitCode::FAILURE;
    };
    let dir = std::path::PathBuf::from(dir);
    for seed in sente_lite_fuzz::seeds() {
        let folder = dir.join(seed.target);
        let written = std::fs::create_dir_all(&folder)
            .and_then(|()| std::fs::write(folder.join(&seed.name), &seed.data));
        if let Err(e) = written {
            eprintln!("{}: {e}", folder.display());
            return std::process::ExitCode::FAILURE;
        }
    }
    std::process::ExitCode::SUCCESS
}
