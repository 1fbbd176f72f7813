//! A Rust service reporting to the telemetry pipeline: its own `tracing`
//! events at `info` and above go to the server (`telemetry::forward_to`)
//! while it works, and it prints the session they are filed under and, at
//! the end, the pipeline's counters.
//!
//! Start the server (`cargo run -p sente-lite-examples --example telemetry`),
//! then run `cargo run -p sente-lite-examples --example telemetry_client --
//! --count 100 --per-sec 20` and follow it at
//! `http://127.0.0.1:3003/tail?session=<the printed session>`.
//! `js/test/telemetry.test.js` runs it and finds its records in its file.

use std::time::Duration;

use clap::Parser;
use sente_lite::Client;
use tracing::instrument::WithSubscriber as _;
use tracing_subscriber::layer::SubscriberExt as _;

/// The pipeline's counters (the server's `tail/stats`).
#[sente_lite::event("tail/stats", reply = serde_json::Value)]
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Stats;

/// Telemetry client.
#[derive(Parser)]
struct Args {
    /// The server's WebSocket endpoint.
    #[arg(long, default_value = "ws://127.0.0.1:3003/ws")]
    url: String,
    /// Work items to report on.
    #[arg(long, default_value_t = 20)]
    count: u32,
    /// Work items per second.
    #[arg(long, default_value_t = 10)]
    per_sec: u32,
    /// Only print the pipeline's counters, sending nothing.
    #[arg(long)]
    stats: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let client = Client::connect(&args.url).await?;
    if args.stats {
        println!("pipeline {}", client.request(&Stats).await?);
        client.disconnect().await;
        return Ok(());
    }
    let (layer, forwarding) = sente_lite::telemetry::forward_to(&client, tracing::Level::INFO);
    let session = layer.session().to_owned();
    // The first line of output is the session, for whoever started us.
    println!("session {session}");
    let subscriber = tracing_subscriber::registry().with(layer);
    let count = args.count;
    let every = Duration::from_secs_f64(1.0 / f64::from(args.per_sec.max(1)));
    // The subscriber is the default while the work runs (on whichever thread
    // polls it), and is dropped with it.
    async move {
        let mut ticker = tokio::time::interval(every);
        for item in 1..=args.count {
            ticker.tick().await;
            if item % 10 == 0 {
                tracing::warn!(target: "worker::queue", item, "item {item}: retried once");
            } else {
                tracing::info!(target: "worker::queue", item, "item {item} done");
            }
            tracing::debug!(target: "worker::queue", item, "below info: not forwarded");
        }
        tracing::error!(target: "worker", count = args.count, "worker stopping");
    }
    .with_subscriber(subscriber)
    .await;
    // The layer is gone: the forwarder sends what it holds and ends; the
    // client then writes its queue before it closes.
    forwarding.await?;
    // The pipeline's counters, to print: what the server took in so far.
    let stats = client.request(&Stats).await?;
    client.disconnect().await;
    println!("sent {} records", count + 1);
    println!("pipeline {stats}");
    Ok(())
}
