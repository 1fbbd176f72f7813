//! A server process for the file-limit test: a plain server with a short
//! header timeout that logs warnings to standard error.
//!
//! `cargo run -p sente-lite-tests --bin fd_limited_server -- --addr 127.0.0.1:0`
//! prints `listening ADDR` once it accepts connections. Start it under a low
//! `ulimit -n` to see what the server does when it runs out of descriptors.

mod announce;

use std::time::Duration;

use clap::Parser;
use sente_lite::Server;

/// File-limit test server.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long)]
    addr: String,
    /// `Limits::http_header_timeout`, in milliseconds.
    #[arg(long, default_value_t = 500)]
    header_timeout_ms: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
        .init();
    let server = Server::builder()
        .configure(|c| c.limits.http_header_timeout = Duration::from_millis(args.header_timeout_ms))
        .bind(args.addr)
        .await?;
    announce::listening(&server).await?;
    server.closed().await;
    Ok(())
}
