//! Configuration files: defaults, every section, environment overrides, and a
//! clear error for each kind of bad value.

use std::time::Duration;

use sente_lite::Codec;
use sente_lite::server::{HostPolicy, OriginPolicy};
use sente_lite::settings::{Rotation, Settings};

#[test]
fn an_empty_file_gives_the_documented_defaults() {
    let settings = Settings::from_toml("").unwrap();
    assert_eq!(settings, Settings::default());
    assert_eq!(settings.server.addr, "127.0.0.1:3000");
    assert_eq!(settings.server.config.limits.max_message_size, 1 << 20);
    assert_eq!(
        settings.client.reconnect.initial_delay,
        Duration::from_millis(250)
    );
}

#[test]
fn every_section_is_read() {
    let settings = Settings::from_toml(
        r#"
        [server]
        addr = "0.0.0.0:4000"
        path = "/live"
        default_codec = "postcard"
        origins = ["https://app.example"]
        ping_interval_ms = 1000
        [server.limits]
        max_message_size = 2048
        warn_message_size = 1024
        rate_per_sec = 0
        [server.tls]
        cert = "cert.pem"
        key = "key.pem"
        [client]
        url = "wss://example.test/ws"
        codec = "postcard"
        [client.reconnect]
        max_attempts = 3
        multiplier = 1.5
        [logging]
        filter = "debug"
        json_file = "logs/app.jsonl"
        rotation = "hourly"
        "#,
    )
    .unwrap();
    let server = &settings.server;
    assert_eq!(server.addr, "0.0.0.0:4000");
    assert_eq!(server.config.path, "/live");
    assert_eq!(server.config.default_codec, Codec::Postcard);
    assert_eq!(
        server.config.origins,
        OriginPolicy::AllowList(vec!["https://app.example".into()])
    );
    assert_eq!(server.config.ping_interval, Duration::from_secs(1));
    assert_eq!(server.config.limits.max_message_size, 2048);
    assert_eq!(server.config.limits.rate_per_sec, None);
    assert_eq!(server.tls.as_ref().unwrap().cert.to_str(), Some("cert.pem"));
    assert_eq!(settings.client.codec, Codec::Postcard);
    assert_eq!(settings.client.reconnect.max_attempts, Some(3));
    assert_eq!(settings.logging.rotation, Rotation::Hourly);
}

#[test]
fn environment_variables_override_the_file() {
    let env = [
        (
            "SENTE_LITE__SERVER__LIMITS__MAX_MESSAGE_SIZE".to_owned(),
            "4096".to_owned(),
        ),
        (
            "SENTE_LITE__SERVER__ADDR".to_owned(),
            "127.0.0.1:5000".to_owned(),
        ),
        (
            "SENTE_LITE__CLIENT__CODEC".to_owned(),
            "postcard".to_owned(),
        ),
        ("UNRELATED".to_owned(), "x".to_owned()),
    ];
    let settings =
        Settings::from_sources("[server.limits]\nmax_message_size = 2048\n", env).unwrap();
    assert_eq!(settings.server.config.limits.max_message_size, 4096);
    assert_eq!(settings.server.addr, "127.0.0.1:5000");
    assert_eq!(settings.client.codec, Codec::Postcard);
}

fn error(text: &str) -> String {
    Settings::from_toml(text).unwrap_err().to_string()
}

#[test]
fn each_kind_of_bad_value_names_its_key_and_what_is_allowed() {
    assert_eq!(
        error("[server.limits]\nmax_message_size = 10"),
        "configuration key `server.limits.max_message_size`: 10 is out of range: allowed 1024 to 67108864"
    );
    assert_eq!(
        error("[server]\nping_interval_ms = \"soon\""),
        "configuration key `server.ping_interval_ms`: invalid type: string \"soon\", expected u64"
    );
    assert!(
        error("[server]\nport = 1").starts_with(
            "configuration key `server.port`: unknown field `port`, expected one of `addr`"
        ),
        "{}",
        error("[server]\nport = 1")
    );
    assert_eq!(
        error("[server]\ndefault_codec = \"xml\""),
        "configuration key `server.default_codec`: `xml` is not a codec: allowed \"json\" or \"postcard\""
    );
    assert_eq!(
        error("[server]\norigins = \"everyone\""),
        "configuration key `server.origins`: `everyone` is not allowed: \"same-host\", \"any\" or a list of origins"
    );
    assert_eq!(
        error("[server]\npath = \"ws\""),
        "configuration key `server.path`: `ws` must start with `/`"
    );
    assert_eq!(
        error("[client.reconnect]\nmultiplier = 50.0"),
        "configuration key `client.reconnect.multiplier`: 50 is out of range: allowed 1.0 to 10.0"
    );
    assert_eq!(
        error("[client]\nurl = \"http://x\""),
        "configuration key `client.url`: `http://x` must start with ws:// or wss://"
    );
    assert_eq!(
        error("[server.limits]\nwarn_message_size = 4000000"),
        "configuration key `server.limits.warn_message_size`: 4000000 is larger than max_message_size (1048576)"
    );
    assert!(error("[server").starts_with("configuration key `(file)`: not valid TOML"));
    let env = [(
        "SENTE_LITE__SERVER__LIMITS__OUTBOUND_QUEUE".to_owned(),
        "0".to_owned(),
    )];
    assert_eq!(
        Settings::from_sources("", env).unwrap_err().to_string(),
        "configuration key `server.limits.outbound_queue`: 0 is out of range: allowed 1 to 1000000"
    );
}

#[test]
fn http_timeouts_and_hosts_are_read_and_checked() {
    let defaults = Settings::default();
    assert_eq!(
        defaults.server.config.limits.http_header_timeout,
        Duration::from_secs(10)
    );
    assert_eq!(
        defaults.server.config.limits.http_idle_timeout,
        Duration::from_secs(30)
    );
    assert_eq!(defaults.server.config.hosts, HostPolicy::Auto);

    let settings = Settings::from_toml(
        "[server]\nhosts = [\"app.example\", \"localhost\"]\n\
         [server.limits]\nhttp_header_timeout_ms = 2500\nhttp_idle_timeout_ms = 60000\n",
    )
    .unwrap();
    let config = &settings.server.config;
    assert_eq!(
        config.hosts,
        HostPolicy::AllowList(vec!["app.example".into(), "localhost".into()])
    );
    assert_eq!(
        config.limits.http_header_timeout,
        Duration::from_millis(2500)
    );
    assert_eq!(config.limits.http_idle_timeout, Duration::from_secs(60));
    for (word, policy) in [
        ("auto", HostPolicy::Auto),
        ("loopback", HostPolicy::Loopback),
        ("any", HostPolicy::Any),
    ] {
        let env = [("SENTE_LITE__SERVER__HOSTS".to_owned(), word.to_owned())];
        assert_eq!(
            Settings::from_sources("", env).unwrap().server.config.hosts,
            policy
        );
    }

    assert_eq!(
        error("[server]\nhosts = \"everywhere\""),
        "configuration key `server.hosts`: `everywhere` is not allowed: \"auto\", \"loopback\", \"any\" or a list of host names"
    );
    assert_eq!(
        error("[server]\nhosts = [\"https://app.example\"]"),
        "configuration key `server.hosts`: `https://app.example` is not a host name (write `app.example`, not a URL)"
    );
    assert_eq!(
        error("[server.limits]\nhttp_header_timeout_ms = 0"),
        "configuration key `server.limits.http_header_timeout_ms`: 0 is out of range: allowed 1 to 3600000"
    );
    assert_eq!(
        error("[server.limits]\nhttp_idle_timeout_ms = 3600001"),
        "configuration key `server.limits.http_idle_timeout_ms`: 3600001 is out of range: allowed 1 to 3600000"
    );
}

#[test]
fn the_telemetry_section_sets_the_budget_and_the_user_requirement() {
    let defaults = Settings::from_toml("").unwrap().server.config.telemetry;
    assert!(defaults.enabled);
    assert!(!defaults.require_user);
    assert_eq!(defaults.records_per_sec, 50);
    assert_eq!(defaults.records_burst, 500);
    assert_eq!(defaults.bytes_per_sec, 64 << 10);
    assert_eq!(defaults.bytes_burst, 256 << 10);
    assert_eq!(defaults.summary_interval, Duration::from_secs(5));

    let env = [(
        "SENTE_LITE__SERVER__TELEMETRY__REQUIRE_USER".to_owned(),
        "true".to_owned(),
    )];
    let settings = Settings::from_sources(
        r#"
        [server.telemetry]
        enabled = true
        records_per_sec = 5
        records_burst = 20
        bytes_per_sec = 4096
        bytes_burst = 16384
        summary_interval_ms = 1000
        "#,
        env,
    )
    .unwrap();
    let telemetry = &settings.server.config.telemetry;
    assert!(telemetry.require_user);
    assert_eq!(telemetry.records_per_sec, 5);
    assert_eq!(telemetry.records_burst, 20);
    assert_eq!(telemetry.bytes_per_sec, 4096);
    assert_eq!(telemetry.bytes_burst, 16384);
    assert_eq!(telemetry.summary_interval, Duration::from_secs(1));

    assert_eq!(
        error("[server.telemetry]\nrecords_per_sec = 0"),
        "configuration key `server.telemetry.records_per_sec`: 0 is out of range: allowed 1 to 1000000"
    );
    assert_eq!(
        error("[server.telemetry]\nsummary_interval_ms = 10"),
        "configuration key `server.telemetry.summary_interval_ms`: 10 is out of range: allowed 100 to 3600000"
    );
}

#[test]
fn the_http_api_is_off_unless_its_table_is_given_and_its_keys_are_long() {
    assert_eq!(
        Settings::from_toml("").unwrap().server.config.http_api,
        None
    );
    let settings = Settings::from_toml(
        "[server.http_api]\nkeys = [\"0123456789abcdef\"]\nmax_body_bytes = 4096",
    )
    .unwrap();
    let api = settings.server.config.http_api.unwrap();
    assert_eq!((api.keys.len(), api.max_body_bytes), (1, 4096));
    assert_eq!(
        error("[server.http_api]\nkeys = [\"short\"]"),
        "configuration key `server.http_api`: an HTTP API key has fewer than 16 bytes: use a long random key"
    );
    assert_eq!(
        error("[server.http_api]"),
        "configuration key `server.http_api`: the HTTP API needs at least one key"
    );
}

#[test]
fn the_load_limits_are_read_and_zero_turns_the_per_address_limit_off() {
    let defaults = Settings::from_toml("").unwrap().server.config.limits;
    assert_eq!(defaults.max_connections_per_address, None);
    assert_eq!(defaults.outbound_queue_bytes, 4 << 20);
    assert_eq!(
        (defaults.max_waiting, defaults.max_waiting_bytes),
        (256, 1 << 20)
    );
    let limits = Settings::from_toml(
        "[server.limits]\nmax_connections_per_address = 50\noutbound_queue_bytes = 65536\n\
         max_waiting = 8\nmax_waiting_bytes = 4096\n",
    )
    .unwrap()
    .server
    .config
    .limits;
    assert_eq!(limits.max_connections_per_address, Some(50));
    assert_eq!(limits.outbound_queue_bytes, 65536);
    assert_eq!((limits.max_waiting, limits.max_waiting_bytes), (8, 4096));
    let off = Settings::from_toml("[server.limits]\nmax_connections_per_address = 0\n").unwrap();
    assert_eq!(off.server.config.limits.max_connections_per_address, None);
    assert_eq!(
        error("[server.limits]\noutbound_queue_bytes = 10"),
        "configuration key `server.limits.outbound_queue_bytes`: 10 is out of range: allowed 1024 to 1099511627776"
    );
}

#[test]
fn channel_patterns_and_the_memory_engine_are_read_and_checked() {
    use sente_lite::server::ChannelOptions;

    let defaults = Settings::from_toml("").unwrap().server.config;
    assert!(defaults.channels.is_empty());
    let settings = Settings::from_sources(
        r#"
        [[server.channels]]
        pattern = "room/*"
        history_size = 100
        history_ttl_ms = 60000
        presence = true

        [[server.channels]]
        pattern = "feed/*"
        history_max_bytes = 4096
        history_size = 10

        [server.memory_engine]
        max_history_bytes = 1048576
        max_idle_channels = 50
        "#,
        [(
            "SENTE_LITE__SERVER__MEMORY_ENGINE__RETENTION_MS".to_owned(),
            "1000".to_owned(),
        )],
    )
    .unwrap();
    let config = settings.server.config;
    assert_eq!(
        config.channels,
        [
            (
                "room/*".to_owned(),
                ChannelOptions {
                    history_size: 100,
                    history_ttl: Duration::from_secs(60),
                    presence: true,
                    ..ChannelOptions::default()
                }
            ),
            (
                "feed/*".to_owned(),
                ChannelOptions {
                    history_size: 10,
                    history_max_bytes: 4096,
                    ..ChannelOptions::default()
                }
            ),
        ]
    );
    assert_eq!(config.memory_engine.max_history_bytes, 1 << 20);
    assert_eq!(config.memory_engine.max_idle_channels, 50);
    assert_eq!(config.memory_engine.retention, Duration::from_secs(1));
    assert_eq!(
        error("[[server.channels]]\npattern = \"a/*\"\nhistory_ttl_ms = 0\n"),
        "configuration key `server.channels[0].history_ttl_ms`: 0 is out of range: allowed 1 to 2592000000"
    );
    assert!(error("[[server.channels]]\npattern = \"\"\n").contains("server.channels[0].pattern"));
    assert!(error("[[server.channels]]\npattern = \"a\"\nhistory = 1\n").contains("history"));
}

/// The TOML block of the settings module's documentation.
fn documented_example() -> String {
    let source = include_str!("../src/settings/mod.rs");
    let mut lines = source.lines().skip_while(|line| *line != "//! ```toml");
    lines.next();
    lines
        .take_while(|line| *line != "//! ```")
        .map(|line| line.strip_prefix("//!").unwrap_or(line).trim_start())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_documented_example_file_reads_as_it_says() {
    use sente_lite::server::ChannelOptions;

    let text = documented_example();
    assert!(text.contains("[server.memory_engine]"), "{text}");
    let settings = Settings::from_toml(&text).unwrap();

    let server = &settings.server;
    assert_eq!(server.addr, "0.0.0.0:3000");
    let config = &server.config;
    assert_eq!(config.path, "/ws");
    assert_eq!(config.default_codec, Codec::Json);
    assert_eq!(config.origins, OriginPolicy::SameHost);
    assert_eq!(config.hosts, HostPolicy::Auto);
    assert_eq!(config.ping_interval, Duration::from_secs(25));
    assert_eq!(config.ping_timeout, Duration::from_secs(10));
    assert_eq!(config.request_timeout, Duration::from_secs(10));
    assert_eq!(config.presence_grace, Duration::from_secs(5));
    assert!(config.publish_schema);

    let limits = &config.limits;
    assert_eq!(limits.max_message_size, 1_048_576);
    assert_eq!(limits.rate_per_sec, None, "no rate limit by default");
    assert_eq!(limits.http_header_timeout, Duration::from_secs(10));
    assert_eq!(limits.http_idle_timeout, Duration::from_secs(30));

    let telemetry = &config.telemetry;
    assert!(telemetry.enabled);
    assert!(!telemetry.require_user);
    assert_eq!(telemetry.records_per_sec, 50);
    assert_eq!(telemetry.records_burst, 500);
    assert_eq!(telemetry.bytes_per_sec, 65536);
    assert_eq!(telemetry.bytes_burst, 262_144);
    assert_eq!(telemetry.summary_interval, Duration::from_secs(5));

    assert_eq!(
        config.channels,
        [(
            "room/*".to_owned(),
            ChannelOptions {
                history_size: 100,
                history_ttl: Duration::from_secs(300),
                history_max_bytes: 1_048_576,
                presence: true,
            }
        )]
    );
    assert_eq!(config.memory_engine.max_history_bytes, 67_108_864);
    assert_eq!(config.memory_engine.retention, Duration::from_secs(600));
    assert_eq!(config.memory_engine.max_idle_channels, 100_000);

    let tls = server.tls.as_ref().unwrap();
    assert_eq!(tls.cert.to_str(), Some("cert.pem"));
    assert_eq!(tls.key.to_str(), Some("key.pem"));

    let client = &settings.client;
    assert_eq!(client.url, "ws://127.0.0.1:3000/ws");
    assert_eq!(client.codec, Codec::Postcard);
    assert_eq!(client.reconnect.initial_delay, Duration::from_millis(250));
    assert_eq!(client.reconnect.multiplier, 2.0);
    assert_eq!(client.reconnect.max_delay, Duration::from_secs(30));
    assert_eq!(client.reconnect.max_attempts, Some(10));

    let logging = &settings.logging;
    assert_eq!(logging.filter, "info,sente_lite=debug");
    assert!(logging.console);
    assert_eq!(
        logging.json_file.as_deref().and_then(|p| p.to_str()),
        Some("logs/sente-lite.jsonl")
    );
    assert_eq!(logging.rotation, Rotation::Daily);
}

#[test]
fn words_units_and_tables_keep_their_meaning() {
    // A lowered maximum takes the default warning threshold down with it.
    let limits = Settings::from_toml("[server.limits]\nmax_message_size = 2048\n")
        .unwrap()
        .server
        .config
        .limits;
    assert_eq!(
        (limits.max_message_size, limits.warn_message_size),
        (2048, 1024)
    );
    let settings = Settings::from_toml(
        "[server]\norigins = \"any\"\n[client]\nrequest_timeout_ms = 1500\n\
         [client.reconnect]\nmax_delay_ms = 2000\n[logging]\nrotation = \"never\"\n",
    )
    .unwrap();
    assert_eq!(settings.server.config.origins, OriginPolicy::Any);
    assert_eq!(settings.client.request_timeout, Duration::from_millis(1500));
    assert_eq!(settings.client.reconnect.max_delay, Duration::from_secs(2));
    assert_eq!(settings.client.reconnect.max_attempts, None);
    assert_eq!(settings.logging.rotation, Rotation::Never);

    assert_eq!(
        error("[logging]\nrotation = \"weekly\""),
        "configuration key `logging.rotation`: `weekly` is not allowed: \"hourly\", \"daily\" or \"never\""
    );
    assert_eq!(
        error("[client]\ncodec = \"xml\""),
        "configuration key `client.codec`: `xml` is not a codec: allowed \"json\" or \"postcard\""
    );
    assert!(
        error("[[server.channels]]\npattern = \"a\"\nhistory = 1\n").starts_with(
            "configuration key `server.channels[0].history`: unknown field `history`, expected one of `pattern`, `history_size`"
        ),
        "{}",
        error("[[server.channels]]\npattern = \"a\"\nhistory = 1\n")
    );
    assert_eq!(
        error("[[server.channels]]\nhistory_size = 1\n"),
        "configuration key `server.channels[0]`: missing field `pattern`"
    );
    assert_eq!(
        error("[[server.channels]]\npattern = \"a\"\nhistory_size = \"all\"\n"),
        "configuration key `server.channels[0].history_size`: invalid type: string \"all\", expected usize"
    );
    assert_eq!(
        error("[server.tls]\ncert = \"cert.pem\"\n"),
        "configuration key `server.tls`: missing field `key`"
    );
    assert!(error("[server.limits]\nlimit = 1").starts_with(
        "configuration key `server.limits.limit`: unknown field `limit`, expected one of `max_message_size`"
    ));
    assert_eq!(
        error("[client.reconnect]\nmax_delay_ms = 0"),
        "configuration key `client.reconnect.max_delay_ms`: 0 is out of range: allowed 1 to 3600000"
    );
    assert_eq!(
        error("[server.memory_engine]\nretention_ms = 2592000001"),
        "configuration key `server.memory_engine.retention_ms`: 2592000001 is out of range: allowed 0 to 2592000000"
    );
    assert!(error("server = 1").starts_with("configuration key `server`: invalid type"));
}

#[test]
fn validate_checks_settings_made_in_code() {
    let mut settings = Settings::default();
    assert_eq!(settings.validate(), Ok(()));
    settings.server.config.limits.max_message_size = 10;
    assert_eq!(
        settings.validate().unwrap_err().to_string(),
        "configuration key `server.limits.max_message_size`: 10 is out of range: allowed 1024 to 67108864"
    );
}
