//! The ranges and rules a value read from the file must keep, per type, with
//! the key of the value that breaks one.

use std::time::Duration;

use super::{ClientSettings, ConfigError, LoggingSettings, ServerSettings, Settings};
use crate::client::ReconnectPolicy;
use crate::engine::{ChannelOptions, MemoryEngineConfig};
use crate::server::{HostPolicy, Limits, ServerConfig, TelemetryConfig};

const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;
const MIB: u64 = 1 << 20;

/// Checks of a part of the settings, found at a dotted key (`server.limits`).
pub(super) trait Validate {
    /// The first value of `self` that breaks a rule, as an error naming its key
    /// under `at`.
    fn validate(&self, at: &str) -> Result<(), ConfigError>;
}

/// The keys of one table.
struct Table<'a>(&'a str);

impl Table<'_> {
    /// The full key of `name`.
    fn key(&self, name: &str) -> String {
        if self.0.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.0)
        }
    }

    /// Checks that `value` of `name` lies in `min..=max`.
    fn range(
        &self,
        name: &str,
        value: impl TryInto<u64>,
        min: u64,
        max: u64,
    ) -> Result<(), ConfigError> {
        let v = value.try_into().unwrap_or(u64::MAX);
        if v < min || v > max {
            return Err(ConfigError::new(
                self.key(name),
                format!("{v} is out of range: allowed {min} to {max}"),
            ));
        }
        Ok(())
    }

    /// Checks that `value` of `name`, in milliseconds, lies in `min..=max`.
    fn millis(&self, name: &str, value: Duration, min: u64, max: u64) -> Result<(), ConfigError> {
        self.range(name, value.as_millis(), min, max)
    }

    /// An error of `name`.
    fn error(&self, name: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.key(name), message)
    }
}

impl Validate for Settings {
    fn validate(&self, at: &str) -> Result<(), ConfigError> {
        let t = Table(at);
        self.server.validate(&t.key("server"))?;
        self.client.validate(&t.key("client"))?;
        self.logging.validate(&t.key("logging"))
    }
}

impl Validate for ServerSettings {
    fn validate(&self, at: &str) -> Result<(), ConfigError> {
        self.config.validate(at)
    }
}

impl Validate for ServerConfig {
    fn validate(&self, at: &str) -> Result<(), ConfigError> {
        let t = Table(at);
        if !self.path.starts_with('/') {
            return Err(t.error("path", format!("`{}` must start with `/`", self.path)));
        }
        if let HostPolicy::AllowList(list) = &self.hosts
            && let Some(bad) = list.iter().find(|name| {
                name.is_empty() || name.contains('/') || name.chars().any(char::is_whitespace)
            })
        {
            return Err(t.error(
                "hosts",
                format!("`{bad}` is not a host name (write `app.example`, not a URL)"),
            ));
        }
        t.millis("ping_interval_ms", self.ping_interval, 100, HOUR_MS)?;
        t.millis("ping_timeout_ms", self.ping_timeout, 100, HOUR_MS)?;
        t.millis("request_timeout_ms", self.request_timeout, 1, HOUR_MS)?;
        t.millis("presence_grace_ms", self.presence_grace, 0, HOUR_MS)?;
        self.limits.validate(&t.key("limits"))?;
        for (i, (pattern, options)) in self.channels.iter().enumerate() {
            let at = format!("{}[{i}]", t.key("channels"));
            if pattern.is_empty() {
                return Err(Table(&at).error(
                    "pattern",
                    "a pattern is a channel name, or a prefix ending in `*` (`*` alone for all)",
                ));
            }
            options.validate(&at)?;
        }
        self.memory_engine.validate(&t.key("memory_engine"))?;
        if let Some(api) = &self.http_api
            && let Some(problem) = api.problem()
        {
            return Err(t.error("http_api", problem));
        }
        if let Some(compression) = &self.compression {
            let c = Table(&t.key("compression"));
            c.range("min_bytes", compression.min_bytes, 1, 1 << 30)?;
            c.range("level", compression.level, 1, 9)?;
        }
        self.telemetry.validate(&t.key("telemetry"))
    }
}

impl Validate for Limits {
    fn validate(&self, at: &str) -> Result<(), ConfigError> {
        let t = Table(at);
        t.range("max_message_size", self.max_message_size, 1024, 64 * MIB)?;
        t.range("warn_message_size", self.warn_message_size, 1, 64 * MIB)?;
        t.range("max_connections", self.max_connections, 1, 10_000_000)?;
        if let Some(v) = self.max_connections_per_address {
            t.range("max_connections_per_address", v, 0, 10_000_000)?;
        }
        t.range("outbound_queue", self.outbound_queue, 1, 1_000_000)?;
        t.range(
            "outbound_queue_bytes",
            self.outbound_queue_bytes,
            1024,
            1 << 40,
        )?;
        t.range(
            "max_in_flight_requests",
            self.max_in_flight_requests,
            1,
            65_536,
        )?;
        t.range(
            "max_concurrent_handlers",
            self.max_concurrent_handlers,
            1,
            65_536,
        )?;
        t.range("max_waiting", self.max_waiting, 0, 1_000_000)?;
        t.range("max_waiting_bytes", self.max_waiting_bytes, 0, 1 << 40)?;
        if let Some(v) = self.rate_per_sec {
            t.range("rate_per_sec", v, 0, 10_000_000)?;
        }
        t.range("rate_burst", self.rate_burst, 1, 10_000_000)?;
        t.range("max_violations", self.max_violations, 1, 1_000_000)?;
        t.millis("violation_refill_ms", self.violation_refill, 1, HOUR_MS)?;
        t.range("max_subscriptions", self.max_subscriptions, 1, 1_000_000)?;
        t.range("max_channel_name", self.max_channel_name, 1, 65_536)?;
        t.range("read_buffer_size", self.read_buffer_size, 512, 16 * MIB)?;
        t.range("write_buffer_size", self.write_buffer_size, 0, 16 * MIB)?;
        t.millis("idle_park_after_ms", self.idle_park_after, 10, HOUR_MS)?;
        t.millis("drain_timeout_ms", self.drain_timeout, 0, HOUR_MS)?;
        t.millis(
            "http_header_timeout_ms",
            self.http_header_timeout,
            1,
            HOUR_MS,
        )?;
        t.millis("http_idle_timeout_ms", self.http_idle_timeout, 1, HOUR_MS)?;
        if self.warn_message_size > self.max_message_size {
            return Err(t.error(
                "warn_message_size",
                format!(
                    "{} is larger than max_message_size ({})",
                    self.warn_message_size, self.max_message_size
                ),
            ));
        }
        Ok(())
    }
}

impl Validate for TelemetryConfig {
    fn validate(&self, at: &str) -> Result<(), ConfigError> {
        let t = Table(at);
        t.range("records_per_sec", self.records_per_sec, 1, 1_000_000)?;
        t.range("records_burst", self.records_burst, 1, 10_000_000)?;
        t.range("bytes_per_sec", self.bytes_per_sec, 1, 1 << 30)?;
        t.range("bytes_burst", self.bytes_burst, 1, 1 << 30)?;
        t.millis("summary_interval_ms", self.summary_interval, 100, HOUR_MS)
    }
}

impl Validate for ChannelOptions {
    fn validate(&self, at: &str) -> Result<(), ConfigError> {
        let t = Table(at);
        t.range("history_size", self.history_size, 0, 1_000_000)?;
        t.millis("history_ttl_ms", self.history_ttl, 1, 30 * DAY_MS)?;
        t.range("history_max_bytes", self.history_max_bytes, 0, 1 << 40)
    }
}

impl Validate for MemoryEngineConfig {
    fn validate(&self, at: &str) -> Result<(), ConfigError> {
        let t = Table(at);
        t.range("max_history_bytes", self.max_history_bytes, 0, 1 << 40)?;
        t.millis("retention_ms", self.retention, 0, 30 * DAY_MS)?;
        t.range("max_idle_channels", self.max_idle_channels, 0, 100_000_000)
    }
}

impl Validate for ClientSettings {
    fn validate(&self, at: &str) -> Result<(), ConfigError> {
        let t = Table(at);
        if !(self.url.starts_with("ws://") || self.url.starts_with("wss://")) {
            return Err(t.error(
                "url",
                format!("`{}` must start with ws:// or wss://", self.url),
            ));
        }
        t.millis("request_timeout_ms", self.request_timeout, 1, HOUR_MS)?;
        t.millis("connect_timeout_ms", self.connect_timeout, 1, HOUR_MS)?;
        t.millis("handshake_timeout_ms", self.handshake_timeout, 1, HOUR_MS)?;
        t.range("queue_capacity", self.queue_capacity, 1, 1_000_000)?;
        t.range("max_in_flight", self.max_in_flight, 1, 65_536)?;
        self.reconnect.validate(&t.key("reconnect"))
    }
}

impl Validate for ReconnectPolicy {
    fn validate(&self, at: &str) -> Result<(), ConfigError> {
        let t = Table(at);
        t.millis("initial_delay_ms", self.initial_delay, 1, HOUR_MS)?;
        t.millis("max_delay_ms", self.max_delay, 1, HOUR_MS)?;
        if let Some(v) = self.max_attempts {
            t.range("max_attempts", v, 0, u64::from(u32::MAX))?;
        }
        if !(1.0..=10.0).contains(&self.multiplier) {
            return Err(t.error(
                "multiplier",
                format!("{} is out of range: allowed 1.0 to 10.0", self.multiplier),
            ));
        }
        Ok(())
    }
}

impl Validate for LoggingSettings {
    fn validate(&self, _at: &str) -> Result<(), ConfigError> {
        Ok(())
    }
}
