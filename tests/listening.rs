//! Server processes the tests start: spawned with stdout piped and killed on
//! drop, and awaited until they print `listening ...`.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// The rest of a server process's standard output, line by line.
pub(crate) type Output = Lines<BufReader<ChildStdout>>;

/// Spawns `command` and waits (20 s at most) for its first line, which must
/// be `listening WHERE`; returns the child, the rest of its output, and
/// `WHERE`.
pub(crate) async fn spawn_listening(command: &mut Command) -> (Child, Output, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("server process starts");
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("server says it listens within 20 s")
        .expect("stdout readable")
        .expect("a line");
    let at = line
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned();
    (child, lines, at)
}
