//! Idle connections: opened (each subscribed to a channel of its own, when
//! asked), then held (answering keep-alive pings) until `stop`.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::{SinkExt, StreamExt};

use super::reqrep::{Join, open_each};
use super::{Commands, JobResult, Target, every_one, say, say_result};
use crate::wire::{BoxError, Protocol, Ws};

async fn hold_one(mut ws: Ws, protocol: Protocol, closed: Arc<AtomicU64>) {
    while let Some(Ok(message)) = ws.next().await {
        if let Some(answer) = protocol.keepalive(&message)
            && ws.send(answer).await.is_err()
        {
            break;
        }
    }
    closed.fetch_add(1, Ordering::Relaxed);
}

/// Opens `conns` connections from `source`, each subscribed to the channel
/// `{channels}{n}` of its own when `channels` is given (`n` from 0), says
/// `ready`, holds them until `stop`.
pub(super) async fn hold(
    target: &Target,
    conns: usize,
    source: Option<IpAddr>,
    channels: Option<&str>,
    commands: &mut Commands,
) -> Result<(), BoxError> {
    let join = channels.map_or(Join::Nothing, Join::OwnChannel);
    let closed = Arc::new(AtomicU64::new(0));
    // Each held at once: the server closes a connection that leaves its
    // pings unanswered while thousands of others open.
    let hold = |ws| {
        tokio::spawn(hold_one(ws, target.protocol, Arc::clone(&closed)));
    };
    let held = every_one(
        "connections",
        conns,
        open_each(target, conns, source, join, hold).await,
    )?;
    let opened = held.len() as u64;
    say("ready");
    while commands.next().await != "stop" {}
    let closed = closed.load(Ordering::Relaxed);
    say_result(&JobResult {
        completed: opened,
        errors: closed,
        open: opened.saturating_sub(closed),
        ..JobResult::default()
    });
    Ok(())
}
