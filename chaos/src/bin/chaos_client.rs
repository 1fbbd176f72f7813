//! The chaos harness's native client process. It subscribes to the channels
//! of the publishers it is given, then, between `start` and `stop` on its
//! stdin, sends one-way events, requests and (with `--publish`) publication
//! requests at a steady pace, noting how each ended; it notes every
//! publication it receives and every gap it is told of. On `report` it prints
//! its ledger (`ledger {...}`) and exits.
//!
//! Started by the `chaos` orchestrator; by hand:
//! `cargo run -p sente-lite-chaos --bin chaos_client -- --url ws://127.0.0.1:4100/ws --name n0 --feeds n0 --publish`
//! prints `ready` once subscribed, `stopped` once its traffic settled after `stop`.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use clap::Parser;
use sente_lite::protocol::{StreamPosition, SubscribeReply};
use sente_lite::{Client, Codec, Ctx, ReconnectPolicy, RequestError, Router};
use sente_lite_chaos::events::{Ask, Mark, Note, Numbered, Publish, feed};
use sente_lite_chaos::ledger::{Arrival, Ledger, Position, PublishOutcome, Refusal};
use sente_lite_chaos::pace::Pace;
use tokio::io::AsyncBufReadExt;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Chaos harness native client.
#[derive(Parser)]
struct Args {
    /// The server's WebSocket URL.
    #[arg(long)]
    url: String,
    /// This client's name, unique in the run.
    #[arg(long)]
    name: String,
    /// `json` or `postcard`.
    #[arg(long, default_value = "json")]
    codec: String,
    /// The publishers whose channels to subscribe to, comma-separated.
    #[arg(long, value_delimiter = ',')]
    feeds: Vec<String>,
    /// Publish on this client's own channel.
    #[arg(long)]
    publish: bool,
    #[command(flatten)]
    pace: Pace,
    /// How long a request waits, for a connection and its reply.
    #[arg(long, default_value_t = 5000)]
    request_timeout_ms: u64,
}

/// The client's ledger, shared by its tasks and callbacks.
#[derive(Clone, Default)]
struct Book(Arc<Mutex<Ledger>>);

impl Book {
    fn lock(&self) -> MutexGuard<'_, Ledger> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes an arrival on `channel` (`feed/<publisher>`).
    fn arrived(&self, channel: &str, arrival: Arrival) {
        let publisher = channel.strip_prefix("feed/").unwrap_or(channel);
        self.lock()
            .received
            .entry(publisher.to_owned())
            .or_default()
            .push(arrival);
    }
}

fn position(position: Option<&StreamPosition>) -> Option<Position> {
    position.map(|p| Position {
        epoch: p.epoch.clone(),
        offset: p.offset,
    })
}

#[sente_lite::handler]
async fn on_numbered(ctx: Ctx, numbered: Numbered) {
    if let Some(book) = ctx.state::<Book>() {
        book.arrived(&feed(&numbered.from), Arrival::Publication(numbered.seq));
    }
}

/// How a request ended, as the ledger says it.
fn outcome<T>(result: &Result<T, RequestError>) -> String {
    match result {
        Ok(_) => "ok".to_owned(),
        Err(RequestError::Timeout(_)) => "timeout".to_owned(),
        Err(err) => err.code().to_owned(),
    }
}

/// Subscribes to `channel` until the server says yes (every 200 ms).
async fn subscribe(client: &Client, channel: &str) -> SubscribeReply {
    loop {
        match client.subscribe(channel).await {
            Ok(reply) => return reply,
            Err(err) => {
                eprintln!("chaos_client: subscribing to {channel}: {err}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Sends `chaos/mark` until it is answered; the run that answered.
async fn mark(client: &Client, name: &str, last: bool) -> String {
    let mark = Mark {
        client: name.to_owned(),
        last,
    };
    loop {
        match client.request(&mark).await {
            Ok(run) => return run,
            Err(err) => {
                eprintln!("chaos_client: mark: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Sends one-way events until `stop`.
async fn send_events(
    client: Client,
    book: Book,
    name: String,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    let mut seq = 0;
    while !*stop.borrow() {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        seq += 1;
        let sent = client.send(&Note {
            client: name.clone(),
            seq,
        });
        let mut ledger = book.lock();
        ledger.events_sent = seq;
        if let Err(err) = sent {
            let code = match err {
                sente_lite::SendError::QueueFull { .. } => "queue-full",
                sente_lite::SendError::Closed { .. } => "closed",
                sente_lite::SendError::Encode(_) => "encode",
            };
            ledger.events_refused.push(Refusal {
                seq,
                code: code.to_owned(),
            });
        }
    }
}

/// Sends a request every `every` (each waits on its own) until `stop`, then
/// waits for the last answers.
async fn send_requests(
    client: Client,
    book: Book,
    name: String,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    let mut asked = JoinSet::new();
    let mut seq = 0;
    while !*stop.borrow() {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        seq += 1;
        book.lock().requests.push(String::new());
        let (client, book, name) = (client.clone(), book.clone(), name.clone());
        asked.spawn(async move {
            let result = client.request(&Ask { client: name, seq }).await;
            let outcome = match result {
                Ok(echo) if echo != seq => "wrong-reply".to_owned(),
                other => outcome(&other),
            };
            book.lock().requests[usize::try_from(seq - 1).expect("fits")] = outcome;
        });
        while asked.try_join_next().is_some() {}
    }
    while asked.join_next().await.is_some() {}
}

/// Publishes numbered messages one after the other until `stop`.
async fn publish(
    client: Client,
    book: Book,
    name: String,
    every: Duration,
    stop: watch::Receiver<bool>,
) {
    let mut seq = 0;
    while !*stop.borrow() {
        seq += 1;
        let result = client
            .request(&Publish {
                client: name.clone(),
                seq,
            })
            .await;
        let published = PublishOutcome {
            outcome: outcome(&result),
            position: result
                .ok()
                .map(|(epoch, offset)| Position { epoch, offset }),
        };
        book.lock().publishes.push(published);
        tokio::time::sleep(every).await;
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let codec = match args.codec.as_str() {
        "postcard" => Codec::Postcard,
        _ => Codec::Json,
    };
    let book = Book::default();
    {
        let mut ledger = book.lock();
        ledger.client = args.name.clone();
        ledger.kind = format!("native-{}", args.codec);
    }
    let gaps = book.clone();
    let refused = book.clone();
    let (refused_tx, mut refused_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let client = Client::builder(args.url)
        .router(Router::new().handler(on_numbered))
        .state(book.clone())
        .codec(codec)
        .request_timeout(Duration::from_millis(args.request_timeout_ms))
        .reconnect(
            ReconnectPolicy::default()
                .with_initial_delay(Duration::from_millis(50))
                .with_max_delay(Duration::from_millis(400)),
        )
        .on_gap(move |channel, reply| {
            gaps.arrived(
                channel,
                Arrival::Gap {
                    gap: position(reply.position.as_ref()),
                },
            );
        })
        .on_resubscribe(move |channel, result| {
            if let Err(RequestError::Remote(err)) = result {
                // The client forgot the channel: subscribe again (told).
                eprintln!("chaos_client: {channel} refused: {err:?}");
                refused.lock().resubscribe_refused += 1;
                let _ = refused_tx.send(channel.to_owned());
            }
        })
        .start()?;
    {
        let client = client.clone();
        let book = book.clone();
        tokio::spawn(async move {
            while let Some(channel) = refused_rx.recv().await {
                let reply = subscribe(&client, &channel).await;
                book.arrived(
                    &channel,
                    Arrival::Gap {
                        gap: position(reply.position.as_ref()),
                    },
                );
            }
        });
    }

    let first = mark(&client, &args.name, false).await;
    book.lock().first_run = first;
    for publisher in &args.feeds {
        book.lock().received.entry(publisher.clone()).or_default();
        subscribe(&client, &feed(publisher)).await;
    }
    println!("ready");

    let (stop_tx, stop) = watch::channel(false);
    let mut traffic = JoinSet::new();
    let mut commands = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Some(command) = commands.next_line().await? {
        match command.as_str() {
            "start" => {
                let ms = Duration::from_millis;
                traffic.spawn(send_events(
                    client.clone(),
                    book.clone(),
                    args.name.clone(),
                    ms(args.pace.event_every_ms),
                    stop.clone(),
                ));
                traffic.spawn(send_requests(
                    client.clone(),
                    book.clone(),
                    args.name.clone(),
                    ms(args.pace.request_every_ms),
                    stop.clone(),
                ));
                if args.publish {
                    traffic.spawn(publish(
                        client.clone(),
                        book.clone(),
                        args.name.clone(),
                        ms(args.pace.publish_every_ms),
                        stop.clone(),
                    ));
                }
            }
            "stop" => {
                let _ = stop_tx.send(true);
                while traffic.join_next().await.is_some() {}
                let last = mark(&client, &args.name, true).await;
                book.lock().last_run = last;
                println!("stopped");
            }
            "report" => {
                let mut ledger = book.lock().clone();
                ledger.reconnects = client.stats().reconnects;
                println!("{}", ledger.to_line());
                break;
            }
            other => eprintln!("chaos_client: unknown command {other:?}"),
        }
    }
    Ok(())
}
