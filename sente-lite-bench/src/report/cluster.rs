//! The tables of scenarios 7 to 9: several servers on one Redis.

use std::fmt::Write as _;

use super::{PacedCell, Report, Verdict, duration_us, grouped, ratio};
use crate::run::Layout;

/// The cross-node target: p99 of a delivery at the scenario's rate.
const CROSS_NODE_P99_US: f64 = 5_000.0;

fn percentiles(c: &PacedCell, at: &[f64]) -> String {
    at.iter()
        .map(|p| c.latency.at(*p).map_or_else(|| "–".to_owned(), duration_us))
        .collect::<Vec<_>>()
        .join(" | ")
}

/// What arrived, and the subscribers the server closed (slow consumers).
fn delivered(c: &PacedCell) -> String {
    let mut out = format!("{:.2}%", c.delivered_share() * 100.0);
    if c.lost_connections > 0 {
        let _ = write!(out, " ({} subscribers closed)", c.lost_connections);
    }
    out
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

fn ns(value: f64) -> String {
    format!("{} ns", grouped(value))
}

/// The servers' CPU per delivery, when anything was delivered.
fn per_delivery(c: &PacedCell) -> String {
    if c.delivered == 0 {
        "–".to_owned()
    } else {
        ns(c.server_ns_per_delivery())
    }
}

fn redis_ns_per_publication(c: &PacedCell) -> String {
    c.redis_cpu_s.map_or_else(
        || "–".to_owned(),
        |s| ns(s * 1e9 / c.published.max(1) as f64),
    )
}

impl Report {
    pub(super) fn cross_node(&self, out: &mut String) {
        let Some(first) = self.cross_node.first() else {
            return;
        };
        let _ = writeln!(
            out,
            "### 7. Several servers on one Redis: cross-node delivery\n\n\
             A real `redis-server` (no persistence) and the sente-lite servers (`serve --kind \
             sente --redis URL`, `sente-lite-redis`) are processes of their own, all pinned to \
             the servers' CPUs. One connection publishes {} publications/s through `bench/publish` \
             (the fan-out scenario's path: the server calls `broadcast`), each stamped with the \
             time it was due; the subscribers, in up to {} load-generator processes, measure every \
             delivery from that time (wall clock, one machine). {:.1} s of warm-up, then {:.1} s \
             measured; a delivery still missing {:.1} s after the last publication counts as \
             lost. *Across*: the publisher on the first server, the subscribers on the second. \
             Server CPU per delivery: every server's CPU time (`/proc/PID/stat`) over the \
             deliveries; Redis's per publication.\n",
            grouped(first.rate),
            self.plan.cluster_processes,
            self.plan.cluster_warmup_ms as f64 / 1000.0,
            self.plan.cluster_duration_ms as f64 / 1000.0,
            self.plan.cluster_drain_ms as f64 / 1000.0,
        );
        let _ = writeln!(
            out,
            "| subscribers | layout | delivered | p50 | p90 | p99 | p99.9 | max | server CPU per delivery | × memory | Redis CPU per publication |\n|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for c in &self.cross_node {
            let base = self
                .cross_node
                .iter()
                .find(|b| b.layout == Layout::Memory && b.subscribers == c.subscribers)
                .map(PacedCell::server_ns_per_delivery);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                grouped(c.subscribers as f64),
                c.layout.label(),
                delivered(c),
                percentiles(c, &[50.0, 90.0, 99.0, 99.9, 100.0]),
                per_delivery(c),
                ratio(c.server_ns_per_delivery(), base),
                redis_ns_per_publication(c),
            );
        }
        out.push('\n');
    }

    pub(super) fn redis_throughput(&self, out: &mut String) {
        let Some(first) = self.redis_throughput.first() else {
            return;
        };
        let _ = writeln!(
            out,
            "### 8. Throughput through one Redis\n\n\
             The publisher of scenario 7 at rising rates, {} subscribers ({:.1} s measured per \
             rate), until the deliveries fall behind (any missing, or p99 over {}): two servers on \
             one Redis (publisher on the first, subscribers on the second) against one server \
             with the memory engine. *CPU*: cores busy during the measured part (1.0 = one core), \
             the servers' summed; *load*: the publisher's and the subscribers' processes (on the \
             other CPUs), which may be the first to saturate.\n",
            first.subscribers,
            self.plan.throughput_duration_ms as f64 / 1000.0,
            duration_us(crate::run::BEHIND_P99_US),
        );
        let _ = writeln!(
            out,
            "| layout | publications/s | delivered | p50 | p99 | max | servers' CPU | Redis CPU | load CPU | server CPU per delivery | Redis CPU per publication |\n|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for c in &self.redis_throughput {
            let elapsed = c.elapsed_s.max(1e-9);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.2} | {} | {:.2} | {} | {} |",
                c.layout.label(),
                grouped(c.rate),
                delivered(c),
                percentiles(c, &[50.0, 99.0, 100.0]),
                c.server_cpu_s.iter().sum::<f64>() / elapsed,
                c.redis_cpu_s
                    .map_or_else(|| "–".to_owned(), |s| format!("{:.2}", s / elapsed)),
                c.load_cpu_share,
                per_delivery(c),
                redis_ns_per_publication(c),
            );
        }
        out.push('\n');
    }

    pub(super) fn cluster_idle(&self, out: &mut String) {
        if self.cluster_idle.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "### 9. Idle connections across servers on one Redis\n\n\
             Several sente-lite server processes on one Redis share one port (`SO_REUSEPORT`, \
             `shared_listener`: the kernel spreads the connections); the clients come from \
             load-generator processes of at most {} connections each, each bound to a \
             `127.0.0.x` source address of its own. Each server's resident memory and open \
             files before the first connection and {:.1} s after the last; memory per \
             connection = the servers' RSS growth summed over the connections held.\n",
            grouped(self.plan.conns_per_process as f64),
            self.plan.idle_settle_ms as f64 / 1000.0,
        );
        let _ = writeln!(
            out,
            "| servers | connections held | subscribed | per server | RSS per server after | per connection | Redis RSS before → after | all open in |\n|---|---|---|---|---|---|---|---|"
        );
        for c in &self.cluster_idle {
            let held: Vec<usize> = c.servers.iter().map(|s| s.connections).collect();
            let rss: Vec<f64> = c.servers.iter().map(|s| mib(s.rss_after)).collect();
            let _ = writeln!(
                out,
                "| {} | {} of {} | {} | {} – {} | {:.1} – {:.1} MiB | {:.2} KiB | {:.1} → {:.1} MiB | {:.1} s |",
                c.servers.len(),
                grouped(c.open as f64),
                grouped(c.connections as f64),
                if c.channels {
                    "each to a channel of its own"
                } else {
                    "no (plain idle)"
                },
                grouped(held.iter().copied().min().unwrap_or(0) as f64),
                grouped(held.iter().copied().max().unwrap_or(0) as f64),
                rss.iter().copied().fold(f64::MAX, f64::min),
                rss.iter().copied().fold(0.0, f64::max),
                c.per_connection_kib(),
                mib(c.redis_rss_before),
                mib(c.redis_rss_after),
                c.open_s,
            );
        }
        out.push('\n');
    }

    /// p99 across two servers under the target at the scenario's rate, at
    /// each subscriber count.
    pub(super) fn cross_node_verdicts(&self) -> Vec<Verdict> {
        let across = self
            .cross_node
            .iter()
            .filter(|c| c.layout == Layout::RedisTwoServers);
        let mut verdicts = Vec::new();
        for c in across {
            let Some(p99) = c.latency.at(99.0) else {
                continue;
            };
            let complete = c.delivered_share() >= 0.999;
            verdicts.push(Verdict {
                target: format!(
                    "cross-node delivery p99 < 5 ms at {} publications/s",
                    grouped(c.rate)
                ),
                measured: format!(
                    "two servers on one Redis, {} subscribers: p99 {}, {:.2}% delivered",
                    c.subscribers,
                    duration_us(p99),
                    c.delivered_share() * 100.0
                ),
                outcome: if p99 < CROSS_NODE_P99_US && complete {
                    format!("hit (by {})", duration_us(CROSS_NODE_P99_US - p99))
                } else if complete {
                    format!("**miss** by {}", duration_us(p99 - CROSS_NODE_P99_US))
                } else {
                    "**miss** (deliveries missing)".into()
                },
            });
        }
        verdicts
    }
}
