//! The instrument end to end: `run --quick` starts every Rust server and load
//! generator as processes, completes every scenario, and prints every table.
//! socket.io on Node.js is left out so that the test needs no npm install; the
//! scenarios of several servers on one Redis need `redis-server` on the PATH
//! (as the workspace's cluster tests do).

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn the_quick_run_completes_every_scenario() {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_sente-lite-bench"))
        .args(["run", "--quick", "--no-node"])
        .output()
        .expect("the bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
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
    // Every scenario ran for every system: a failure would be a note.
    let failures: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("note: ") && !l.contains("left out"))
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
