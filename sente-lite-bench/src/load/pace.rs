//! A paced publisher: one connection asks the server to publish `rate`
//! messages a second, each stamped with the time it was due
//! ([`crate::wire::stamped_pad`]), so that the subscribers measure every
//! delivery's latency from its schedule: a publisher that falls behind shows
//! in the latencies instead of hiding them.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};

use super::precise_sleep::PreciseSleep;
use super::{Commands, JobResult, Target, own_cpu, positive_rate, say, say_result};
use crate::machine::wall_ns;
use crate::wire::{BoxError, stamped_pad};

/// Opens the connection, says `ready`, and after `go` publishes `rate`
/// messages a second for `duration`, numbered from 1, `pad` bytes of filler
/// each; reports how many it published.
pub(super) async fn publish(
    target: &Target,
    rate: f64,
    duration: Duration,
    pad: usize,
    commands: &mut Commands,
) -> Result<(), BoxError> {
    positive_rate(rate)?;
    let protocol = target.protocol;
    let (mut sink, mut stream) = protocol.open(target.addr, None).await?.split();
    // The publisher reads nothing it needs; keep its socket drained.
    let drain = tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
    say("ready");
    if !commands.go().await {
        return Ok(());
    }
    let cpu = own_cpu();
    let interval_ns = 1e9 / rate;
    let total = (duration.as_secs_f64() * rate) as u64;
    let start = Instant::now() + Duration::from_millis(5);
    // The wall clock at `start`: stamps are comparable across processes.
    let wall_start = wall_ns() + 5_000_000;
    let offset = |k: u64| (k as f64 * interval_ns) as u64;
    let mut sleep = PreciseSleep::new()?;
    let mut k = 0u64;
    while k < total {
        let now = Instant::now();
        let mut fed = false;
        while k < total && start + Duration::from_nanos(offset(k)) <= now {
            let pad = stamped_pad(wall_start + offset(k), pad);
            sink.feed(protocol.publish(k + 1, &pad)?).await?;
            k += 1;
            fed = true;
        }
        if fed {
            sink.flush().await?;
        }
        if k < total {
            sleep.until(start + Duration::from_nanos(offset(k))).await?;
        }
    }
    let elapsed = start.elapsed();
    drain.abort();
    say_result(&JobResult {
        completed: total,
        elapsed_s: elapsed.as_secs_f64(),
        open: 1,
        cpu_s: own_cpu().saturating_sub(cpu).as_secs_f64(),
        ..JobResult::default()
    });
    Ok(())
}
