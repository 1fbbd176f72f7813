//! Recovery replay: clients subscribe, keep the position the server answered
//! and leave; the server publishes while they are away; on `go` all of them
//! come back at once and resubscribe with `since`. Each must then receive
//! every missed publication, in order and once, and `recovered: true`.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use sente_lite::protocol::StreamPosition;

use super::{Commands, JobResult, Target, every_one, gather, own_cpu, say, say_result};
use crate::machine::wall_ns;
use crate::wire::{BoxError, Protocol, Ws, next_data};

/// Opens a connection, subscribes, notes the position and closes it again.
async fn leave(protocol: Protocol, addr: SocketAddr) -> Result<StreamPosition, BoxError> {
    let mut ws = protocol.open(addr, None).await?;
    let position = tokio::time::timeout(crate::wire::OPEN_TIMEOUT, protocol.subscribe(&mut ws))
        .await
        .map_err(|_| BoxError::from("subscribing timed out"))??
        .ok_or("the subscribe reply has no position")?;
    let _ = ws.close(None).await;
    Ok(position)
}

/// Comes back after `since` and reads until the subscribe reply: exactly
/// `missed` publications with the offsets after `since`, then a reply that
/// says `recovered: true` at `since` + `missed`. Returns the connection (held
/// open until every client is done) and when it was done (wall-clock ns).
async fn come_back(
    protocol: Protocol,
    addr: SocketAddr,
    since: StreamPosition,
    missed: u64,
) -> Result<(Ws, u64), BoxError> {
    let mut ws = protocol.open(addr, None).await?;
    ws.send(protocol.subscribe_frame(Some(since.clone())))
        .await?;
    let mut got = 0u64;
    loop {
        let message = next_data(&mut ws).await?;
        if let Some(offset) = protocol.publication_offset(&message) {
            got += 1;
            let due = since.offset + got;
            if offset != due {
                return Err(format!("publication {offset} arrived where {due} was due").into());
            }
        } else if let Some(reply) = protocol.subscribe_reply(&message) {
            let done = wall_ns();
            let reply = reply?;
            let end = StreamPosition {
                epoch: since.epoch.clone(),
                offset: since.offset + missed,
            };
            if !reply.recovered || got != missed || reply.position.as_ref() != Some(&end) {
                return Err(format!(
                    "resubscribed after {since:?}: {got} of {missed} publications replayed, \
                     then recovered: {}, position {:?} (expected {end:?})",
                    reply.recovered, reply.position
                )
                .into());
            }
            return Ok((ws, done));
        } else if let Some(answer) = protocol.keepalive(&message) {
            ws.send(answer).await?;
        }
    }
}

/// Subscribes and leaves with `clients` clients, says `ready`; on `go` brings
/// them all back and reports each one's time until it had everything.
pub(super) async fn resume(
    target: &Target,
    clients: usize,
    missed: u64,
    deadline: Duration,
    commands: &mut Commands,
) -> Result<(), BoxError> {
    let (protocol, addr) = (target.protocol, target.addr);
    let positions = every_one(
        "clients",
        clients,
        gather(clients, || leave(protocol, addr)).await,
    )?;
    say("ready");
    if !commands.go().await {
        return Ok(());
    }
    let go = wall_ns();
    let cpu = own_cpu();
    let tasks: Vec<_> = positions
        .into_iter()
        .map(|since| {
            tokio::spawn(tokio::time::timeout(
                deadline,
                come_back(protocol, addr, since, missed),
            ))
        })
        .collect();
    let mut sockets = Vec::with_capacity(tasks.len());
    let mut done_at = Vec::with_capacity(tasks.len());
    for task in tasks {
        let (ws, done) = task
            .await?
            .map_err(|_| format!("a client did not catch up within {deadline:?}"))??;
        sockets.push(ws);
        done_at.push(done);
    }
    // Nothing was published after the replay: nothing may follow the reply.
    for ws in &mut sockets {
        while let Some(Some(Ok(message))) = ws.next().now_or_never() {
            if let Some(offset) = protocol.publication_offset(&message) {
                return Err(format!("publication {offset} arrived again after the reply").into());
            }
        }
    }
    say_result(&JobResult {
        completed: done_at.len() as u64,
        elapsed_s: wall_ns().saturating_sub(go) as f64 / 1e9,
        open: sockets.len() as u64,
        first_back_ns: done_at.iter().copied().min().unwrap_or(0),
        last_back_ns: done_at.iter().copied().max().unwrap_or(0),
        each_ms: done_at
            .iter()
            .map(|done| done.saturating_sub(go) as f64 / 1e6)
            .collect(),
        cpu_s: own_cpu().saturating_sub(cpu).as_secs_f64(),
        ..JobResult::default()
    });
    while commands.next().await != "stop" {}
    Ok(())
}
