//! `serve`: the servers under test, each run as its own process by `run`.
//!
//! A server prints `listening ADDR` on its first line of standard output once it
//! accepts connections, and serves until it is killed.

mod bare;
pub(crate) mod fill;
mod floor;
mod sente;
mod socketioxide;

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tungstenite::protocol::WebSocketConfig;

pub(crate) use sente::SenteSetup;

/// The Rust servers this binary can run (socket.io on Node.js is a script).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ServerKind {
    /// sente-lite with the bench routes.
    Sente,
    /// tokio-tungstenite that reads and writes straight back: the floor.
    Floor,
    /// tokio-tungstenite with no framework, built like sente-lite's engine.
    Bare,
    /// socketioxide on axum.
    Socketioxide,
}

impl ServerKind {
    /// The `--kind` value.
    pub(crate) fn arg(self) -> &'static str {
        match self {
            Self::Sente => "sente",
            Self::Floor => "floor",
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

/// The plain servers' subscribers, by connection id: each one's channel of
/// messages to write.
type Subscribers = Arc<Mutex<HashMap<u64, mpsc::Sender<tungstenite::Message>>>>;

fn lock(
    subscribers: &Subscribers,
) -> MutexGuard<'_, HashMap<u64, mpsc::Sender<tungstenite::Message>>> {
    subscribers.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The plain servers' accept loop: listens on `addr`, announces it, and
/// runs `connection` for each WebSocket (opened with `config`, no Nagle
/// delay) with an id of its own and the shared subscribers, until the
/// process is killed.
async fn accept_loop<F, Fut>(
    addr: &str,
    config: WebSocketConfig,
    connection: F,
) -> std::io::Result<()>
where
    F: Fn(WebSocketStream<TcpStream>, u64, Subscribers) -> Fut + Send + Copy + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind(addr).await?;
    announce(listener.local_addr()?);
    let subscribers: Subscribers = Arc::default();
    let next_id = AtomicU64::new(1);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors and the like: back off briefly.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        let subscribers = Arc::clone(&subscribers);
        tokio::spawn(async move {
            if let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await
            {
                connection(ws, id, subscribers).await;
            }
        });
    }
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
            ServerKind::Floor => {
                accept_loop(addr, floor::websocket_config(), floor::connection).await
            }
            ServerKind::Bare => accept_loop(addr, bare::websocket_config(), bare::connection).await,
            ServerKind::Socketioxide => socketioxide::serve(addr).await,
        }
    })
}
