//! Scenario 1: request/reply. Closed loop for requests/s at saturation (with the
//! server's CPU time per request), then an open loop at a fixed offered rate
//! for the latency percentiles.

use std::collections::HashMap;
use std::time::Duration;

use super::processes::{ServerProcess, Workers};
use super::{Context, Scenario, System};
use crate::load::{Job, JobResult, Target};
use crate::report::{ClosedCell, OpenCell, Report, median};
use crate::wire::BoxError;

/// A measurement's CPU times: the server's, and every other process's on the
/// machine besides the server and the load generator.
struct CpuUse {
    server: Duration,
    others: Duration,
}

/// How long a measurement waits for every server of the cell to be idle.
const IDLE_PATIENCE: Duration = Duration::from_secs(60);

/// Waits until every server of the cell is idle, so that none works off the
/// backlog of its own measurement (one offered more than it can serve) on the
/// core of the next; notes a server still busy after [`IDLE_PATIENCE`].
async fn servers_idle(servers: &HashMap<System, ServerProcess>, report: &mut Report) {
    let started = tokio::time::Instant::now();
    let busy = ServerProcess::wait_idle(servers.values(), IDLE_PATIENCE).await;
    let waited = started.elapsed();
    if waited >= Duration::from_secs(1) {
        eprintln!(
            "  waited {:.1} s for every server to be idle",
            waited.as_secs_f64()
        );
    }
    for server in busy {
        if let Some(system) = servers.iter().find(|(_, s)| s.pid == server.pid) {
            report.note(format!(
                "Request/reply: {} was still busy after {} s of waiting for every server to \
                 be idle; the next measurement began anyway",
                system.0.label(),
                IDLE_PATIENCE.as_secs()
            ));
        }
    }
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

/// One closed-loop measurement as a report cell (a single round).
fn closed_cell(
    system: System,
    clients: usize,
    payload: usize,
    result: &JobResult,
    cpu: &CpuUse,
) -> ClosedCell {
    let elapsed = result.elapsed_s.max(1e-9);
    let requests_per_s = result.completed as f64 / elapsed;
    let server_cpu_us_per_request = if result.completed > 0 {
        cpu.server.as_secs_f64() * 1e6 / result.completed as f64
    } else {
        0.0
    };
    ClosedCell {
        system,
        clients,
        payload,
        requests_per_s,
        server_cpu_us_per_request,
        server_cpu_share: cpu.server.as_secs_f64() / elapsed,
        load_cpu_share: result.cpu_s / elapsed,
        others_cpu_share: cpu.others.as_secs_f64() / elapsed,
        errors: result.errors,
        latency: result.latency.clone(),
        cpu_rounds: vec![server_cpu_us_per_request],
        rps_rounds: vec![requests_per_s],
        p99_rounds: result.latency.at(99.0).into_iter().collect(),
    }
}

/// A system's rounds of one cell as one cell: the round of median server CPU
/// per request (its shares and latencies), with the medians of CPU per
/// request and of requests/s, every round's figures (CPU, requests/s, p99)
/// kept in order, and the errors of all rounds.
fn median_round(mut rounds: Vec<ClosedCell>) -> ClosedCell {
    let cpu: Vec<f64> = rounds.iter().map(|c| c.server_cpu_us_per_request).collect();
    let rps: Vec<f64> = rounds.iter().map(|c| c.requests_per_s).collect();
    let p99: Vec<f64> = rounds.iter().flat_map(|c| c.p99_rounds.clone()).collect();
    let errors = rounds.iter().map(|c| c.errors).sum();
    rounds.sort_by(|a, b| {
        a.server_cpu_us_per_request
            .total_cmp(&b.server_cpu_us_per_request)
    });
    let mut cell = rounds.swap_remove((rounds.len() - 1) / 2);
    cell.server_cpu_us_per_request = median(&cpu);
    cell.requests_per_s = median(&rps);
    cell.errors = errors;
    cell.cpu_rounds = cpu;
    cell.rps_rounds = rps;
    cell.p99_rounds = p99;
    cell
}

/// A system's open-loop rounds of one cell as one cell: the round of median
/// p99 (all its percentiles, so they come from one measurement), with every
/// round's p99, server CPU per request and load generator's CPU kept in
/// order, and the lost requests and errors of all rounds.
fn median_open_round(mut rounds: Vec<OpenCell>) -> OpenCell {
    let p99: Vec<f64> = rounds.iter().flat_map(|c| c.p99_rounds.clone()).collect();
    let cpu: Vec<f64> = rounds.iter().flat_map(|c| c.cpu_rounds.clone()).collect();
    let load: Vec<f64> = rounds
        .iter()
        .flat_map(|c| c.load_cpu_rounds.clone())
        .collect();
    let errors = rounds.iter().map(|c| c.errors).sum();
    let lost = rounds.iter().map(|c| c.lost).sum();
    let key = |c: &OpenCell| c.latency.at(99.0).unwrap_or(f64::INFINITY);
    rounds.sort_by(|a, b| key(a).total_cmp(&key(b)));
    let mut cell = rounds.swap_remove((rounds.len() - 1) / 2);
    cell.p99_rounds = p99;
    cell.cpu_rounds = cpu;
    cell.load_cpu_rounds = load;
    cell.errors = errors;
    cell.lost = lost;
    cell
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
    let cells: Vec<(usize, usize)> = plan
        .clients
        .iter()
        .flat_map(|&clients| plan.payloads.iter().map(move |&payload| (clients, payload)))
        .collect();
    // A round goes over every cell before the next begins, so that a slow
    // stretch of the machine falls on one round of several cells, which
    // the medians leave out, rather than on every round of one cell.
    let mut measured: HashMap<(usize, usize, System), Vec<ClosedCell>> = HashMap::new();
    for round in 0..plan.rounds {
        // Each round turns the order by one, so that no system is always
        // measured first or right after the same other.
        let mut order = systems.clone();
        let turn = round % order.len().max(1);
        order.rotate_left(turn);
        for &(clients, payload) in &cells {
            for system in &order {
                let Some(server) = servers.get(system) else {
                    continue;
                };
                servers_idle(&servers, report).await;
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
                        let cell = closed_cell(*system, clients, payload, &result, &cpu);
                        eprintln!(
                            "  closed {:<22} clients {clients:>5} payload {payload:>6}: {:>9.0} req/s, server {:.1} µs/req{}",
                            system.label(),
                            cell.requests_per_s,
                            cell.server_cpu_us_per_request,
                            if plan.rounds > 1 {
                                format!(" (round {} of {})", round + 1, plan.rounds)
                            } else {
                                String::new()
                            }
                        );
                        measured
                            .entry((clients, payload, *system))
                            .or_default()
                            .push(cell);
                    }
                    Err(err) => report.note(format!(
                        "Request/reply closed loop, {} with {clients} clients and {payload} B: {err}",
                        system.label()
                    )),
                }
            }
        }
    }
    for &(clients, payload) in &cells {
        let mut saturation: HashMap<System, f64> = HashMap::new();
        for system in &systems {
            let Some(rounds) = measured.remove(&(clients, payload, *system)) else {
                continue;
            };
            let cell = median_round(rounds);
            saturation.insert(*system, cell.requests_per_s);
            report.closed.push(cell);
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
        // In rounds too, each in a turned order: one stall of the machine
        // lands in one round's tail, which the median round leaves out.
        let mut open: HashMap<System, Vec<OpenCell>> = HashMap::new();
        for round in 0..plan.rounds {
            let mut order = systems.clone();
            let turn = round % order.len().max(1);
            order.rotate_left(turn);
            for system in &order {
                let Some(server) = servers.get(system) else {
                    continue;
                };
                // A system that cannot serve the offered rate would only show
                // latencies that grow with the length of the run, and the
                // system measured after it showed a tail ten times its own
                // (not from the first's CPU, which was idle again by then).
                let own = saturation.get(system).copied().unwrap_or(0.0);
                if own > 0.0 && rate > own {
                    if round == 0 {
                        report.note(format!(
                            "Request/reply open loop, {} with {clients} clients and {payload} B: \
                             not measured, since the offered {rate:.0} req/s is above its own \
                             saturation ({own:.0} req/s)",
                            system.label()
                        ));
                    }
                    continue;
                }
                servers_idle(&servers, report).await;
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
                    Ok((result, cpu)) => {
                        // The server's CPU time runs from `go`, over the
                        // warm-up too: it is shared by every answer since.
                        let server_cpu = (result.answered > 0)
                            .then(|| cpu.server.as_secs_f64() * 1e6 / result.answered as f64);
                        let cell = OpenCell {
                            system: *system,
                            clients,
                            payload,
                            offered_per_s: rate,
                            own_saturation_per_s: own,
                            completed: result.completed,
                            errors: result.errors,
                            lost: result.lost,
                            p99_rounds: result.latency.at(99.0).into_iter().collect(),
                            latency: result.latency,
                            cpu_rounds: server_cpu.into_iter().collect(),
                            load_cpu_rounds: vec![result.cpu_s / result.elapsed_s.max(1e-9)],
                        };
                        eprintln!(
                            "  open   {:<22} clients {clients:>5} payload {payload:>6}: {:>9.0} req/s offered, p50 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs, server {:.1} µs/req{}",
                            system.label(),
                            rate,
                            cell.latency.at(50.0).unwrap_or(0.0),
                            cell.latency.at(99.0).unwrap_or(0.0),
                            cell.latency.at(99.9).unwrap_or(0.0),
                            server_cpu.unwrap_or(0.0),
                            if plan.rounds > 1 {
                                format!(" (round {} of {})", round + 1, plan.rounds)
                            } else {
                                String::new()
                            }
                        );
                        open.entry(*system).or_default().push(cell);
                    }
                    Err(err) => report.note(format!(
                        "Request/reply open loop, {} with {clients} clients and {payload} B: {err}",
                        system.label()
                    )),
                }
            }
        }
        for system in &systems {
            if let Some(rounds) = open.remove(system) {
                report.open.push(median_open_round(rounds));
            }
        }
    }
    for (_, mut server) in servers {
        server.kill().await;
    }
}
