//! A process's resident memory, open files and CPU time, read from `/proc`
//! (Linux).

use std::time::Duration;

/// One reading of a process.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    /// Seconds since the load started.
    pub at_s: f64,
    /// Resident memory (`VmRSS`), bytes.
    pub rss: u64,
    /// Open files, sockets included (entries of `/proc/PID/fd`).
    pub open_files: u64,
    /// User and system CPU time so far, seconds.
    pub cpu_s: f64,
}

/// Reads process `pid` now; `None` once it is gone.
pub fn read(pid: u32, at_s: f64) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let open_files = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(Sample {
        at_s,
        rss: rss_kib * 1024,
        open_files,
        cpu_s: cpu_time(pid)?.as_secs_f64(),
    })
}

/// User and system CPU time of `pid`, from `/proc/PID/stat` (in clock ticks
/// of 1/100 s, the value Linux gives user space on every architecture).
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: count from after it.
    let after_name = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((user + system) * 10))
}
