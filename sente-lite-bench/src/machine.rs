//! The machine: its description for the report, CPU pinning, open-file limits,
//! and a process's CPU time and resident memory read from `/proc`.

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Raises this process's soft limit on open files to its hard limit (each
/// connection is a file; the hard limit is the most a process may hold).
pub(crate) fn raise_open_files_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0)
}

/// This process's open-files limit after raising it.
pub(crate) fn open_files_limit() -> u64 {
    rlimit::Resource::NOFILE.get().map_or(0, |(soft, _)| soft)
}

/// Wall-clock time in nanoseconds since the Unix epoch: comparable across the
/// processes of one machine.
pub(crate) fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// What the report says about the machine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Machine {
    /// `nproc`.
    pub(crate) cores: usize,
    /// Total memory, GiB.
    pub(crate) memory_gib: f64,
    /// The CPU's model name.
    pub(crate) cpu_model: String,
    /// The kernel release.
    pub(crate) kernel: String,
    /// The open-files limit of one process.
    pub(crate) open_files: u64,
    /// Node.js version, when installed.
    pub(crate) node: Option<String>,
    /// The date of the run, UTC.
    pub(crate) date: String,
}

impl Machine {
    /// Looks at this machine.
    pub(crate) fn describe() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".to_owned(), |(_, v)| v.trim().to_owned());
        Self {
            cores,
            memory_gib: memory_kib / (1024.0 * 1024.0),
            cpu_model,
            kernel: command_output("uname", &["-r"]).unwrap_or_else(|| "unknown".into()),
            open_files: open_files_limit(),
            node: command_output("node", &["--version"]),
            date: command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
                .unwrap_or_else(|| "unknown".into()),
        }
    }
}

/// Which CPUs the server and the load generators run on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pinning {
    /// `taskset -c` list for servers, or `None` when running unpinned.
    pub(crate) server: Option<String>,
    /// `taskset -c` list for load generators (and the run itself).
    pub(crate) load: Option<String>,
    /// Why the run is unpinned, if it is.
    pub(crate) unpinned_because: Option<String>,
    /// CPUs each side gets.
    pub(crate) server_cpus: usize,
    /// CPUs the load side gets.
    pub(crate) load_cpus: usize,
}

impl Pinning {
    /// Splits the CPUs in two halves (the server gets the first) when `taskset`
    /// exists and there are at least two CPUs.
    pub(crate) fn detect() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let unpinned = |why: &str| Self {
            server: None,
            load: None,
            unpinned_because: Some(why.to_owned()),
            server_cpus: cores,
            load_cpus: cores,
        };
        if cores < 2 {
            return unpinned("one CPU only");
        }
        if command_output("taskset", &["-p", &std::process::id().to_string()]).is_none() {
            return unpinned("`taskset` is not installed");
        }
        let half = cores / 2;
        let list = |from: usize, to: usize| {
            if from + 1 == to {
                from.to_string()
            } else {
                format!("{from}-{}", to - 1)
            }
        };
        Self {
            server: Some(list(0, half)),
            load: Some(list(half, cores)),
            unpinned_because: None,
            server_cpus: half,
            load_cpus: cores - half,
        }
    }

    /// Pins this process (all its threads) to the load CPUs.
    pub(crate) fn pin_self_to_load(&self) {
        if let Some(cpus) = &self.load {
            let _ = command_output(
                "taskset",
                &["-a", "-p", "-c", cpus, &std::process::id().to_string()],
            );
        }
    }
}

/// CPU time all CPUs of the machine have been busy so far (every process,
/// ours and others), from the first line of `/proc/stat`.
pub(crate) fn machine_busy(ticks_per_sec: f64) -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<f64> = line
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is in user).
    let total: f64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4).unwrap_or(&0.0);
    Some(Duration::from_secs_f64(
        (total - idle).max(0.0) / ticks_per_sec,
    ))
}

/// Lowers (negative `n`: raises) this process's scheduling priority, which the
/// processes it starts inherit: on a machine shared with other work, the
/// measured processes then get the CPUs they are pinned to.
///
/// With autogroup scheduling (`/proc/sys/kernel/sched_autogroup_enabled`),
/// niceness only orders processes of one session; the session's own group is
/// given the same niceness so that it counts against other sessions too.
pub(crate) fn renice_self(n: i32) -> bool {
    let process = command_output(
        "renice",
        &["-n", &n.to_string(), "-p", &std::process::id().to_string()],
    )
    .is_some();
    let autogroup = std::path::Path::new("/proc/self/autogroup");
    if autogroup.exists() {
        let _ = std::fs::write(autogroup, n.to_string());
    }
    process
}

/// Waits, at most `patience`, until the machine has been nearly idle (other
/// processes busy for less than a quarter of a core) for half a second.
/// Returns how busy it was in the last half second, in cores.
pub(crate) async fn wait_for_quiet(ticks_per_sec: f64, patience: Duration) -> f64 {
    let window = Duration::from_millis(500);
    let until = tokio::time::Instant::now() + patience;
    loop {
        let before = machine_busy(ticks_per_sec).unwrap_or_default();
        tokio::time::sleep(window).await;
        let busy = machine_busy(ticks_per_sec)
            .unwrap_or_default()
            .saturating_sub(before)
            .as_secs_f64()
            / window.as_secs_f64();
        if busy < 0.25 || tokio::time::Instant::now() >= until {
            return busy;
        }
    }
}

/// Clock ticks per second of `/proc/PID/stat` times.
pub(crate) fn clock_ticks() -> f64 {
    command_output("getconf", &["CLK_TCK"])
        .and_then(|v| v.parse().ok())
        .unwrap_or(100.0)
}

/// A process's user + system CPU time so far, from `/proc/PID/stat`.
pub(crate) fn cpu_time(pid: u32, ticks_per_sec: f64) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_secs_f64((utime + stime) / ticks_per_sec))
}

/// A process's resident memory in bytes, from `VmRSS` in `/proc/PID/status`.
pub(crate) fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// How many files (sockets among them) a process holds open, from
/// `/proc/PID/fd` (0 when it cannot be read).
pub(crate) fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_cpu_time_and_memory() {
        let pid = std::process::id();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(cpu_time(pid, clock_ticks()).is_some());
        assert!(rss_bytes(pid).unwrap_or(0) > 0);
        assert!(open_fds(pid) >= 3);
        assert!(machine_busy(clock_ticks()).is_some());
    }
}
