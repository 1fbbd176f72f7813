//! A terminal chat client for the chat server.
//!
//! Start the server (`cargo run -p sente-lite-examples --example chat`), then run
//! `cargo run -p sente-lite-examples --example chat_client -- --name ada --room lobby`
//! in one terminal and the same with `--name bob` in another. Type a line and
//! press Enter to say it; `/quit` leaves. Stop and restart the server: the client
//! shows its connection state, reconnects by itself and rejoins the room.

// The client uses only some of the shared events.
#[allow(dead_code)]
#[path = "chat_events.rs"]
mod chat_events;

use chat_events::{ChatMessage, Join, Say, channel};
use clap::Parser;
use sente_lite::{Client, ConnectionState, Ctx, PresenceEvent, ReconnectPolicy, Router, SendError};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Terminal chat client.
#[derive(Parser)]
struct Args {
    /// The server's WebSocket endpoint.
    #[arg(long, default_value = "ws://127.0.0.1:3000/ws")]
    url: String,
    /// Your name.
    #[arg(long)]
    name: String,
    /// The room to join.
    #[arg(long, default_value = "lobby")]
    room: String,
}

#[sente_lite::handler]
async fn on_message(_ctx: Ctx, msg: ChatMessage) {
    println!("[{}] {}: {}", msg.room, msg.from, msg.text);
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let url = format!("{}?name={}", args.url, args.name);
    let client = Client::builder(url)
        .router(Router::new().handler(on_message))
        .reconnect(ReconnectPolicy::default())
        .on_gap(|channel, _reply| eprintln!("({channel}: messages said while away were missed)"))
        .on_state(|state| {
            if state != ConnectionState::Open {
                eprintln!("(connection: {state:?})");
            }
        })
        .connect()
        .await?;
    // Subscribed from the client's side too, so the room is restored after a reconnect.
    client.subscribe(channel(&args.room)).await?;
    let joined = client
        .request(&Join {
            room: args.room.clone(),
        })
        .await?;
    println!("joined {} with {}", joined.room, joined.members.join(", "));
    // Who comes and goes, from the room's presence (restored after reconnects).
    let mut watch = client.watch_presence(channel(&args.room)).await?;
    let room = args.room.clone();
    tokio::spawn(async move {
        while let Some(event) = watch.changed().await {
            match event {
                PresenceEvent::Joined(member) => println!("[{room}] {} is here", member.user_id),
                PresenceEvent::Left(user) => println!("[{room}] {user} left"),
                PresenceEvent::Reset(members) => {
                    let names: Vec<String> = members.into_iter().map(|m| m.user_id.0).collect();
                    println!("[{room}] here: {}", names.join(", "));
                }
            }
        }
    });

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let text = line.trim();
        if text == "/quit" {
            break;
        }
        if text.is_empty() {
            continue;
        }
        let said = client.send(&Say {
            room: args.room.clone(),
            text: text.to_owned(),
        });
        match said {
            Ok(()) => {}
            // Away for long enough that the queue filled: this line is not
            // sent, and the ones already queued go out on reconnect.
            Err(SendError::QueueFull { capacity, .. }) => eprintln!(
                "(not sent: {capacity} lines already wait for the connection; try again once it is back)"
            ),
            Err(SendError::Closed { .. }) => break,
            Err(err) => eprintln!("(not sent: {err})"),
        }
    }
    client.disconnect().await;
    Ok(())
}
