//! Scenario 5: recovery replay. Clients in load-generator processes subscribe
//! to the bench channel of a server with a history, note their position and
//! leave; the server publishes while they are away; then all of them come back
//! at once and resubscribe with `since`. Timed until every client has every
//! missed publication; a client that misses one, gets one twice or out of
//! order, or is not told `recovered: true` fails the run.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};

use super::processes::Workers;
use super::{Context, HISTORY_SIZE, Scenario, System, settle, shares};
use crate::load::{Job, Target};
use crate::machine::wall_ns;
use crate::report::{ReplayCell, Report, percentile};
use crate::wire::{BoxError, Protocol, Reply, next_data, payload_of};

/// The id of the request that publishes the missed messages.
const PUBLISH_REQ: u64 = 1;

/// Has the server publish `count` messages to the room while nobody listens,
/// and waits until it has.
async fn publish_meanwhile(
    protocol: Protocol,
    addr: std::net::SocketAddr,
    count: u64,
    pad: &str,
) -> Result<(), BoxError> {
    let mut ws = protocol.open(addr, None).await?;
    ws.send(protocol.publish_many(PUBLISH_REQ, count, pad)?)
        .await?;
    loop {
        let message = next_data(&mut ws).await?;
        match protocol.reply(&message) {
            Reply::Ok {
                id: PUBLISH_REQ, ..
            } => break,
            Reply::Err { id } if id.is_none() || id == Some(PUBLISH_REQ) => {
                return Err(format!("publishing the missed messages failed: {message:?}").into());
            }
            Reply::Answer(answer) => ws.send(answer).await?,
            _ => {}
        }
    }
    let _ = ws.close(None).await;
    while let Some(Ok(_)) = ws.next().await {}
    Ok(())
}

async fn one(context: &Context, system: System) -> Result<ReplayCell, BoxError> {
    let plan = &context.plan;
    let (clients, missed) = (plan.replay_clients, plan.replay_missed);
    let history = HISTORY_SIZE.max(usize::try_from(missed).unwrap_or(usize::MAX));
    let mut server = context.server_with_history(system, history).await?;
    let target = Target {
        protocol: system.protocol(),
        addr: server.addr,
    };
    let jobs: Vec<Job> = shares(clients, context.processes_for(clients))
        .into_iter()
        .map(|share| Job::Replay {
            target: target.clone(),
            clients: share,
            missed,
            deadline_ms: plan.replay_deadline_ms,
        })
        .collect();
    let mut workers = Workers::spawn(&jobs, &context.pinning)?;
    let outcome = async {
        workers.wait_all("ready", Duration::from_secs(300)).await?;
        settle().await;
        let pad = payload_of(plan.fanout_pad);
        publish_meanwhile(target.protocol, server.addr, missed, &pad).await?;
        settle().await;
        context.quiet().await;
        let cpu = server.cpu();
        let started = wall_ns();
        workers.send_all("go").await;
        let results = workers
            .results(Duration::from_millis(plan.replay_deadline_ms) + Duration::from_secs(30))
            .await?;
        let server_cpu = server.cpu().saturating_sub(cpu).as_secs_f64();
        let back: u64 = results.iter().map(|r| r.completed).sum();
        if back != clients as u64 {
            return Err(format!("{back} of {clients} clients caught up").into());
        }
        let last = results.iter().map(|r| r.last_back_ns).max().unwrap_or(0);
        let all_s = last.saturating_sub(started) as f64 / 1e9;
        let each: Vec<f64> = results.iter().flat_map(|r| r.each_ms.clone()).collect();
        let replayed = clients as f64 * missed as f64;
        Ok::<_, BoxError>(ReplayCell {
            system,
            clients,
            missed,
            history,
            processes: jobs.len(),
            all_caught_up_s: all_s,
            each_p50_ms: percentile(&each, 50.0),
            each_p99_ms: percentile(&each, 99.0),
            each_max_ms: percentile(&each, 100.0),
            server_cpu_s: server_cpu,
            publications_per_s: replayed / all_s.max(1e-9),
        })
    }
    .await;
    workers.stop().await;
    server.kill().await;
    outcome
}

/// Runs scenario 5 for the systems with a history.
pub(crate) async fn run(context: &Context, report: &mut Report) {
    for system in context.plan.systems_for(Scenario::Replay) {
        match one(context, system).await {
            Ok(cell) => {
                eprintln!(
                    "  replay {:<29} clients {:>6}: {} missed each, all caught up in {:.3} s",
                    system.label(),
                    cell.clients,
                    cell.missed,
                    cell.all_caught_up_s
                );
                report.replay.push(cell);
            }
            Err(err) => report.note(format!(
                "Recovery replay, {} with {} clients and {} missed publications: {err}",
                system.label(),
                context.plan.replay_clients,
                context.plan.replay_missed
            )),
        }
    }
}
