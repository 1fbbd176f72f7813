//! Scenario 1: request/reply. Closed loop for requests/s at saturation (with the
//! server's CPU time per request), then an open loop at a fixed offered rate
//! for the latency percentiles.

use std::collections::HashMap;
use std::time::Duration;

use super::processes::{ServerProcess, Workers};
use super::{Context, Scenario, System, settle};
use crate::load::{Job, JobResult, Target};
use crate::report::{ClosedCell, OpenCell, Report};
use crate::wire::BoxError;

/// A measurement's CPU times: the server's, and every other process's on the
/// machine besides the server and the load generator.
struct CpuUse {
    server: Duration,
    others: Duration,
}

async fn one_worker(
    context: &Context,
    job: Job,
    server: &ServerProcess,
    duration: Duration,
) -> Result<(JobResult, CpuUse), BoxError> {
    let mut workers = Workers::spawn(&[job], &context.pinning)?;
    let outcome = async {
        workers.wait_all("ready", Duration::from_secs(120)).await?;
        context.quiet().await;
        let cpu = server.cpu();
        let busy = crate::machine::machine_busy(context.ticks).unwrap_or_default();
        workers.send_all("go").await;
        let results = workers.results(duration + Duration::from_secs(60)).await?;
        let server_cpu = server.cpu().saturating_sub(cpu);
        let busy = crate::machine::machine_busy(context.ticks)
            .unwrap_or_default()
            .saturating_sub(busy);
        let result = results.into_iter().next().ok_or("no result")?;
        let others = busy
            .saturating_sub(server_cpu)
            .saturating_sub(Duration::from_secs_f64(result.cpu_s));
        Ok::<_, BoxError>((
            result,
            CpuUse {
                server: server_cpu,
                others,
            },
        ))
    }
    .await;
    workers.stop().await;
    outcome
}

/// Runs scenario 1 for every system, client count and payload.
pub(crate) async fn run(context: &Context, report: &mut Report) {
    let plan = &context.plan;
    let systems = plan.systems_for(Scenario::Reqrep);
    let mut servers: HashMap<System, ServerProcess> = HashMap::new();
    for system in &systems {
        match context.server(*system).await {
            Ok(server) => {
                servers.insert(*system, server);
            }
            Err(err) => report.note(format!(
                "Request/reply: the {} server did not start: {err}",
                system.label()
            )),
        }
    }
    let warmup = Duration::from_millis(plan.warmup_ms);
    let duration = Duration::from_millis(plan.duration_ms);
    for &clients in &plan.clients {
        for &payload in &plan.payloads {
            let mut saturation: HashMap<System, f64> = HashMap::new();
            for system in &systems {
                let Some(server) = servers.get(system) else {
                    continue;
                };
                settle().await;
                let job = Job::Closed {
                    target: Target {
                        protocol: system.protocol(),
                        addr: server.addr,
                    },
                    conns: clients,
                    payload,
                    warmup_ms: plan.warmup_ms,
                    duration_ms: plan.duration_ms,
                };
                match one_worker(context, job, server, warmup + duration).await {
                    Ok((result, cpu)) => {
                        let server_cpu = cpu.server;
                        let throughput = result.completed as f64 / result.elapsed_s.max(1e-9);
                        saturation.insert(*system, throughput);
                        let cell = ClosedCell {
                            system: *system,
                            clients,
                            payload,
                            requests_per_s: throughput,
                            server_cpu_us_per_request: if result.completed > 0 {
                                server_cpu.as_secs_f64() * 1e6 / result.completed as f64
                            } else {
                                0.0
                            },
                            server_cpu_share: server_cpu.as_secs_f64()
                                / result.elapsed_s.max(1e-9),
                            load_cpu_share: result.cpu_s / result.elapsed_s.max(1e-9),
                            others_cpu_share: cpu.others.as_secs_f64()
                                / result.elapsed_s.max(1e-9),
                            errors: result.errors,
                            latency: result.latency,
                        };
                        eprintln!(
                            "  closed {:<22} clients {clients:>5} payload {payload:>6}: {:>9.0} req/s, server {:.1} µs/req",
                            system.label(),
                            cell.requests_per_s,
                            cell.server_cpu_us_per_request
                        );
                        report.closed.push(cell);
                    }
                    Err(err) => report.note(format!(
                        "Request/reply closed loop, {} with {clients} clients and {payload} B: {err}",
                        system.label()
                    )),
                }
            }
            // One offered rate for every system: a fraction of sente-lite json's saturation.
            let reference = saturation
                .get(&System::SenteJson)
                .or_else(|| saturation.get(&crate::report::BASELINE))
                .copied()
                .or_else(|| saturation.values().copied().reduce(f64::max));
            let Some(reference) = reference else {
                continue;
            };
            let rate = (reference * plan.open_fraction).max(1.0);
            for system in &systems {
                let Some(server) = servers.get(system) else {
                    continue;
                };
                settle().await;
                let job = Job::Open {
                    target: Target {
                        protocol: system.protocol(),
                        addr: server.addr,
                    },
                    conns: clients,
                    payload,
                    rate,
                    warmup_ms: plan.warmup_ms,
                    duration_ms: plan.duration_ms,
                };
                match one_worker(context, job, server, warmup + duration).await {
                    Ok((result, _)) => {
                        let own = saturation.get(system).copied().unwrap_or(0.0);
                        let cell = OpenCell {
                            system: *system,
                            clients,
                            payload,
                            offered_per_s: rate,
                            own_saturation_per_s: own,
                            completed: result.completed,
                            errors: result.errors,
                            lost: result.lost,
                            latency: result.latency,
                        };
                        eprintln!(
                            "  open   {:<22} clients {clients:>5} payload {payload:>6}: {:>9.0} req/s offered, p50 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs",
                            system.label(),
                            rate,
                            cell.latency.at(50.0).unwrap_or(0.0),
                            cell.latency.at(99.0).unwrap_or(0.0),
                            cell.latency.at(99.9).unwrap_or(0.0),
                        );
                        report.open.push(cell);
                    }
                    Err(err) => report.note(format!(
                        "Request/reply open loop, {} with {clients} clients and {payload} B: {err}",
                        system.label()
                    )),
                }
            }
        }
    }
    for (_, mut server) in servers {
        server.kill().await;
    }
}
