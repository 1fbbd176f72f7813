//! Configuration as data: server, client and logging settings from a TOML file,
//! overridden by environment variables, every value checked against its range.
//!
//! ```toml
//! [server]
//! addr = "0.0.0.0:3000"          # default "127.0.0.1:3000"
//! path = "/ws"
//! default_codec = "json"         # or "postcard"
//! origins = "same-host"          # or "any", or ["https://app.example"]
//! hosts = "auto"                 # or "loopback", "any", or ["app.example", "localhost"]
//! ping_interval_ms = 25000
//! ping_timeout_ms = 10000
//! request_timeout_ms = 10000
//! presence_grace_ms = 5000
//! publish_schema = true          # GET /schema: the shapes of the events
//!
//! [server.limits]
//! max_message_size = 1048576
//! rate_per_sec = 0               # the default, no rate limit; 1000 bounds each connection
//! http_header_timeout_ms = 10000
//! http_idle_timeout_ms = 30000
//! idle_park_after_ms = 1000      # an idle connection lets go of its buffers
//!
//! [server.telemetry]             # client telemetry (`telemetry/batch`)
//! enabled = true
//! require_user = false           # true: anonymous connections get `forbidden`
//! records_per_sec = 50           # budget per connection
//! records_burst = 500
//! bytes_per_sec = 65536
//! bytes_burst = 262144
//! summary_interval_ms = 5000     # at most one "records lost" line per connection this often
//!
//! [[server.channels]]            # history and presence per channel pattern
//! pattern = "room/*"             # a name, or a prefix ending in `*`
//! history_size = 100             # publications kept for recovery (0: none)
//! history_ttl_ms = 300000
//! history_max_bytes = 1048576
//! presence = true
//!
//! [server.http_api]              # optional: /api/publish, /api/send, ... for other services
//! keys = ["a long random key"]   # `Authorization: Bearer KEY`; 16 bytes or more each
//! max_body_bytes = 1048576
//!
//! [server.compression]           # optional: large frames compressed (extension `compression`)
//! min_bytes = 4096
//! level = 1                      # 1 (fastest) to 9 (smallest)
//!
//! [server.memory_engine]         # bounds of the default in-memory engine
//! max_history_bytes = 67108864   # all histories together
//! retention_ms = 600000          # how long an idle channel keeps its epoch
//! max_idle_channels = 100000
//!
//! [server.tls]                   # optional: serve wss://
//! cert = "cert.pem"
//! key = "key.pem"
//!
//! [client]
//! url = "ws://127.0.0.1:3000/ws"
//! codec = "postcard"
//!
//! [client.reconnect]
//! initial_delay_ms = 250
//! multiplier = 2.0
//! max_delay_ms = 30000
//! max_attempts = 10              # absent: forever
//!
//! [logging]
//! filter = "info,sente_lite=debug"  # RUST_LOG wins when set
//! console = true
//! json_file = "logs/sente-lite.jsonl"
//! rotation = "daily"             # "hourly", "daily" or "never"
//! ```
//!
//! Every key is optional; a missing key keeps its default, which is documented on
//! [`ServerConfig`], [`Limits`](crate::server::Limits),
//! [`TelemetryConfig`](crate::server::TelemetryConfig), [`ReconnectPolicy`] and
//! the fields below. An environment variable `SENTE_LITE__SECTION__KEY`
//! (double underscores between parts, any case) overrides a key, for example
//! `SENTE_LITE__SERVER__LIMITS__MAX_MESSAGE_SIZE=2097152` (the tables of
//! `[[server.channels]]` are set in the file only). An unknown key, a
//! value of the wrong type, or a value out of range is a [`ConfigError`] naming
//! the key and what is allowed.
//!
//! The tables are read straight into the types that use them ([`ServerConfig`]
//! and the others derive `Deserialize`), then [`Settings::validate`] checks
//! every value against its range.

pub(crate) mod de;
mod validate;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::Codec;
use crate::client::{ClientBuilder, ReconnectPolicy};
use crate::server::ServerConfig;
use validate::Validate;

/// A setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration key `{key}`: {message}")]
pub struct ConfigError {
    /// The key, as a dotted path (`server.limits.max_message_size`), or the file.
    pub key: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Everything a configuration file holds.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The server's settings.
    pub server: ServerSettings,
    /// The client's settings.
    pub client: ClientSettings,
    /// Logging output for applications (see `logging::init` with the `logging` feature).
    pub logging: LoggingSettings,
}

/// A server's settings: the `[server]` table, whose keys other than `addr`
/// and `tls` are those of [`ServerConfig`].
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    /// The address to bind. Default `127.0.0.1:3000`.
    pub addr: String,
    /// Everything else ([`ServerConfig`]).
    pub config: ServerConfig,
    /// Certificate and key to serve `wss://`, if any.
    pub tls: Option<TlsFiles>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:3000".into(),
            config: ServerConfig::default(),
            tls: None,
        }
    }
}

/// PEM files of a certificate chain and its private key (`[server.tls]`:
/// both keys are required).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The certificate chain (PEM).
    pub cert: PathBuf,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// A client's settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientSettings {
    /// The server's endpoint. Default `ws://127.0.0.1:3000/ws`.
    pub url: String,
    /// The codec to ask for. Default JSON.
    #[serde(deserialize_with = "de::codec")]
    pub codec: Codec,
    /// How long a request waits (`request_timeout_ms`). Default 10 s.
    #[serde(rename = "request_timeout_ms", with = "de::millis")]
    pub request_timeout: Duration,
    /// How long connecting may take (`connect_timeout_ms`). Default 10 s.
    #[serde(rename = "connect_timeout_ms", with = "de::millis")]
    pub connect_timeout: Duration,
    /// How long the handshake may take (`handshake_timeout_ms`). Default 10 s.
    #[serde(rename = "handshake_timeout_ms", with = "de::millis")]
    pub handshake_timeout: Duration,
    /// Sends queued while away. Default 1024.
    pub queue_capacity: usize,
    /// Requests in flight. Default 64.
    pub max_in_flight: usize,
    /// Reconnection.
    pub reconnect: ReconnectPolicy,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            url: "ws://127.0.0.1:3000/ws".into(),
            codec: Codec::Json,
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            queue_capacity: 1024,
            max_in_flight: 64,
            reconnect: ReconnectPolicy::default(),
        }
    }
}

impl ClientSettings {
    /// A client builder with these settings.
    pub fn builder(&self) -> ClientBuilder {
        crate::Client::builder(self.url.clone())
            .codec(self.codec)
            .request_timeout(self.request_timeout)
            .connect_timeout(self.connect_timeout)
            .handshake_timeout(self.handshake_timeout)
            .queue_capacity(self.queue_capacity)
            .max_in_flight(self.max_in_flight)
            .reconnect(self.reconnect.clone())
    }
}

/// How often a log file starts anew: `"hourly"`, `"daily"` or `"never"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rotation {
    /// Every hour.
    Hourly,
    /// Every day (the default).
    #[default]
    Daily,
    /// Never.
    Never,
}

/// Logging output for applications.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingSettings {
    /// A `tracing` filter such as `info,sente_lite=debug`; `RUST_LOG` wins when set.
    /// Default `info`.
    pub filter: String,
    /// Readable lines on standard error. Default on.
    pub console: bool,
    /// JSON lines to this file (its folder is created), if set.
    pub json_file: Option<PathBuf>,
    /// How often the JSON file rotates.
    pub rotation: Rotation,
}

impl Default for LoggingSettings {
    fn default() -> Self {
        Self {
            filter: "info".into(),
            console: true,
            json_file: None,
            rotation: Rotation::Daily,
        }
    }
}

impl Settings {
    /// Reads `path` (when given) and the process's `SENTE_LITE__...` environment variables.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let text = match path {
            None => String::new(),
            Some(path) => std::fs::read_to_string(path).map_err(|e| {
                ConfigError::new(
                    path.display().to_string(),
                    format!("cannot read the file: {e}"),
                )
            })?,
        };
        Self::from_sources(&text, std::env::vars())
    }

    /// Parses TOML text, without environment overrides.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Self::from_sources(text, std::iter::empty())
    }

    /// Parses TOML text, then applies the overrides among `env` (pairs of
    /// variable name and value; names not starting with `SENTE_LITE__` are ignored).
    pub fn from_sources(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table: toml::Table = toml::from_str(text)
            .map_err(|e| ConfigError::new("(file)", format!("not valid TOML: {e}")))?;
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("SENTE_LITE__") else {
                continue;
            };
            let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
            override_key(&mut table, &path, &value)?;
        }
        let warn_given = table
            .get("server")
            .and_then(|server| server.get("limits"))
            .and_then(|limits| limits.get("warn_message_size"))
            .is_some();
        let mut settings: Settings = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| {
                let key = e.path().to_string();
                let message = e.into_inner().to_string();
                ConfigError::new(key, message.lines().next().unwrap_or_default())
            })?;
        let limits = &mut settings.server.config.limits;
        if !warn_given && limits.warn_message_size > limits.max_message_size {
            // The default warning threshold follows a lowered maximum: half of it.
            limits.warn_message_size = limits.max_message_size / 2;
        }
        settings.validate()?;
        Ok(settings)
    }

    /// Checks every value against its range and rules, as [`Settings::load`]
    /// does: the first one out of bounds is an error naming its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        Validate::validate(self, "")
    }
}

/// Sets `path` in `table` to `value` (read as a TOML value when it parses as one,
/// as a string otherwise).
fn override_key(table: &mut toml::Table, path: &[String], value: &str) -> Result<(), ConfigError> {
    let key = path.join(".");
    let Some((last, parents)) = path.split_last() else {
        return Err(ConfigError::new(key, "an override names at least one key"));
    };
    let mut current = table;
    for part in parents {
        let entry = current
            .entry(part.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry
            .as_table_mut()
            .ok_or_else(|| ConfigError::new(key.clone(), format!("`{part}` is not a table")))?;
    }
    let parsed = format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()));
    current.insert(last.clone(), parsed);
    Ok(())
}
