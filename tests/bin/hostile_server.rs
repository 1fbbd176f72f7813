//! A server process for the hostile-input test: echo and slow requests, a
//! one-way note, a channel it publishes on all the time (`busy/feed`, 2 MB a
//! second while it has subscribers), channels
//! open to all with presence (`open/*`), channels its authorisation refuses
//! (`secret/*`), and small limits (`hostile/setup.rs`) so that every flood and
//! bound is reached quickly.
//!
//! `cargo run -p sente-lite-tests --bin hostile_server -- --addr 127.0.0.1:4300`
//! prints `listening ADDR` once it accepts connections.

mod announce;
#[path = "../hostile/setup.rs"]
mod setup;

use clap::Parser;
use sente_lite::server::{ChannelOptions, allow_all};
use sente_lite::{ErrorReply, Router, Server};
use setup::{Echo, Note, Slow, Tick};

/// Hostile-input test server.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long)]
    addr: String,
}

#[sente_lite::handler]
async fn echo(req: Echo) -> String {
    req.text
}

#[sente_lite::handler]
async fn slow(req: Slow) -> u64 {
    tokio::time::sleep(std::time::Duration::from_millis(req.ms)).await;
    req.ms
}

#[sente_lite::handler]
async fn note(_note: Note) {}

/// Publishes a [`Tick`] on the busy channel every `BUSY_EVERY` while it has
/// subscribers, forever.
async fn publish_ticks(server: Server) {
    let pad = "t".repeat(setup::BUSY_PAD);
    let mut every = tokio::time::interval(setup::BUSY_EVERY);
    for seq in 0.. {
        every.tick().await;
        if server.subscribers(setup::BUSY_CHANNEL).is_empty() {
            continue;
        }
        let tick = Tick {
            seq,
            pad: pad.clone(),
        };
        if server.broadcast(setup::BUSY_CHANNEL, &tick).is_err() {
            return;
        }
    }
}

/// Two worker threads on any machine, so that what the allocator keeps per
/// thread (which the test's memory bound allows for) does not grow with the
/// number of cores.
#[tokio::main(worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let server = Server::builder()
        .router(Router::new().handler(echo).handler(slow).handler(note))
        .configure(|c| {
            c.ping_interval = setup::PING_INTERVAL;
            c.ping_timeout = setup::PING_TIMEOUT;
            let limits = &mut c.limits;
            limits.max_message_size = setup::MAX_MESSAGE_SIZE;
            limits.rate_per_sec = Some(setup::RATE_PER_SEC);
            limits.rate_burst = setup::RATE_BURST;
            limits.max_in_flight_requests = setup::MAX_IN_FLIGHT;
            limits.max_subscriptions = setup::MAX_SUBSCRIPTIONS;
            limits.max_channel_name = setup::MAX_CHANNEL_NAME;
            limits.max_violations = setup::MAX_VIOLATIONS;
            limits.outbound_queue = setup::OUTBOUND_QUEUE;
            limits.outbound_queue_bytes = setup::OUTBOUND_QUEUE_BYTES;
            limits.http_header_timeout = setup::HTTP_TIMEOUT;
            limits.http_idle_timeout = setup::HTTP_TIMEOUT;
        })
        .channel(setup::BUSY_CHANNEL, allow_all)
        .channel(setup::OPEN_CHANNELS, allow_all)
        .channel(setup::SECRET_CHANNELS, |_access| async {
            Err(ErrorReply::new(
                "forbidden",
                "secret channels are closed to everyone",
            ))
        })
        .channel_options(
            setup::OPEN_CHANNELS,
            ChannelOptions {
                presence: true,
                ..ChannelOptions::default()
            },
        )
        .bind(args.addr)
        .await?;
    tokio::spawn(publish_ticks(server.clone()));
    announce::listening(&server).await?;
    server.closed().await;
    Ok(())
}
