//! Free loopback ports for servers the tests start, taken below the
//! system's ephemeral range: a port there cannot be taken meanwhile as the
//! local port of some outgoing connection, so a server killed and started
//! again on the same port finds it free.

use std::sync::atomic::{AtomicU32, Ordering};

/// The first port of the ephemeral range (`ip_local_port_range`), 32768 if unknown.
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// A loopback port nothing listens on now, below the ephemeral range.
pub(crate) fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low: u32 = 10_000;
    let high = u32::from(ephemeral_start()).max(low + 1_000);
    let seed = std::process::id().wrapping_mul(7_919)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
    for _ in 0..1_000 {
        let step = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = low + (seed.wrapping_add(step.wrapping_mul(7_927)) % (high - low));
        let port = u16::try_from(port).expect("below 65536");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port below the ephemeral range");
}
