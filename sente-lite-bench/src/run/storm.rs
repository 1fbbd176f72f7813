//! Scenario 4: reconnection storm. Subscribed clients in several load-generator
//! processes; the server is killed (SIGKILL) and started again on the same
//! port; the time until every client is open and subscribed again.

use std::time::Duration;

use super::processes::Workers;
use super::{Context, Scenario, System, shares};
use crate::load::{Job, Target};
use crate::machine::wall_ns;
use crate::report::{Report, StormCell, StormRound};
use crate::wire::BoxError;

async fn one(context: &Context, system: System) -> Result<StormCell, BoxError> {
    let plan = &context.plan;
    let mut server = context.server(system).await?;
    let addr = server.addr;
    let target = Target {
        protocol: system.protocol(),
        addr,
    };
    let processes = plan
        .storm_clients
        .div_ceil(plan.clients_per_process.max(1))
        .max(1);
    let jobs: Vec<Job> = shares(plan.storm_clients, processes)
        .into_iter()
        .map(|clients| Job::Storm {
            target: target.clone(),
            clients,
            deadline_ms: plan.storm_deadline_ms,
        })
        .collect();
    let mut workers = Workers::spawn(&jobs, &context.pinning)?;
    let mut rounds = Vec::new();
    let server_slot = &mut server;
    let outcome = async {
        let server = server_slot;
        workers.wait_all("ready", Duration::from_secs(300)).await?;
        for _ in 0..plan.storm_rounds {
            tokio::time::sleep(Duration::from_secs(1)).await;
            context.quiet().await;
            workers.send_all("go").await;
            workers.wait_all("armed", Duration::from_secs(30)).await?;
            let killed_at = wall_ns();
            server.kill().await;
            *server = context.server_on(system, &addr.to_string()).await?;
            let listening_at = wall_ns();
            let results = workers
                .results(Duration::from_millis(plan.storm_deadline_ms) + Duration::from_secs(30))
                .await?;
            let back: u64 = results.iter().map(|r| r.resubscribed).sum();
            let open: u64 = results.iter().map(|r| r.open).sum();
            let last = results.iter().map(|r| r.last_back_ns).max().unwrap_or(0);
            let first = results
                .iter()
                .map(|r| r.first_back_ns)
                .filter(|t| *t != 0)
                .min()
                .unwrap_or(0);
            let round = StormRound {
                // The new process's whole CPU time: all of it went to the storm.
                server_cpu_s: server.cpu().as_secs_f64(),
                restart_s: listening_at.saturating_sub(killed_at) as f64 / 1e9,
                first_back_s: first.saturating_sub(listening_at) as f64 / 1e9,
                all_back_s: last.saturating_sub(listening_at) as f64 / 1e9,
                back,
                open,
            };
            eprintln!(
                "  storm  {:<22} clients {:>6}: {back} back, last {:.2} s after the restart",
                system.label(),
                plan.storm_clients,
                round.all_back_s
            );
            rounds.push(round);
        }
        Ok::<_, BoxError>(())
    }
    .await;
    workers.stop().await;
    server.kill().await;
    outcome?;
    Ok(StormCell {
        system,
        clients: plan.storm_clients,
        processes: jobs.len(),
        rounds,
    })
}

/// Runs scenario 4 for sente-lite, the floor and the engine-like server.
pub(crate) async fn run(context: &Context, report: &mut Report) {
    // Systems with a client that reconnects: sente-lite's own, and the
    // hand-written one of the plain servers, with the same policy.
    for system in context.plan.systems_for(Scenario::Storm) {
        match one(context, system).await {
            Ok(cell) => report.storm.push(cell),
            Err(err) => report.note(format!(
                "Reconnection storm, {} with {} clients: {err}",
                system.label(),
                context.plan.storm_clients
            )),
        }
    }
}
