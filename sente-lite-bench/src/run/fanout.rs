//! Scenario 2: broadcast fan-out. Subscribers in load-generator processes join
//! one room; this process publishes. First single messages, each timed until
//! every subscriber has it; then sustained publishing with a bounded number of
//! messages not yet everywhere, for deliveries per second.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};

use super::processes::Workers;
use super::{Context, Scenario, System, shares};
use crate::load::{Job, Target};
use crate::machine::wall_ns;
use crate::report::{FanoutCell, Report};
use crate::wire::{BoxError, payload_of};

/// How long one message may take to reach everyone before the run gives up.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(15);

/// Per message: processes that reported it, and the latest arrival.
#[derive(Default)]
struct Arrivals(HashMap<u64, (usize, u64)>);

impl Arrivals {
    /// Takes in a `got SEQ NS` line; returns the message's latest arrival when
    /// the last of `processes` just reported it.
    fn take(&mut self, line: &str, processes: usize) -> Option<(u64, u64)> {
        let mut parts = line.strip_prefix("got ")?.split(' ');
        let seq: u64 = parts.next()?.parse().ok()?;
        let at: u64 = parts.next()?.parse().ok()?;
        let entry = self.0.entry(seq).or_insert((0, 0));
        entry.0 += 1;
        entry.1 = entry.1.max(at);
        if entry.0 == processes {
            let last = entry.1;
            self.0.remove(&seq);
            Some((seq, last))
        } else {
            None
        }
    }
}

async fn next_complete(
    workers: &mut Workers,
    arrivals: &mut Arrivals,
) -> Result<(u64, u64), BoxError> {
    let processes = workers.len();
    loop {
        let (index, line) = workers
            .next_line(MESSAGE_TIMEOUT)
            .await
            .ok_or("a published message did not reach every subscriber in time")?;
        if let Some(done) = arrivals.take(&line, processes) {
            return Ok(done);
        }
        if let Some(why) = line.strip_prefix("failed ") {
            return Err(format!("load generator {index}: {why}").into());
        }
        if line == "exited" {
            return Err(format!("load generator {index} exited").into());
        }
    }
}

async fn one(
    context: &Context,
    system: System,
    subscribers: usize,
) -> Result<FanoutCell, BoxError> {
    let plan = &context.plan;
    let mut server = context.server(system).await?;
    let protocol = system.protocol();
    let target = Target {
        protocol,
        addr: server.addr,
    };
    let jobs: Vec<Job> = shares(subscribers, context.processes_for(subscribers))
        .into_iter()
        .map(|conns| Job::Subscribe {
            target: target.clone(),
            conns,
            source: None,
            latency_from: None,
        })
        .collect();
    let mut workers = Workers::spawn(&jobs, &context.pinning)?;
    let outcome = async {
        workers.wait_all("ready", Duration::from_secs(300)).await?;
        context.quiet().await;
        let publisher = protocol.open(server.addr, None).await?;
        let (mut sink, mut stream) = publisher.split();
        // The publisher reads nothing it needs; keep its socket drained.
        let drain = tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
        let pad = payload_of(plan.fanout_pad);
        let mut arrivals = Arrivals::default();
        let mut seq = 0u64;
        let mut samples_ms = Vec::with_capacity(plan.fanout_samples);
        for _ in 0..plan.fanout_samples {
            seq += 1;
            let sent = wall_ns();
            sink.send(protocol.publish(seq, &pad)?).await?;
            loop {
                let (done, last) = next_complete(&mut workers, &mut arrivals).await?;
                if done == seq {
                    samples_ms.push(last.saturating_sub(sent) as f64 / 1e6);
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Sustained: keep at most `window` messages on their way.
        let cpu = server.cpu();
        let started = Instant::now();
        let until = started + Duration::from_millis(plan.fanout_duration_ms);
        let first = seq + 1;
        let mut published = 0u64;
        let mut completed = 0u64;
        while Instant::now() < until {
            while published - completed < plan.fanout_window {
                seq += 1;
                published += 1;
                sink.feed(protocol.publish(seq, &pad)?).await?;
            }
            sink.flush().await?;
            let (done, _) = next_complete(&mut workers, &mut arrivals).await?;
            if done >= first {
                completed += 1;
            }
        }
        while completed < published {
            let (done, _) = next_complete(&mut workers, &mut arrivals).await?;
            if done >= first {
                completed += 1;
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        let server_cpu = server.cpu().saturating_sub(cpu).as_secs_f64();
        drain.abort();
        workers.send_all("stop").await;
        let results = workers.results(Duration::from_secs(60)).await?;
        let deliveries = completed * subscribers as u64;
        Ok::<_, BoxError>(FanoutCell {
            system,
            subscribers,
            processes: jobs.len(),
            all_have_it_ms: samples_ms,
            messages_per_s: completed as f64 / elapsed,
            deliveries_per_s: deliveries as f64 / elapsed,
            server_cpu_us_per_delivery: server_cpu * 1e6 / deliveries.max(1) as f64,
            server_cpu_share: server_cpu / elapsed,
            lost_connections: results.iter().map(|r| r.errors).sum(),
        })
    }
    .await;
    workers.stop().await;
    server.kill().await;
    outcome
}

/// Runs scenario 2 for every system and subscriber count.
pub(crate) async fn run(context: &Context, report: &mut Report) {
    for &subscribers in &context.plan.subscribers {
        for system in context.plan.systems_for(Scenario::Fanout) {
            match one(context, system, subscribers).await {
                Ok(cell) => {
                    eprintln!(
                        "  fanout {:<29} subscribers {subscribers:>6}: all have it in {:.1} ms (median), {:.0} deliveries/s",
                        system.label(),
                        crate::report::median(&cell.all_have_it_ms),
                        cell.deliveries_per_s
                    );
                    report.fanout.push(cell);
                }
                Err(err) => report.note(format!(
                    "Fan-out, {} with {subscribers} subscribers: {err}",
                    system.label()
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_complete_when_every_process_has_it() {
        let mut arrivals = Arrivals::default();
        assert_eq!(arrivals.take("got 1 100", 2), None);
        assert_eq!(arrivals.take("got 2 50", 2), None);
        assert_eq!(arrivals.take("got 1 90", 2), Some((1, 100)));
        assert_eq!(arrivals.take("ready", 2), None);
        assert_eq!(arrivals.take("got 2 70", 2), Some((2, 70)));
    }
}
