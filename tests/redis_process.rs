//! A real `redis-server` for the tests: started on a free loopback port
//! without persistence, stopped by its PID when dropped.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// A running `redis-server`.
pub(crate) struct RedisProcess {
    child: Child,
    pub(crate) port: u16,
}

impl RedisProcess {
    /// Starts one on a free port.
    pub(crate) async fn start() -> Self {
        Self::start_on(free_port()).await
    }

    /// Starts one on `port` (a restart after [`RedisProcess::kill`]).
    pub(crate) async fn start_on(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server starts (Debian's redis-server package is installed)");
        let redis = Self { child, port };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !redis.answers().await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server answers within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        redis
    }

    /// The URL the servers connect to.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn answers(&self) -> bool {
        let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        if stream.write_all(b"PING\r\n").await.is_err() {
            return false;
        }
        let mut buf = [0u8; 7];
        stream.read_exact(&mut buf).await.is_ok() && &buf == b"+PONG\r\n"
    }

    /// Kills it (SIGKILL, by PID) and waits for it to exit.
    pub(crate) async fn kill(mut self) -> u16 {
        let _ = self.child.kill().await;
        self.port
    }
}

pub(crate) use super::ports::free_port;
