//! `serve`: the servers under test, each run as its own process by `run`.
//!
//! A server prints `listening ADDR` on its first line of standard output once it
//! accepts connections, and serves until it is killed.

mod bare;
pub(crate) mod fill;
mod sente;
mod socketioxide;

use std::io::Write as _;
use std::net::SocketAddr;

pub(crate) use sente::SenteSetup;

/// The Rust servers this binary can run (socket.io on Node.js is a script).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ServerKind {
    /// sente-lite with the bench routes.
    Sente,
    /// tokio-tungstenite with no framework.
    Bare,
    /// socketioxide on axum.
    Socketioxide,
}

impl ServerKind {
    /// The `--kind` value.
    pub(crate) fn arg(self) -> &'static str {
        match self {
            Self::Sente => "sente",
            Self::Bare => "bare",
            Self::Socketioxide => "socketioxide",
        }
    }
}

/// Tells the parent where the server listens.
fn announce(addr: SocketAddr) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening {addr}");
    let _ = out.flush();
}

/// Runs a server of `kind` on `addr` with `threads` runtime workers until
/// killed; `setup` is sente-lite's (history, Redis, shared port).
pub(crate) fn run(
    kind: ServerKind,
    addr: &str,
    threads: usize,
    setup: SenteSetup,
) -> std::io::Result<()> {
    if kind != ServerKind::Sente && (setup.redis.is_some() || setup.shared || setup.history > 0) {
        return Err(std::io::Error::other(
            "`--history`, `--redis` and `--shared` are sente-lite's",
        ));
    }
    crate::machine::raise_open_files_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match kind {
            ServerKind::Sente => sente::serve(addr, setup).await,
            ServerKind::Bare => bare::serve(addr).await,
            ServerKind::Socketioxide => socketioxide::serve(addr).await,
        }
    })
}
