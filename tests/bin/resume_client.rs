//! A client process for the crash-recovery test: subscribes to `news/all`
//! and reports on stdout, one line each, what it lives through:
//! `ready`, `news TEXT` for each publication, and
//! `resubscribed CHANNEL recovered=BOOL` after each reconnect.
//!
//! `cargo run -p sente-lite-tests --bin resume_client -- --url ws://127.0.0.1:4100/ws --codec postcard`

#[path = "../events.rs"]
#[allow(dead_code)]
mod events;

use std::time::Duration;

use clap::Parser;
use events::News;
use sente_lite::{Client, Codec, ReconnectPolicy, Router};

/// Crash-recovery test client.
#[derive(Parser)]
struct Args {
    /// The server's WebSocket URL.
    #[arg(long)]
    url: String,
    /// `json` or `postcard`.
    #[arg(long, default_value = "json")]
    codec: String,
}

#[sente_lite::handler]
async fn on_news(news: News) {
    println!("news {}", news.text);
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let codec = match args.codec.as_str() {
        "postcard" => Codec::Postcard,
        _ => Codec::Json,
    };
    let client = Client::builder(args.url)
        .router(Router::new().handler(on_news))
        .codec(codec)
        .reconnect(
            ReconnectPolicy::default()
                .with_initial_delay(Duration::from_millis(50))
                .with_max_delay(Duration::from_millis(400)),
        )
        .on_resubscribe(|channel, result| match result {
            Ok(reply) => println!("resubscribed {channel} recovered={}", reply.recovered),
            Err(e) => println!("resubscribe {channel} failed: {e}"),
        })
        .connect()
        .await?;
    client.subscribe("news/all").await?;
    println!("ready");
    // Runs until the test kills it.
    std::future::pending::<()>().await;
    Ok(())
}
