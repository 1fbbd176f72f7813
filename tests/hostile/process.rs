//! The server under test as a separate process, so that its memory and its
//! open files can be read from `/proc`, and its counters from `/metrics`.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// A running `hostile_server`, killed when dropped.
pub(crate) struct ServerProcess {
    child: Child,
    /// Its process id.
    pub(crate) pid: u32,
    /// The address it listens on (`127.0.0.1:PORT`).
    pub(crate) addr: String,
}

impl ServerProcess {
    /// Starts the server on a free port and waits until it listens.
    pub(crate) async fn start() -> Self {
        let addr = format!("127.0.0.1:{}", crate::ports::free_port());
        let mut command = Command::new(env!("CARGO_BIN_EXE_hostile_server"));
        command.args(["--addr", &addr]);
        let (child, _, listening) = crate::listening::spawn_listening(&mut command).await;
        assert_eq!(listening, addr);
        let pid = child.id().expect("the server runs");
        Self { child, pid, addr }
    }

    /// Whether the process still runs.
    pub(crate) fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Its resident memory (`VmRSS`), in bytes.
    pub(crate) fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .expect("the server's /proc status");
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("a VmRSS line");
        kib << 10
    }

    /// How many files (sockets included) it holds open.
    pub(crate) fn open_files(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .expect("the server's /proc fd folder")
            .count()
    }

    /// Its counters and gauges from `/metrics`, by name (labelled series left out).
    pub(crate) async fn metrics(&self) -> BTreeMap<String, u64> {
        let mut stream = TcpStream::connect(&self.addr)
            .await
            .expect("the server accepts");
        let request = format!(
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        stream
            .write_all(request.as_bytes())
            .await
            .expect("the server reads");
        let mut response = String::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response))
            .await
            .expect("/metrics answers within 5 s")
            .expect("/metrics readable");
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        response
            .lines()
            .filter(|line| line.starts_with("sente_lite_") && !line.contains('{'))
            .filter_map(|line| {
                let (name, value) = line.split_once(' ')?;
                Some((name.to_owned(), value.trim().parse().ok()?))
            })
            .collect()
    }
}
