//! `fill`: the memory of a history, in a process of its own. A sente-lite
//! server with the in-memory engine and no connection publishes small
//! messages on channels whose histories keep every one of them; the process's
//! resident memory before the first and after the last publication, beside
//! the bytes of encoded frames the engine says it holds.

use sente_lite::engine::{MemoryEngine, MemoryEngineConfig};
use sente_lite::server::ChannelOptions;
use sente_lite::{Codec, Server};

use crate::events::Tick;
use crate::machine::rss_bytes;
use crate::report::HistoryMemoryCell;
use crate::wire::{BoxError, payload_of};

/// The channels filled, `bench/memory/0` and on.
const PATTERN: &str = "bench/memory/*";

/// No bound in bytes that the fill could reach (1 TiB).
const UNBOUNDED: usize = 1 << 40;

/// Publishes `publications` messages of about `payload` bytes of JSON, in turn
/// on `channels` channels, and prints `result JSON` (a [`HistoryMemoryCell`]).
pub(crate) fn run(publications: usize, channels: usize, payload: usize) -> Result<(), BoxError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let cell = runtime.block_on(fill(publications, channels.max(1), payload))?;
    crate::load::say(&format!("result {}", serde_json::to_string(&cell)?));
    Ok(())
}

/// The filler that makes a [`Tick`] with a number of `digits` digits
/// `payload` bytes of JSON (`{"seq":N,"pad":"..."}`).
fn pad_for(payload: usize, digits: usize) -> String {
    let frame = r#"{"seq":,"pad":""}"#.len() + digits;
    payload_of(payload.saturating_sub(frame))
}

async fn fill(
    publications: usize,
    channels: usize,
    payload: usize,
) -> Result<HistoryMemoryCell, BoxError> {
    let per_channel = publications.div_ceil(channels);
    let engine = MemoryEngine::with_config(MemoryEngineConfig {
        max_history_bytes: UNBOUNDED,
        ..MemoryEngineConfig::default()
    });
    let server = Server::builder()
        .engine(engine.clone())
        .channel_options(
            PATTERN,
            ChannelOptions {
                history_size: per_channel,
                history_max_bytes: UNBOUNDED,
                ..ChannelOptions::default()
            },
        )
        .build()?;
    let names: Vec<String> = (0..channels).map(|i| format!("bench/memory/{i}")).collect();
    let pad = pad_for(payload, publications.to_string().len());
    let mut payload_total = 0usize;
    let pid = std::process::id();
    let rss_before = rss_bytes(pid).ok_or("cannot read this process's memory")?;
    for (i, channel) in names.iter().cycle().take(publications).enumerate() {
        let tick = Tick {
            seq: i as u64 + 1,
            pad: pad.clone(),
        };
        payload_total += serde_json::to_string(&tick)?.len();
        server.publish(channel, &tick).await?;
    }
    let rss_after = rss_bytes(pid).ok_or("cannot read this process's memory")?;
    let history_bytes = engine.history_bytes();
    let (mut kept, mut json, mut postcard) = (0usize, 0usize, 0usize);
    for channel in &names {
        for publication in server.history(channel).await? {
            kept += 1;
            json += publication.message(Codec::Json, None)?.len();
            postcard += publication.message(Codec::Postcard, None)?.len();
        }
    }
    if kept != publications {
        return Err(format!("the histories hold {kept} of {publications} publications").into());
    }
    let each = |total: usize| total as f64 / publications.max(1) as f64;
    Ok(HistoryMemoryCell {
        channels,
        publications,
        per_channel,
        payload_bytes: each(payload_total),
        json_frame_bytes: each(json),
        postcard_frame_bytes: each(postcard),
        history_bytes,
        channel_count: engine.channel_count(),
        rss_before,
        rss_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filler_makes_the_payload_its_size() {
        let tick = Tick {
            seq: 12_345,
            pad: pad_for(100, 5),
        };
        assert_eq!(serde_json::to_string(&tick).expect("json").len(), 100);
    }
}
