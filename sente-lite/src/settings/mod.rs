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
//! rate_per_sec = 200             # 0 turns the rate limit off
//! http_header_timeout_ms = 10000
//! http_idle_timeout_ms = 30000
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

mod channels;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::Codec;
use crate::client::{ClientBuilder, ReconnectPolicy};
use crate::server::{HostPolicy, OriginPolicy, ServerConfig};

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
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Settings {
    /// The server's settings.
    pub server: ServerSettings,
    /// The client's settings.
    pub client: ClientSettings,
    /// Logging output for applications (see `logging::init` with the `logging` feature).
    pub logging: LoggingSettings,
}

/// A server's settings.
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

/// PEM files of a certificate chain and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain (PEM).
    pub cert: PathBuf,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// A client's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientSettings {
    /// The server's endpoint. Default `ws://127.0.0.1:3000/ws`.
    pub url: String,
    /// The codec to ask for. Default JSON.
    pub codec: Codec,
    /// How long a request waits. Default 10 s.
    pub request_timeout: Duration,
    /// How long connecting may take. Default 10 s.
    pub connect_timeout: Duration,
    /// How long the handshake may take. Default 10 s.
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

/// How often a log file starts anew.
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
#[derive(Debug, Clone, PartialEq, Eq)]
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    client: RawClient,
    #[serde(default)]
    logging: RawLogging,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    addr: Option<String>,
    path: Option<String>,
    default_codec: Option<String>,
    origins: Option<WordOrList>,
    hosts: Option<WordOrList>,
    ping_interval_ms: Option<u64>,
    ping_timeout_ms: Option<u64>,
    request_timeout_ms: Option<u64>,
    presence_grace_ms: Option<u64>,
    publish_schema: Option<bool>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    telemetry: RawTelemetry,
    tls: Option<RawTls>,
    #[serde(default)]
    channels: Vec<channels::RawChannel>,
    #[serde(default)]
    memory_engine: channels::RawMemoryEngine,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTelemetry {
    enabled: Option<bool>,
    require_user: Option<bool>,
    records_per_sec: Option<u64>,
    records_burst: Option<u64>,
    bytes_per_sec: Option<u64>,
    bytes_burst: Option<u64>,
    summary_interval_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum WordOrList {
    Word(String),
    List(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_message_size: Option<u64>,
    warn_message_size: Option<u64>,
    max_connections: Option<u64>,
    max_connections_per_address: Option<u64>,
    outbound_queue: Option<u64>,
    outbound_queue_bytes: Option<u64>,
    max_in_flight_requests: Option<u64>,
    max_concurrent_handlers: Option<u64>,
    max_waiting: Option<u64>,
    max_waiting_bytes: Option<u64>,
    rate_per_sec: Option<u64>,
    rate_burst: Option<u64>,
    max_violations: Option<u64>,
    violation_refill_ms: Option<u64>,
    max_subscriptions: Option<u64>,
    max_channel_name: Option<u64>,
    read_buffer_size: Option<u64>,
    write_buffer_size: Option<u64>,
    drain_timeout_ms: Option<u64>,
    http_header_timeout_ms: Option<u64>,
    http_idle_timeout_ms: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawClient {
    url: Option<String>,
    codec: Option<String>,
    request_timeout_ms: Option<u64>,
    connect_timeout_ms: Option<u64>,
    handshake_timeout_ms: Option<u64>,
    queue_capacity: Option<u64>,
    max_in_flight: Option<u64>,
    #[serde(default)]
    reconnect: RawReconnect,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawReconnect {
    initial_delay_ms: Option<u64>,
    multiplier: Option<f64>,
    max_delay_ms: Option<u64>,
    max_attempts: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLogging {
    filter: Option<String>,
    console: Option<bool>,
    json_file: Option<PathBuf>,
    rotation: Option<String>,
}

/// Checks `value` of `key` against `min..=max`.
fn ranged(key: &str, value: Option<u64>, min: u64, max: u64) -> Result<Option<u64>, ConfigError> {
    match value {
        Some(v) if v < min || v > max => Err(ConfigError::new(
            key,
            format!("{v} is out of range: allowed {min} to {max}"),
        )),
        other => Ok(other),
    }
}

macro_rules! set {
    ($target:expr, $key:literal, $value:expr, $min:expr, $max:expr, $convert:expr) => {
        if let Some(v) = ranged($key, $value, $min, $max)? {
            $target = $convert(v);
        }
    };
}

fn size(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

fn small(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn codec(key: &str, name: &str) -> Result<Codec, ConfigError> {
    match name {
        "json" => Ok(Codec::Json),
        "postcard" => Ok(Codec::Postcard),
        other => Err(ConfigError::new(
            key,
            format!("`{other}` is not a codec: allowed \"json\" or \"postcard\""),
        )),
    }
}

const HOUR_MS: u64 = 3_600_000;
const MIB: u64 = 1 << 20;

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
        let raw: RawSettings = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| {
                let key = e.path().to_string();
                let message = e.into_inner().to_string();
                ConfigError::new(key, message.lines().next().unwrap_or_default())
            })?;
        Self::check(raw)
    }

    fn check(raw: RawSettings) -> Result<Self, ConfigError> {
        let mut settings = Settings::default();
        let server = raw.server;
        let s = &mut settings.server;
        if let Some(addr) = server.addr {
            s.addr = addr;
        }
        let c = &mut s.config;
        if let Some(path) = server.path {
            if !path.starts_with('/') {
                return Err(ConfigError::new(
                    "server.path",
                    format!("`{path}` must start with `/`"),
                ));
            }
            c.path = path;
        }
        if let Some(name) = server.default_codec {
            c.default_codec = codec("server.default_codec", &name)?;
        }
        if let Some(origins) = server.origins {
            c.origins = match origins {
                WordOrList::Word(w) if w == "same-host" => OriginPolicy::SameHost,
                WordOrList::Word(w) if w == "any" => OriginPolicy::Any,
                WordOrList::Word(w) => {
                    return Err(ConfigError::new(
                        "server.origins",
                        format!(
                            "`{w}` is not allowed: \"same-host\", \"any\" or a list of origins"
                        ),
                    ));
                }
                WordOrList::List(list) => OriginPolicy::AllowList(list),
            };
        }
        if let Some(hosts) = server.hosts {
            c.hosts = match hosts {
                WordOrList::Word(w) if w == "auto" => HostPolicy::Auto,
                WordOrList::Word(w) if w == "loopback" => HostPolicy::Loopback,
                WordOrList::Word(w) if w == "any" => HostPolicy::Any,
                WordOrList::Word(w) => {
                    return Err(ConfigError::new(
                        "server.hosts",
                        format!(
                            "`{w}` is not allowed: \"auto\", \"loopback\", \"any\" or a list of host names"
                        ),
                    ));
                }
                WordOrList::List(list) => {
                    if let Some(bad) = list.iter().find(|name| {
                        name.is_empty()
                            || name.contains('/')
                            || name.chars().any(char::is_whitespace)
                    }) {
                        return Err(ConfigError::new(
                            "server.hosts",
                            format!("`{bad}` is not a host name (write `app.example`, not a URL)"),
                        ));
                    }
                    HostPolicy::AllowList(list)
                }
            };
        }
        set!(
            c.ping_interval,
            "server.ping_interval_ms",
            server.ping_interval_ms,
            100,
            HOUR_MS,
            Duration::from_millis
        );
        set!(
            c.ping_timeout,
            "server.ping_timeout_ms",
            server.ping_timeout_ms,
            100,
            HOUR_MS,
            Duration::from_millis
        );
        set!(
            c.request_timeout,
            "server.request_timeout_ms",
            server.request_timeout_ms,
            1,
            HOUR_MS,
            Duration::from_millis
        );
        set!(
            c.presence_grace,
            "server.presence_grace_ms",
            server.presence_grace_ms,
            0,
            HOUR_MS,
            Duration::from_millis
        );
        if let Some(publish) = server.publish_schema {
            c.publish_schema = publish;
        }
        let (r, l) = (server.limits, &mut c.limits);
        let warn_given = r.warn_message_size.is_some();
        set!(
            l.max_message_size,
            "server.limits.max_message_size",
            r.max_message_size,
            1024,
            64 * MIB,
            size
        );
        set!(
            l.warn_message_size,
            "server.limits.warn_message_size",
            r.warn_message_size,
            1,
            64 * MIB,
            size
        );
        set!(
            l.max_connections,
            "server.limits.max_connections",
            r.max_connections,
            1,
            10_000_000,
            size
        );
        set!(
            l.max_connections_per_address,
            "server.limits.max_connections_per_address",
            r.max_connections_per_address,
            0,
            10_000_000,
            |v| (v > 0).then(|| size(v))
        );
        set!(
            l.outbound_queue,
            "server.limits.outbound_queue",
            r.outbound_queue,
            1,
            1_000_000,
            size
        );
        set!(
            l.outbound_queue_bytes,
            "server.limits.outbound_queue_bytes",
            r.outbound_queue_bytes,
            1024,
            1 << 40,
            size
        );
        set!(
            l.max_in_flight_requests,
            "server.limits.max_in_flight_requests",
            r.max_in_flight_requests,
            1,
            65_536,
            size
        );
        set!(
            l.max_concurrent_handlers,
            "server.limits.max_concurrent_handlers",
            r.max_concurrent_handlers,
            1,
            65_536,
            size
        );
        set!(
            l.max_waiting,
            "server.limits.max_waiting",
            r.max_waiting,
            0,
            1_000_000,
            size
        );
        set!(
            l.max_waiting_bytes,
            "server.limits.max_waiting_bytes",
            r.max_waiting_bytes,
            0,
            1 << 40,
            size
        );
        set!(
            l.rate_per_sec,
            "server.limits.rate_per_sec",
            r.rate_per_sec,
            0,
            10_000_000,
            |v| (v > 0).then(|| small(v))
        );
        set!(
            l.rate_burst,
            "server.limits.rate_burst",
            r.rate_burst,
            1,
            10_000_000,
            small
        );
        set!(
            l.max_violations,
            "server.limits.max_violations",
            r.max_violations,
            1,
            1_000_000,
            small
        );
        set!(
            l.violation_refill,
            "server.limits.violation_refill_ms",
            r.violation_refill_ms,
            1,
            HOUR_MS,
            Duration::from_millis
        );
        set!(
            l.max_subscriptions,
            "server.limits.max_subscriptions",
            r.max_subscriptions,
            1,
            1_000_000,
            size
        );
        set!(
            l.max_channel_name,
            "server.limits.max_channel_name",
            r.max_channel_name,
            1,
            65_536,
            size
        );
        set!(
            l.read_buffer_size,
            "server.limits.read_buffer_size",
            r.read_buffer_size,
            512,
            16 * MIB,
            size
        );
        set!(
            l.write_buffer_size,
            "server.limits.write_buffer_size",
            r.write_buffer_size,
            0,
            16 * MIB,
            size
        );
        set!(
            l.drain_timeout,
            "server.limits.drain_timeout_ms",
            r.drain_timeout_ms,
            0,
            HOUR_MS,
            Duration::from_millis
        );
        set!(
            l.http_header_timeout,
            "server.limits.http_header_timeout_ms",
            r.http_header_timeout_ms,
            1,
            HOUR_MS,
            Duration::from_millis
        );
        set!(
            l.http_idle_timeout,
            "server.limits.http_idle_timeout_ms",
            r.http_idle_timeout_ms,
            1,
            HOUR_MS,
            Duration::from_millis
        );
        if l.warn_message_size > l.max_message_size && !warn_given {
            // The default warning threshold follows a lowered maximum: half of it.
            l.warn_message_size = l.max_message_size / 2;
        }
        if l.warn_message_size > l.max_message_size {
            return Err(ConfigError::new(
                "server.limits.warn_message_size",
                format!(
                    "{} is larger than max_message_size ({})",
                    l.warn_message_size, l.max_message_size
                ),
            ));
        }
        c.channels = channels::channels(server.channels)?;
        c.memory_engine = channels::memory_engine(server.memory_engine)?;
        let (r, t) = (server.telemetry, &mut c.telemetry);
        if let Some(enabled) = r.enabled {
            t.enabled = enabled;
        }
        if let Some(required) = r.require_user {
            t.require_user = required;
        }
        set!(
            t.records_per_sec,
            "server.telemetry.records_per_sec",
            r.records_per_sec,
            1,
            1_000_000,
            small
        );
        set!(
            t.records_burst,
            "server.telemetry.records_burst",
            r.records_burst,
            1,
            10_000_000,
            small
        );
        set!(
            t.bytes_per_sec,
            "server.telemetry.bytes_per_sec",
            r.bytes_per_sec,
            1,
            1 << 30,
            small
        );
        set!(
            t.bytes_burst,
            "server.telemetry.bytes_burst",
            r.bytes_burst,
            1,
            1 << 30,
            small
        );
        set!(
            t.summary_interval,
            "server.telemetry.summary_interval_ms",
            r.summary_interval_ms,
            100,
            HOUR_MS,
            Duration::from_millis
        );
        s.tls = server.tls.map(|t| TlsFiles {
            cert: t.cert,
            key: t.key,
        });

        let (r, k) = (raw.client, &mut settings.client);
        if let Some(url) = r.url {
            if !(url.starts_with("ws://") || url.starts_with("wss://")) {
                return Err(ConfigError::new(
                    "client.url",
                    format!("`{url}` must start with ws:// or wss://"),
                ));
            }
            k.url = url;
        }
        if let Some(name) = r.codec {
            k.codec = codec("client.codec", &name)?;
        }
        set!(
            k.request_timeout,
            "client.request_timeout_ms",
            r.request_timeout_ms,
            1,
            HOUR_MS,
            Duration::from_millis
        );
        set!(
            k.connect_timeout,
            "client.connect_timeout_ms",
            r.connect_timeout_ms,
            1,
            HOUR_MS,
            Duration::from_millis
        );
        set!(
            k.handshake_timeout,
            "client.handshake_timeout_ms",
            r.handshake_timeout_ms,
            1,
            HOUR_MS,
            Duration::from_millis
        );
        set!(
            k.queue_capacity,
            "client.queue_capacity",
            r.queue_capacity,
            1,
            1_000_000,
            size
        );
        set!(
            k.max_in_flight,
            "client.max_in_flight",
            r.max_in_flight,
            1,
            65_536,
            size
        );
        let (r, p) = (r.reconnect, &mut k.reconnect);
        set!(
            p.initial_delay,
            "client.reconnect.initial_delay_ms",
            r.initial_delay_ms,
            1,
            HOUR_MS,
            Duration::from_millis
        );
        set!(
            p.max_delay,
            "client.reconnect.max_delay_ms",
            r.max_delay_ms,
            1,
            HOUR_MS,
            Duration::from_millis
        );
        set!(
            p.max_attempts,
            "client.reconnect.max_attempts",
            r.max_attempts,
            0,
            u64::from(u32::MAX),
            |v| Some(small(v))
        );
        if let Some(m) = r.multiplier {
            if !(1.0..=10.0).contains(&m) {
                return Err(ConfigError::new(
                    "client.reconnect.multiplier",
                    format!("{m} is out of range: allowed 1.0 to 10.0"),
                ));
            }
            p.multiplier = m;
        }

        let (r, g) = (raw.logging, &mut settings.logging);
        if let Some(filter) = r.filter {
            g.filter = filter;
        }
        if let Some(console) = r.console {
            g.console = console;
        }
        g.json_file = r.json_file;
        if let Some(rotation) = r.rotation {
            g.rotation = match rotation.as_str() {
                "hourly" => Rotation::Hourly,
                "daily" => Rotation::Daily,
                "never" => Rotation::Never,
                other => {
                    return Err(ConfigError::new(
                        "logging.rotation",
                        format!("`{other}` is not allowed: \"hourly\", \"daily\" or \"never\""),
                    ));
                }
            };
        }
        Ok(settings)
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
