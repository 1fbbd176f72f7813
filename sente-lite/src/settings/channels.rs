//! `[[server.channels]]` and `[server.memory_engine]`: channel history and
//! presence per pattern, and the in-memory engine's bounds.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, HOUR_MS, ranged, size};
use crate::engine::{ChannelOptions, MemoryEngineConfig};

/// One `[[server.channels]]` table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawChannel {
    pattern: String,
    history_size: Option<u64>,
    history_ttl_ms: Option<u64>,
    history_max_bytes: Option<u64>,
    presence: Option<bool>,
}

/// `[server.memory_engine]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMemoryEngine {
    max_history_bytes: Option<u64>,
    retention_ms: Option<u64>,
    max_idle_channels: Option<u64>,
}

const DAY_MS: u64 = 24 * HOUR_MS;

/// The channel patterns with their options, in the file's order.
pub(super) fn channels(raw: Vec<RawChannel>) -> Result<Vec<(String, ChannelOptions)>, ConfigError> {
    raw.into_iter()
        .enumerate()
        .map(|(i, raw)| {
            let key = |name: &str| format!("server.channels[{i}].{name}");
            if raw.pattern.is_empty() {
                return Err(ConfigError::new(
                    key("pattern"),
                    "a pattern is a channel name, or a prefix ending in `*` (`*` alone for all)",
                ));
            }
            let mut options = ChannelOptions::default();
            if let Some(v) = ranged(&key("history_size"), raw.history_size, 0, 1_000_000)? {
                options.history_size = size(v);
            }
            if let Some(v) = ranged(&key("history_ttl_ms"), raw.history_ttl_ms, 1, 30 * DAY_MS)? {
                options.history_ttl = Duration::from_millis(v);
            }
            if let Some(v) = ranged(&key("history_max_bytes"), raw.history_max_bytes, 0, 1 << 40)? {
                options.history_max_bytes = size(v);
            }
            if let Some(presence) = raw.presence {
                options.presence = presence;
            }
            Ok((raw.pattern, options))
        })
        .collect()
}

/// The in-memory engine's bounds, from their defaults.
pub(super) fn memory_engine(raw: RawMemoryEngine) -> Result<MemoryEngineConfig, ConfigError> {
    let mut config = MemoryEngineConfig::default();
    let key = "server.memory_engine";
    if let Some(v) = ranged(
        &format!("{key}.max_history_bytes"),
        raw.max_history_bytes,
        0,
        1 << 40,
    )? {
        config.max_history_bytes = size(v);
    }
    if let Some(v) = ranged(
        &format!("{key}.retention_ms"),
        raw.retention_ms,
        0,
        30 * DAY_MS,
    )? {
        config.retention = Duration::from_millis(v);
    }
    if let Some(v) = ranged(
        &format!("{key}.max_idle_channels"),
        raw.max_idle_channels,
        0,
        100_000_000,
    )? {
        config.max_idle_channels = size(v);
    }
    Ok(config)
}
