//! The configuration reader: a TOML file and `SENTE_LITE__...` overrides.

use sente_lite::Server;
use sente_lite::settings::Settings;

/// Fuzz target `config`: TOML text, then (after a NUL byte) environment
/// overrides, one `NAME=value` a line.
pub fn config(data: &[u8]) {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let (text, env) = input.split_once('\0').unwrap_or((input, ""));
    let env = env.lines().filter_map(|line| {
        let (name, value) = line.split_once('=')?;
        Some((name.to_owned(), value.to_owned()))
    });
    let Ok(settings) = Settings::from_sources(text, env) else {
        return;
    };
    // Settings the reader accepts make a client and a server configuration;
    // TLS files named in them are not read (nor present).
    let _ = settings.client.builder();
    if settings.server.tls.is_none() {
        let _ = Server::builder().settings(&settings.server);
    }
}
