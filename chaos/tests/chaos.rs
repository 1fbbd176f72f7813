//! The chaos harness, short: three server kills under traffic in each mode
//! (one memory-engine server; three nodes on one Redis), two native and two
//! Node client processes. Every message must be accounted for.
//!
//! Needs `node`, `js/node_modules` (`npm ci --prefix js`) and `redis-server`.
//! The full run is `chaos` with its defaults (docs/reliability-chaos.md).

use std::process::Command;
use std::sync::Mutex;

/// One run at a time: each is a dozen processes.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The value of `key=` in the orchestrator's `summary` line.
fn field(output: &str, key: &str) -> u64 {
    output
        .split_whitespace()
        .find_map(|word| word.strip_prefix(&format!("{key}=")))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in the output:\n{output}"))
}

/// Runs the orchestrator in `mode` with three kills; its output.
fn chaos(mode: &str) -> String {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let node_modules = concat!(env!("CARGO_MANIFEST_DIR"), "/../js/node_modules");
    assert!(
        std::path::Path::new(node_modules).is_dir(),
        "the Node clients need js/node_modules: npm ci --prefix js"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args([
            "--mode", mode, "--kills", "3", "--native", "2", "--node", "2",
        ])
        .args(["--min-between-ms", "1500", "--max-between-ms", "3000"])
        .args([
            "--max-down-ms",
            "500",
            "--tail-ms",
            "2000",
            "--settle-ms",
            "1500",
        ])
        .output()
        .expect("the orchestrator runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(field(&stdout, "kills"), 3, "{stdout}");
    assert_eq!(field(&stdout, "clients"), 4, "{stdout}");
    for traffic in ["events", "requests", "publications", "received"] {
        assert!(field(&stdout, traffic) > 0, "no {traffic}:\n{stdout}");
    }
    for zero in ["duplicates", "out_of_order", "unexplained"] {
        assert_eq!(field(&stdout, zero), 0, "{stdout}");
    }
    stdout
}

#[test]
fn a_server_killed_three_times_under_traffic_loses_nothing_unexplained() {
    let out = chaos("memory");
    // Every kill drops every client.
    assert!(field(&out, "min_reconnects") >= 3, "{out}");
}

#[test]
fn nodes_killed_one_at_a_time_on_one_redis_lose_nothing_unexplained() {
    let out = chaos("redis");
    // Three kills, three nodes: each node dies once, so does each client's.
    assert!(field(&out, "min_reconnects") >= 1, "{out}");
}
