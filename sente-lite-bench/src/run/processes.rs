//! The processes of a run: servers under test and load generators, each pinned
//! to its side's CPUs, and the line protocol that drives the load generators.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use super::System;
use crate::load::{Job, JobResult};
use crate::machine::{Pinning, cpu_time, rss_bytes};
use crate::serve::{SenteSetup, ServerKind};
use crate::wire::BoxError;

/// How long a server may take to say it listens.
const START_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) fn command(pin: Option<&str>, program: &std::ffi::OsStr) -> Command {
    match pin {
        Some(cpus) => {
            let mut command = Command::new("taskset");
            command.arg("-c").arg(cpus).arg(program);
            command
        }
        None => Command::new(program),
    }
}

fn this_program() -> Result<PathBuf, BoxError> {
    Ok(std::env::current_exe()?)
}

/// The shipped `echo` example, built by the same profile as this program
/// (`cargo build [--profile P] -p sente-lite-examples --example echo` puts it
/// in `examples/` beside it).
pub(crate) fn echo_example() -> Result<PathBuf, BoxError> {
    let program = this_program()?;
    let path = program
        .parent()
        .ok_or("this program has no folder")?
        .join("examples")
        .join("echo");
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "the echo example is not built (`cargo build{} -p sente-lite-examples --example echo`)",
            super::profile_arg()
        )
        .into())
    }
}

/// The address in the echo example's `echo server at ws://ADDR/ws` line.
fn echo_example_addr(line: &str) -> Option<SocketAddr> {
    let (_, url) = line.split_once("echo server at ws://")?;
    url.split('/').next()?.parse().ok()
}

/// This program's `serve` of `kind` on `addr`, pinned to the servers' CPUs.
fn serve_command(kind: ServerKind, addr: &str, pinning: &Pinning) -> Result<Command, BoxError> {
    let mut command = command(pinning.server.as_deref(), this_program()?.as_os_str());
    command
        .arg("serve")
        .arg("--kind")
        .arg(kind.arg())
        .arg("--addr")
        .arg(addr)
        .arg("--threads")
        .arg(pinning.server_cpus.to_string());
    Ok(command)
}

/// Where the socket.io (Node.js) server script lives.
#[derive(Debug, Clone)]
pub(crate) struct NodePeer {
    /// The folder with `server.js` and its installed `node_modules`.
    pub(crate) dir: PathBuf,
}

/// A running server. Killed when dropped.
pub(crate) struct ServerProcess {
    child: Child,
    /// Its process id.
    pub(crate) pid: u32,
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    /// The clock ticks of `/proc` CPU times.
    ticks: f64,
}

impl ServerProcess {
    /// Starts the server of `system` on `addr` (`127.0.0.1:0` for any port),
    /// keeping `history` publications of the bench channel (sente-lite only).
    pub(crate) async fn start(
        system: System,
        addr: &str,
        history: usize,
        pinning: &Pinning,
        node: Option<&NodePeer>,
        ticks: f64,
    ) -> Result<Self, BoxError> {
        let command = match system.server_kind() {
            Some(kind) => {
                let mut command = serve_command(kind, addr, pinning)?;
                if history > 0 {
                    command.arg("--history").arg(history.to_string());
                }
                command
            }
            None if system == System::EchoExample => {
                let mut command = command(pinning.server.as_deref(), echo_example()?.as_os_str());
                command.arg("--addr").arg(addr);
                return Self::launch_with(command, system.label(), ticks, echo_example_addr).await;
            }
            None => {
                let node = node.ok_or("socket.io (Node.js) is not installed")?;
                let port = addr.rsplit(':').next().unwrap_or("0");
                let mut command = command(pinning.server.as_deref(), "node".as_ref());
                command.arg(node.dir.join("server.js")).arg(port);
                command
            }
        };
        Self::launch(command, system.label(), ticks).await
    }

    /// Starts a sente-lite server (JSON and postcard alike) on `addr` as
    /// `setup` says: on a Redis, sharing its port.
    pub(crate) async fn start_sente(
        addr: &str,
        setup: &SenteSetup,
        pinning: &Pinning,
        ticks: f64,
    ) -> Result<Self, BoxError> {
        let mut command = serve_command(ServerKind::Sente, addr, pinning)?;
        if setup.history > 0 {
            command.arg("--history").arg(setup.history.to_string());
        }
        if let Some(url) = &setup.redis {
            command.arg("--redis").arg(url);
        }
        if setup.shared {
            command.arg("--shared");
        }
        let label = if setup.redis.is_some() {
            "sente-lite on Redis"
        } else {
            "sente-lite"
        };
        Self::launch(command, label, ticks).await
    }

    /// Spawns `command` and waits for its `listening ADDR` line.
    async fn launch(command: Command, label: &str, ticks: f64) -> Result<Self, BoxError> {
        Self::launch_with(command, label, ticks, |line| {
            line.strip_prefix("listening ")?.trim().parse().ok()
        })
        .await
    }

    /// Spawns `command` and waits for the first line of its standard output
    /// from which `listening` reads the address it listens on.
    async fn launch_with(
        mut command: Command,
        label: &str,
        ticks: f64,
        listening: fn(&str) -> Option<SocketAddr>,
    ) -> Result<Self, BoxError> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().ok_or("the server exited at once")?;
        let stdout = child.stdout.take().ok_or("no server stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let addr = tokio::time::timeout(START_TIMEOUT, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(addr) = listening(&line) {
                    return Ok(addr);
                }
            }
            Err::<SocketAddr, BoxError>(format!("{label} exited before listening").into())
        })
        .await
        .map_err(|_| format!("{label} did not start within {START_TIMEOUT:?}"))??;
        // Keep reading (and dropping) its output so the pipe never fills.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            child,
            pid,
            addr,
            ticks,
        })
    }

    /// Its CPU time so far.
    pub(crate) fn cpu(&self) -> Duration {
        cpu_time(self.pid, self.ticks).unwrap_or_default()
    }

    /// Waits (at most `patience`) until each of `servers` has used under a
    /// tenth of a core over a quarter of a second. A server offered more than
    /// it can serve goes on working off what it has read for seconds after its
    /// load generator stops; the next measurement must not share the core with
    /// it. Returns the servers still busy when `patience` ran out.
    pub(crate) async fn wait_idle<'a>(
        servers: impl IntoIterator<Item = &'a ServerProcess>,
        patience: Duration,
    ) -> Vec<&'a ServerProcess> {
        let window = Duration::from_millis(250);
        let until = tokio::time::Instant::now() + patience;
        let mut busy: Vec<&ServerProcess> = servers.into_iter().collect();
        while !busy.is_empty() {
            let before: Vec<Duration> = busy.iter().map(|s| s.cpu()).collect();
            tokio::time::sleep(window).await;
            let mut still = Vec::new();
            for (server, before) in busy.into_iter().zip(before) {
                if server.cpu().saturating_sub(before) >= window / 10 {
                    still.push(server);
                }
            }
            busy = still;
            if tokio::time::Instant::now() >= until {
                break;
            }
        }
        busy
    }

    /// Its resident memory now, bytes.
    pub(crate) fn rss(&self) -> u64 {
        rss_bytes(self.pid).unwrap_or(0)
    }

    /// Kills it (SIGKILL) and waits until it is gone.
    pub(crate) async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// Runs this program with `args` as a process of its own, pinned to the
/// servers' CPUs, until it ends (within `timeout`); its standard output.
pub(crate) async fn run_to_end(
    args: &[String],
    pinning: &Pinning,
    timeout: Duration,
) -> Result<String, BoxError> {
    let child = command(pinning.server.as_deref(), this_program()?.as_os_str())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| format!("`{}` did not end within {timeout:?}", args.join(" ")))??;
    if !output.status.success() {
        return Err(format!("`{}` failed ({})", args.join(" "), output.status).into());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Load-generator processes running one job each.
pub(crate) struct Workers {
    children: Vec<Child>,
    stdins: Vec<ChildStdin>,
    lines: mpsc::UnboundedReceiver<(usize, String)>,
}

impl Workers {
    /// Starts one process per job.
    pub(crate) fn spawn(jobs: &[Job], pinning: &Pinning) -> Result<Self, BoxError> {
        let program = this_program()?;
        let (tx, lines) = mpsc::unbounded_channel();
        let mut children = Vec::with_capacity(jobs.len());
        let mut stdins = Vec::with_capacity(jobs.len());
        for (index, job) in jobs.iter().enumerate() {
            let mut child = command(pinning.load.as_deref(), program.as_os_str())
                .arg("load")
                .arg("--job")
                .arg(serde_json::to_string(job)?)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()?;
            stdins.push(child.stdin.take().ok_or("no worker stdin")?);
            let stdout = child.stdout.take().ok_or("no worker stdout")?;
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if tx.send((index, line)).is_err() {
                        break;
                    }
                }
                let _ = tx.send((index, "exited".to_owned()));
            });
            children.push(child);
        }
        Ok(Self {
            children,
            stdins,
            lines,
        })
    }

    /// How many processes there are.
    pub(crate) fn len(&self) -> usize {
        self.children.len()
    }

    /// Sends a command line to every process.
    pub(crate) async fn send_all(&mut self, command: &str) {
        for stdin in &mut self.stdins {
            let _ = stdin.write_all(format!("{command}\n").as_bytes()).await;
            let _ = stdin.flush().await;
        }
    }

    /// The next line from any process, within `timeout`.
    pub(crate) async fn next_line(&mut self, timeout: Duration) -> Option<(usize, String)> {
        tokio::time::timeout(timeout, self.lines.recv())
            .await
            .ok()
            .flatten()
    }

    /// Waits until every process said `word`; fails on `failed ...`, an early
    /// exit, or the timeout. Other lines are dropped.
    pub(crate) async fn wait_all(&mut self, word: &str, timeout: Duration) -> Result<(), BoxError> {
        let until = tokio::time::Instant::now() + timeout;
        let mut said = vec![false; self.len()];
        while !said.iter().all(|s| *s) {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            let (index, line) = self.next_line(left).await.ok_or_else(|| {
                format!(
                    "load generators did not all say `{word}` within {timeout:?} ({} of {} did)",
                    said.iter().filter(|s| **s).count(),
                    said.len()
                )
            })?;
            if line == word {
                said[index] = true;
            } else if let Some(why) = line.strip_prefix("failed ") {
                return Err(format!("load generator {index}: {why}").into());
            } else if line == "exited" {
                return Err(format!("load generator {index} exited early").into());
            }
        }
        Ok(())
    }

    /// Waits for every process's `result`, within `timeout`.
    pub(crate) async fn results(&mut self, timeout: Duration) -> Result<Vec<JobResult>, BoxError> {
        let until = tokio::time::Instant::now() + timeout;
        let mut results: Vec<Option<JobResult>> = vec![None; self.len()];
        while results.iter().any(Option::is_none) {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            let (index, line) = self
                .next_line(left)
                .await
                .ok_or_else(|| format!("load generators gave no result within {timeout:?}"))?;
            if let Some(json) = line.strip_prefix("result ") {
                results[index] = Some(serde_json::from_str(json)?);
            } else if let Some(why) = line.strip_prefix("failed ") {
                return Err(format!("load generator {index}: {why}").into());
            } else if line == "exited" && results[index].is_none() {
                return Err(format!("load generator {index} exited without a result").into());
            }
        }
        Ok(results.into_iter().flatten().collect())
    }

    /// Ends every process.
    pub(crate) async fn stop(mut self) {
        self.send_all("stop").await;
        for child in &mut self.children {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }
}

/// The server kind of a system run by this binary, `None` for Node.js and
/// the echo example.
impl System {
    pub(crate) fn server_kind(self) -> Option<ServerKind> {
        match self {
            Self::Floor => Some(ServerKind::Floor),
            Self::Bare => Some(ServerKind::Bare),
            Self::SenteJson
            | Self::SentePostcard
            | Self::SenteJsonHistory
            | Self::SentePostcardHistory => Some(ServerKind::Sente),
            Self::Socketioxide => Some(ServerKind::Socketioxide),
            Self::SocketIoNode | Self::EchoExample => None,
        }
    }
}
