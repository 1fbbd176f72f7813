//! A server process at its file-descriptor limit (started under a low
//! `ulimit -n`): failed accepts are counted in `/metrics` and reported at most
//! once a second, stalled connections are closed by the header timeout, and
//! the descriptors they free let the server answer again.

#![cfg(unix)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;

/// The server's descriptor limit: a few for the runtime, stdio and the listener,
/// the rest for connections.
const LIMIT: u32 = 32;
/// Connections that send nothing, well past the limit.
const HELD: usize = 80;

/// The value of the counter `name` in OpenMetrics text.
fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {metrics}"))
}

#[tokio::test]
async fn at_the_file_limit_failed_accepts_are_counted_and_the_server_recovers() {
    let started = Instant::now();
    let mut child = Command::new("sh")
        .args([
            "-c",
            r#"ulimit -n "$1" && shift && exec "$@""#,
            "sh",
            &LIMIT.to_string(),
            env!("CARGO_BIN_EXE_fd_limited_server"),
            "--addr",
            "127.0.0.1:0",
            "--header-timeout-ms",
            "500",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("server process starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), stdout.next_line())
        .await
        .expect("server says it listens within 20 s")
        .unwrap()
        .expect("a line");
    let addr = line
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let logged = tokio::spawn(async move {
        let mut lines = Vec::new();
        while let Ok(Some(line)) = stderr.next_line().await {
            lines.push(line);
        }
        lines
    });

    let mut held = Vec::with_capacity(HELD);
    for _ in 0..HELD {
        held.push(TcpStream::connect(&addr).await.unwrap());
    }
    // Queued behind the held connections: answered once the header timeout
    // has closed enough of them.
    let mut scrape = TcpStream::connect(&addr).await.unwrap();
    scrape
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(60),
        scrape.read_to_string(&mut response),
    )
    .await
    .expect("the server answers again once stalled connections are closed")
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        counter(&response, "sente_lite_errors_accept_failed_total") > 0,
        "{response}"
    );
    assert!(
        counter(&response, "sente_lite_closed_http_timeout_total") > 0,
        "{response}"
    );

    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let elapsed = started.elapsed();
    drop(held);
    let logged = logged.await.unwrap();
    let reports = logged
        .iter()
        .filter(|line| line.contains("accept failed"))
        .count();
    assert!(reports >= 1, "{logged:#?}");
    assert!(
        reports as u64 <= elapsed.as_secs() + 1,
        "{reports} reports in {elapsed:?}: at most one a second\n{logged:#?}"
    );
}
