//! A soak run's figures: the load's windows merged into rows (a minute by
//! default), the server's samples beside them, and the verdicts the issue of
//! a long run is judged by: memory that stops growing after the warm-up,
//! open files that come back to where they were, latency that stays where
//! it started, and no request lost.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::sample::Sample;
use crate::window::{Latencies, LoadWindow};

/// Most the server's resident memory may grow from the first row after the
/// warm-up to the last.
pub const MAX_RSS_GROWTH: f64 = 0.05;

/// Most the request p99 of the last row may be over that of the first row
/// after the warm-up, as a ratio (and 1 ms besides, for rows of a few ms).
pub const MAX_P99_RATIO: f64 = 1.5;

/// How the run was made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    /// The command that made it.
    pub command: String,
    /// The machine it ran on.
    pub machine: String,
    /// Length of the load, seconds.
    pub seconds: u64,
    /// Connections open at once, over all load processes.
    pub conns: usize,
    /// Load processes.
    pub loads: usize,
    /// Rooms (channels) the connections are spread over.
    pub rooms: usize,
    /// Shortest and longest connection lifetime, ms.
    pub life_ms: (u64, u64),
    /// Mean time between a connection's requests, and its publications, ms.
    pub every_ms: (u64, u64),
    /// A window, seconds.
    pub window_s: u64,
    /// A row of the table, seconds (a whole number of windows).
    pub row_s: u64,
    /// The warm-up, seconds: memory growth is measured from the first row
    /// after it.
    pub warmup_s: u64,
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    /// How it was made.
    pub settings: Settings,
    /// The load's windows, merged over the load processes, in order.
    pub windows: Vec<LoadWindow>,
    /// The server, read at the end of each window.
    pub samples: Vec<Sample>,
    /// The server before the first connection.
    pub before: Sample,
    /// The server once every client had left.
    pub after: Sample,
    /// What the loads counted after the last window, while leaving.
    pub leaving: LoadWindow,
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// Start and end of the row, seconds since the load started.
    pub span_s: (u64, u64),
    /// The windows' figures, added up.
    pub load: LoadWindow,
    /// The request latencies of the row.
    pub latency: Latencies,
    /// Highest resident memory of the server, bytes.
    pub rss: u64,
    /// Most open files of the server.
    pub open_files: u64,
    /// Server CPU over the row, as a share of one core.
    pub cpu: f64,
}

/// A verdict: what was measured against what it should be.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// What is judged.
    pub what: &'static str,
    /// The figures.
    pub figures: String,
    /// Whether it holds.
    pub holds: bool,
    /// A verdict on time: reported, never a reason to fail a run (the
    /// latency is measured by the load, on whatever machine it runs).
    pub timed: bool,
}

fn mib(bytes: u64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let mib = bytes as f64 / (1024.0 * 1024.0);
    mib
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.1}"))
}

impl Run {
    /// The windows and samples, by rows of `settings.row_s`.
    pub fn rows(&self) -> Vec<Row> {
        let per_row = (self.settings.row_s / self.settings.window_s.max(1)).max(1);
        let per_row = usize::try_from(per_row).unwrap_or(1);
        let mut rows = Vec::new();
        let mut cpu_before = self.before.cpu_s;
        let mut time_before = 0.0;
        for (n, windows) in self.windows.chunks(per_row).enumerate() {
            let start = n * per_row;
            let samples = &self.samples
                [start.min(self.samples.len())..(start + windows.len()).min(self.samples.len())];
            let mut load = LoadWindow::default();
            let mut latency = Latencies::default();
            for window in windows {
                let mut counts = window.clone();
                counts.latency_us.clear();
                counts.live = 0;
                load.merge(&counts);
                latency.add_counts(&window.latency_us);
            }
            load.live = windows.last().map_or(0, |w| w.live);
            let (cpu, at) = samples
                .last()
                .map_or((cpu_before, time_before), |s| (s.cpu_s, s.at_s));
            let share = if at > time_before {
                (cpu - cpu_before) / (at - time_before)
            } else {
                0.0
            };
            cpu_before = cpu;
            time_before = at;
            let first = u64::try_from(start).unwrap_or(0) * self.settings.window_s;
            let windows_len = u64::try_from(windows.len()).unwrap_or(0);
            rows.push(Row {
                span_s: (first, first + windows_len * self.settings.window_s),
                load,
                latency,
                rss: samples.iter().map(|s| s.rss).max().unwrap_or(0),
                open_files: samples.iter().map(|s| s.open_files).max().unwrap_or(0),
                cpu: share,
            });
        }
        rows
    }

    /// Every window's figures added up, and what came after them.
    pub fn totals(&self) -> LoadWindow {
        let mut total = LoadWindow::default();
        for window in self.windows.iter().chain([&self.leaving]) {
            let mut counts = window.clone();
            counts.latency_us.clear();
            counts.live = 0;
            total.merge(&counts);
        }
        total
    }

    /// The verdicts, in the order the report gives them.
    pub fn verdicts(&self) -> Vec<Verdict> {
        let rows = self.rows();
        let mut verdicts = Vec::new();
        let settled = rows
            .iter()
            .find(|r| r.span_s.0 >= self.settings.warmup_s && r.rss > 0);
        let last = rows.last();
        if let (Some(first), Some(last)) = (settled, last) {
            #[allow(clippy::cast_precision_loss)]
            let growth = last.rss as f64 / first.rss as f64 - 1.0;
            verdicts.push(Verdict {
                what: "server memory after the warm-up",
                figures: format!(
                    "{:.1} MiB at {}–{} s, {:.1} MiB at {}–{} s: {:+.1}% (at most {:.0}%)",
                    mib(first.rss),
                    first.span_s.0,
                    first.span_s.1,
                    mib(last.rss),
                    last.span_s.0,
                    last.span_s.1,
                    growth * 100.0,
                    MAX_RSS_GROWTH * 100.0
                ),
                holds: growth < MAX_RSS_GROWTH,
                timed: false,
            });
        } else {
            verdicts.push(Verdict {
                what: "server memory after the warm-up",
                figures: "no row after the warm-up".to_owned(),
                holds: false,
                timed: false,
            });
        }
        let peak = rows.iter().map(|r| r.open_files).max().unwrap_or(0);
        verdicts.push(Verdict {
            what: "server open files",
            figures: format!(
                "{} before the load, {peak} at most during it, {} once every client left",
                self.before.open_files, self.after.open_files
            ),
            holds: self.after.open_files <= self.before.open_files,
            timed: false,
        });
        let totals = self.totals();
        verdicts.push(Verdict {
            what: "requests",
            figures: format!(
                "{} answered, {} publications, {} failed; {} connections refused; {} reconnections the server caused",
                totals.requests,
                totals.publishes,
                totals.request_errors,
                totals.connect_errors,
                totals.reconnects
            ),
            holds: totals.request_errors == 0
                && totals.connect_errors == 0
                && totals.reconnects == 0
                && totals.requests > 0
                && totals.received > 0,
            timed: false,
        });
        let (_, settled, last) = self.p99s();
        if let (Some(settled), Some(last)) = (settled, last) {
            verdicts.push(Verdict {
                what: "request p99 from the first row after the warm-up to the last",
                figures: format!(
                    "{settled:.1} ms, then {last:.1} ms (at most {MAX_P99_RATIO}× + 1 ms)"
                ),
                holds: last <= settled * MAX_P99_RATIO + 1.0,
                timed: true,
            });
        }
        verdicts
    }

    /// p99 in the first row, the first after the warm-up, and the last.
    pub fn p99s(&self) -> (Option<f64>, Option<f64>, Option<f64>) {
        let rows = self.rows();
        let settled = rows.iter().find(|r| r.span_s.0 >= self.settings.warmup_s);
        (
            rows.first().and_then(|r| r.latency.ms_at(99.0)),
            settled.and_then(|r| r.latency.ms_at(99.0)),
            rows.last().and_then(|r| r.latency.ms_at(99.0)),
        )
    }

    /// The report, as Markdown.
    pub fn markdown(&self, chart: Option<&str>) -> String {
        let s = &self.settings;
        let mut out = String::from("# Soak\n\n");
        let _ = writeln!(
            out,
            "Command: `{}`\n\nMachine: {}\n\n{} connections at once over {} load process{} ({} rooms), \
             each living {}–{} s, then closed (three in four with a close frame, one in four \
             by dropping its socket) and opened again; a request every {:.1} s and a \
             publication every {:.1} s per connection (±50%). {} s of load, {} s of warm-up.\n",
            s.command,
            s.machine,
            s.conns,
            s.loads,
            if s.loads == 1 { "" } else { "es" },
            s.rooms,
            s.life_ms.0 / 1000,
            s.life_ms.1 / 1000,
            f64::from(u32::try_from(s.every_ms.0).unwrap_or(u32::MAX)) / 1000.0,
            f64::from(u32::try_from(s.every_ms.1).unwrap_or(u32::MAX)) / 1000.0,
            s.seconds,
            s.warmup_s,
        );
        if let Some(chart) = chart {
            let _ = writeln!(out, "![soak curves]({chart})\n");
        }
        out.push_str(
            "| time (s) | open | opened | closed / dropped | requests | failed | p50 ms | p99 ms | max ms | received | server RSS MiB | open files | server CPU |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for row in self.rows() {
            let l = &row.load;
            let _ = writeln!(
                out,
                "| {}–{} | {} | {} | {} / {} | {} | {} | {} | {} | {} | {} | {:.1} | {} | {:.0}% |",
                row.span_s.0,
                row.span_s.1,
                l.live,
                l.connects,
                l.graceful,
                l.dropped,
                l.requests,
                l.request_errors,
                ms(row.latency.ms_at(50.0)),
                ms(row.latency.ms_at(99.0)),
                ms(row.latency.ms_at(100.0)),
                l.received,
                mib(row.rss),
                row.open_files,
                row.cpu * 100.0,
            );
        }
        out.push('\n');
        for verdict in self.verdicts() {
            let _ = writeln!(
                out,
                "- {}: {} — **{}**",
                verdict.what,
                verdict.figures,
                if verdict.holds { "holds" } else { "FAILS" }
            );
        }
        let (first, _, last) = self.p99s();
        let totals = self.totals();
        let _ = writeln!(
            out,
            "- request p99 in the first row (the ramp) and the last: {} ms, {} ms\n\
             - connections: {} opened, {} closed with a close frame, {} dropped ({} with a request in flight)\n\
             - server memory once every client left: {:.1} MiB (before the load: {:.1} MiB)",
            ms(first),
            ms(last),
            totals.connects,
            totals.graceful,
            totals.dropped,
            totals.abandoned,
            mib(self.after.rss),
            mib(self.before.rss),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn run(rss_mib: &[u64], files_after: u64, errors: u64) -> Run {
        let windows = rss_mib
            .iter()
            .enumerate()
            .map(|(i, _)| LoadWindow {
                index: i as u64,
                live: 100,
                connects: 10,
                requests: 1000,
                received: 500,
                request_errors: u64::from(i == 0) * errors,
                latency_us: vec![(1000, 990), (5000, 10)],
                ..LoadWindow::default()
            })
            .collect();
        let samples = rss_mib
            .iter()
            .enumerate()
            .map(|(i, rss)| Sample {
                at_s: (i as f64 + 1.0) * 10.0,
                rss: rss * MIB,
                open_files: 110,
                cpu_s: i as f64,
            })
            .collect();
        Run {
            settings: Settings {
                command: "soak".to_owned(),
                machine: "test".to_owned(),
                seconds: 10 * rss_mib.len() as u64,
                conns: 100,
                loads: 1,
                rooms: 10,
                life_ms: (1000, 2000),
                every_ms: (100, 1000),
                window_s: 10,
                row_s: 20,
                warmup_s: 20,
            },
            windows,
            samples,
            before: Sample {
                open_files: 10,
                ..Sample::default()
            },
            after: Sample {
                open_files: files_after,
                ..Sample::default()
            },
            leaving: LoadWindow::default(),
        }
    }

    fn holds(run: &Run) -> Vec<bool> {
        run.verdicts()
            .iter()
            .filter(|v| !v.timed)
            .map(|v| v.holds)
            .collect()
    }

    #[test]
    fn rows_add_up_their_windows() {
        let rows = run(&[10, 20, 30, 40], 10, 0).rows();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].span_s, (20, 40));
        assert_eq!(rows[1].load.requests, 2000);
        assert_eq!(rows[1].rss, 40 * MIB);
        assert_eq!(rows[1].latency.len(), 2000);
        assert!((rows[1].cpu - 0.1).abs() < 1e-9, "{}", rows[1].cpu);
    }

    #[test]
    fn memory_is_judged_from_the_first_row_after_the_warm_up() {
        // Growth during the warm-up does not count; 100 → 104 MiB holds.
        assert_eq!(holds(&run(&[10, 50, 100, 100, 104, 103], 10, 0)), [true; 3]);
        // 100 → 106 MiB does not.
        assert_eq!(
            holds(&run(&[10, 50, 100, 100, 106, 100], 10, 0)),
            [false, true, true]
        );
    }

    #[test]
    fn open_files_must_come_back_and_requests_must_not_fail() {
        assert_eq!(holds(&run(&[10, 10, 10, 10], 11, 0)), [true, false, true]);
        assert_eq!(holds(&run(&[10, 10, 10, 10], 10, 1)), [true, true, false]);
    }

    #[test]
    fn p99_is_judged_but_on_time() {
        let mut slow = run(&[10, 10, 10, 10, 10, 10], 10, 0);
        slow.windows[5].latency_us = vec![(9000, 1000)];
        let p99 = slow.verdicts().pop().expect("a p99 verdict");
        assert!(p99.timed);
        assert!(!p99.holds, "{}", p99.figures);
        let p99 = run(&[10, 10, 10, 10, 10, 10], 10, 0)
            .verdicts()
            .pop()
            .expect("a p99 verdict");
        assert!(p99.holds, "{}", p99.figures);
    }
}
