//! The instrument end to end: `run --quick` starts every Rust server and load
//! generator as processes, completes every scenario, and prints every table.
//! socket.io on Node.js is left out so that the test needs no npm install; the
//! scenarios of several servers on one Redis need `redis-server` on the PATH
//! (as the workspace's cluster tests do).

use std::process::Command;
use std::time::{Duration, Instant};

/// Runs the bench with `args`; its standard output and error, once it has
/// succeeded.
fn bench(args: &[&str]) -> (String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_sente-lite-bench"))
        .args(args)
        .output()
        .expect("the bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    (stdout, stderr)
}

#[test]
fn the_quick_run_completes_every_scenario() {
    let started = Instant::now();
    let (stdout, stderr) = bench(&["run", "--quick", "--no-node"]);
    for heading in [
        "### Targets",
        "### 1. Request/reply",
        "### 2. Broadcast fan-out",
        "### 3. Idle connections",
        "### 4. Reconnection storm",
        "### 5. Recovery replay",
        "### 6. Memory per stored publication",
        "### 7. Several servers on one Redis: cross-node delivery",
        "### 8. Throughput through one Redis",
        "### 9. Idle connections across servers on one Redis",
    ] {
        assert!(stdout.contains(heading), "no `{heading}` in:\n{stdout}");
    }
    for system in [
        "floor",
        "engine-like",
        "sente-lite json",
        "sente-lite postcard",
        "sente-lite json + history",
        "sente-lite postcard + history",
        "socketioxide",
    ] {
        assert!(
            stdout.contains(&format!("| {system} ")) || stdout.contains(&format!(" {system} |")),
            "no figures of {system} in:\n{stdout}"
        );
    }
    // Idle memory is read twice with the connections open.
    let idle_json = stdout
        .lines()
        .find(|l| l.starts_with("| 50 | sente-lite json |"))
        .unwrap_or_else(|| panic!("no idle row of sente-lite json in:\n{stdout}"));
    assert_eq!(idle_json.matches(" → ").count(), 2, "{idle_json}");
    assert_eq!(idle_json.matches(" KiB |").count(), 2, "{idle_json}");
    // Every scenario ran for every system: a failure would be a note. A
    // system the open loop offers more than its own saturation is not
    // measured there by design (its closed loop ran, and shows above); in
    // these tiny runs that depends on the machine, so its note is not one.
    let failures: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            l.contains("note: ")
                && !l.contains("left out")
                && !l.contains("is above its own saturation")
        })
        .collect();
    assert!(failures.is_empty(), "a scenario failed:\n{stderr}");
    for layout in [
        "one server, memory engine",
        "one server on Redis",
        "two servers on Redis, across",
    ] {
        assert!(
            stdout.contains(&format!("| {layout} |")),
            "no figures of {layout} in:\n{stdout}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the quick run took {:?}",
        started.elapsed()
    );
}

/// Builds the shipped echo example where the bench looks for it (beside
/// the bench's binary, in `examples/`), unless `cargo test` built it already
/// with the workspace's examples.
fn build_echo_example() {
    let bench = std::path::Path::new(env!("CARGO_BIN_EXE_sente-lite-bench"));
    let folder = bench.parent().expect("the bench's folder");
    if folder.join("examples").join("echo").is_file() {
        return;
    }
    let mut cargo = Command::new(env!("CARGO"));
    cargo.args(["build", "-p", "sente-lite-examples", "--example", "echo"]);
    if folder.file_name().is_some_and(|name| name != "debug") {
        cargo
            .arg("--profile")
            .arg(folder.file_name().expect("a name"));
    }
    let status = cargo.status().expect("cargo runs");
    assert!(
        status.success(),
        "building the echo example failed: {status}"
    );
}

#[test]
fn rounds_give_medians_and_every_round() {
    build_echo_example();
    let (stdout, stderr) = bench(&[
        "run",
        "--quick",
        "--only",
        "reqrep",
        "--systems",
        "floor,sente-json,echo-example",
        "--payloads",
        "20,64",
        "--rounds",
        "3",
    ]);
    assert!(stdout.contains("the median of 3 rounds"), "{stdout}");
    // The shipped example ran as it is, beside the bench's own server.
    assert!(
        stdout.contains("**echo example** is the shipped"),
        "{stdout}"
    );
    let closed: String = stderr
        .lines()
        .filter(|l| l.trim_start().starts_with("closed"))
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(closed.matches("(round 3 of 3)").count(), 6, "{stderr}");
    // A round goes over both cells before the next begins.
    let last_of_first = closed.rfind("(round 1 of 3)").expect("a first round");
    let first_of_second = closed.find("(round 2 of 3)").expect("a second round");
    assert!(last_of_first < first_of_second, "{stderr}");
    // The open loop runs in rounds too: each system three times a cell.
    let open = stderr
        .lines()
        .filter(|l| l.trim_start().starts_with("open") && l.contains("(round 3 of 3)"))
        .count();
    assert_eq!(open, 6, "{stderr}");
    let p99 = stdout
        .split("**Each round's p99**")
        .nth(1)
        .unwrap_or_else(|| panic!("no table of p99 rounds in:\n{stdout}"));
    let row = p99
        .lines()
        .find(|l| l.starts_with("| 2 | 64 B |"))
        .unwrap_or_else(|| panic!("no row of the cell in:\n{p99}"));
    assert_eq!(row.matches('×').count(), 9, "{row}");
    // The table of rounds: three figures for each system in the cell.
    let rounds = stdout
        .split("**Each round**")
        .nth(1)
        .unwrap_or_else(|| panic!("no table of rounds in:\n{stdout}"));
    let row = rounds
        .lines()
        .find(|l| l.starts_with("| 2 | 20 B |"))
        .unwrap_or_else(|| panic!("no row of the cell in:\n{rounds}"));
    assert_eq!(row.matches('×').count(), 9, "{row}");
    assert!(
        row.matches("1.00×").count() >= 3,
        "the floor against itself: {row}"
    );
}
