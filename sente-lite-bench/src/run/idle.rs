//! Scenario 3: idle connections. The server's resident memory before and after
//! `n` connections are opened and left idle, and again once each had a
//! heartbeat round; the difference per connection.
//!
//! One process may hold at most as many sockets as its open-files limit, so the
//! count is capped below that limit; the clients are spread over several
//! load-generator processes and several `127.0.0.x` source addresses (each
//! source address has its own range of ephemeral ports).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::processes::Workers;
use super::{Context, Scenario, System, shares};
use crate::load::{Job, Target};
use crate::report::{IdleCell, Report};
use crate::wire::BoxError;

async fn one(context: &Context, system: System, conns: usize) -> Result<IdleCell, BoxError> {
    let settle = Duration::from_millis(context.plan.idle_settle_ms);
    let later = Duration::from_millis(context.plan.idle_later_ms);
    context.quiet().await;
    let mut server = context.server(system).await?;
    tokio::time::sleep(settle).await;
    let before = server.rss();
    let target = Target {
        protocol: system.protocol(),
        addr: server.addr,
    };
    let jobs: Vec<Job> = shares(conns, context.processes_for(conns))
        .into_iter()
        .enumerate()
        .map(|(i, share)| Job::Idle {
            target: target.clone(),
            conns: share,
            source: Some(IpAddr::V4(Ipv4Addr::new(
                127,
                0,
                0,
                2 + u8::try_from(i % 250).unwrap_or(0),
            ))),
            channels: None,
        })
        .collect();
    let mut workers = Workers::spawn(&jobs, &context.pinning)?;
    let outcome = async {
        workers.wait_all("ready", Duration::from_secs(300)).await?;
        tokio::time::sleep(settle).await;
        let after = server.rss();
        // Again once every connection has had a heartbeat round (which,
        // answered, may make buffers that the allocator then keeps).
        tokio::time::sleep(later).await;
        let later = server.rss();
        workers.send_all("stop").await;
        let results = workers.results(Duration::from_secs(60)).await?;
        let open: u64 = results.iter().map(|r| r.open).sum();
        Ok::<_, BoxError>(IdleCell {
            system,
            connections: conns,
            open,
            processes: jobs.len(),
            rss_before: before,
            rss_after: after,
            rss_later: Some(later),
        })
    }
    .await;
    workers.stop().await;
    server.kill().await;
    outcome
}

/// Runs scenario 3 for every system and count, capped below the open-files limit.
pub(crate) async fn run(context: &Context, report: &mut Report) {
    let limit = usize::try_from(crate::machine::open_files_limit()).unwrap_or(usize::MAX);
    // Room for the listener, the runtime and the standard streams.
    let most = limit.saturating_sub(1_000).max(1);
    for &wanted in &context.plan.idle {
        let conns = wanted.min(most);
        if conns < wanted {
            report.note(format!(
                "Idle: {wanted} connections asked, {conns} measured: one server process may hold \
                 at most {limit} open files."
            ));
        }
        for system in context.plan.systems_for(Scenario::Idle) {
            match one(context, system, conns).await {
                Ok(cell) => {
                    eprintln!(
                        "  idle   {:<22} connections {conns:>6}: {:.2} KiB each, {:.2} later",
                        system.label(),
                        cell.per_connection_kib(),
                        cell.worst_per_connection_kib()
                    );
                    report.idle.push(cell);
                }
                Err(err) => report.note(format!(
                    "Idle, {} with {conns} connections: {err}",
                    system.label()
                )),
            }
        }
    }
}
