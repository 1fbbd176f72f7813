//! Crash recovery across processes: a server process is killed with SIGKILL and
//! restarted on the same port while native clients run. Every client returns to
//! open, restores its subscriptions, and delivers what it queued while away, in
//! order. Client processes that are disconnected resume and get what they
//! missed, once; after the server's restart (which loses its in-memory
//! history) they are told of the gap instead.

#[path = "events.rs"]
mod events;
#[path = "listening.rs"]
mod listening;
#[path = "ports.rs"]
mod ports;

use listening::{Output, spawn_listening};
use ports::free_port;

use std::process::Stdio;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use events::{Kick, News, Note, Publish, Received};
use sente_lite::{Client, Codec, ConnId, ConnectionState, ReconnectPolicy, Router};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// Kills the server process when dropped, so a failing test leaves nothing behind.
struct ServerProcess {
    child: Child,
    stdout: Output,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn spawn_server(addr: &str) -> ServerProcess {
    let mut command = Command::new(env!("CARGO_BIN_EXE_crash_server"));
    command.args(["--addr", addr]);
    let (child, stdout, url) = spawn_listening(&mut command).await;
    assert!(url.starts_with("ws://"), "{url}");
    ServerProcess { child, stdout }
}

/// Sends what a client received: its connection and the news text.
type NewsSender = mpsc::UnboundedSender<(ConnId, String)>;

/// Where the clients' `crash/news` handler reports what it received.
static NEWS: LazyLock<Mutex<Option<NewsSender>>> = LazyLock::new(Default::default);

#[sente_lite::handler]
async fn on_news(ctx: sente_lite::Ctx, news: News) {
    if let Some(tx) = NEWS.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        let _ = tx.send((ctx.conn_id(), news.text));
    }
}

/// Receives `n` news items with `text`, within 10 s.
async fn expect_news(rx: &mut mpsc::UnboundedReceiver<(ConnId, String)>, n: usize, text: &str) {
    for _ in 0..n {
        let (_, got) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("news within 10 s")
            .expect("channel open");
        assert_eq!(got, text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_survive_a_server_killed_and_restarted_on_the_same_port() {
    let (tx, mut news) = mpsc::unbounded_channel();
    *NEWS.lock().unwrap() = Some(tx);
    let addr = format!("127.0.0.1:{}", free_port());
    let server = spawn_server(&addr).await;

    let policy = ReconnectPolicy::default()
        .with_initial_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_millis(400));
    let mut clients = Vec::new();
    for (i, codec) in [Codec::Json, Codec::Postcard, Codec::Json]
        .into_iter()
        .enumerate()
    {
        let client = Client::builder(format!("ws://{addr}/ws"))
            .router(Router::new().handler(on_news))
            .codec(codec)
            .reconnect(policy.clone())
            .connect()
            .await
            .expect("client connects");
        client.subscribe("news/all").await.expect("subscribed");
        clients.push((format!("client-{i}"), client));
    }
    let publish = Publish {
        channel: "news/all".into(),
        text: "before".into(),
    };
    assert_eq!(clients[0].1.request(&publish).await.unwrap(), 3);
    expect_news(&mut news, 3, "before").await;

    // SIGKILL: no close frames, no goodbye.
    drop(server);
    for (_, client) in &clients {
        let mut changes = client.state_changes();
        tokio::time::timeout(
            Duration::from_secs(10),
            changes.wait_for(|s| *s != ConnectionState::Open),
        )
        .await
        .expect("the client notices the crash")
        .unwrap();
    }
    // While the server is away, each client queues numbered notes.
    for (name, client) in &clients {
        for seq in 1..=5 {
            client
                .send(&Note {
                    client: name.clone(),
                    seq,
                })
                .expect("queued while away");
        }
    }

    let _restarted = spawn_server(&addr).await;
    for (_, client) in &clients {
        client
            .wait_for(ConnectionState::Open, Duration::from_secs(15))
            .await
            .expect("the client returns to open");
        assert_eq!(client.subscriptions(), vec!["news/all".to_owned()]);
    }
    // Queued notes arrived, all of them, in order.
    for (name, client) in &clients {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let got = loop {
            let got = client
                .request(&Received {
                    client: name.clone(),
                })
                .await
                .expect("answered");
            if got.len() >= 5 || tokio::time::Instant::now() > deadline {
                break got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(got, vec![1, 2, 3, 4, 5], "{name}");
    }
    // Subscriptions were restored on the new server process.
    let publish = Publish {
        channel: "news/all".into(),
        text: "after".into(),
    };
    assert_eq!(clients[1].1.request(&publish).await.unwrap(), 3);
    expect_news(&mut news, 3, "after").await;
    for (_, client) in &clients {
        assert!(client.stats().reconnects >= 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_the_server_and_tells_clients_to_go_away() {
    use futures_util::StreamExt;

    let addr = format!("127.0.0.1:{}", free_port());
    let mut server = spawn_server(&addr).await;
    let client = Client::builder(format!("ws://{addr}/ws"))
        .reconnect(ReconnectPolicy::default().with_initial_delay(Duration::from_millis(50)))
        .connect()
        .await
        .expect("client connects");
    let (mut raw, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    let handshake = raw.next().await.unwrap().unwrap();
    assert!(
        handshake
            .to_text()
            .unwrap()
            .starts_with(r#"["sl/handshake","#)
    );

    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    // The raw peer is told why, then closed with 1001.
    let reason = tokio::time::timeout(Duration::from_secs(10), raw.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let reason = reason.to_text().unwrap().to_owned();
    assert!(
        reason.starts_with(r#"["sl/close",{"code":"going-away""#),
        "{reason}"
    );
    assert!(reason.contains(r#""reconnect_after_ms":"#), "{reason}");
    let close = tokio::time::timeout(Duration::from_secs(10), raw.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let sente_lite::Message::Close(Some(frame)) = close else {
        panic!("{close:?}")
    };
    assert_eq!(u16::from(frame.code), 1001);

    // The native client leaves open; the process drains and exits cleanly.
    let mut changes = client.state_changes();
    tokio::time::timeout(
        Duration::from_secs(10),
        changes.wait_for(|s| *s != ConnectionState::Open),
    )
    .await
    .unwrap()
    .unwrap();
    let drained = tokio::time::timeout(Duration::from_secs(10), server.stdout.next_line())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(drained.as_deref(), Some("drained"));
    let exit = tokio::time::timeout(Duration::from_secs(10), server.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

/// A client process (`resume_client`), its stdout read line by line.
struct ClientProcess {
    _child: Child,
    lines: mpsc::UnboundedReceiver<String>,
}

fn spawn_client(url: &str, codec: &str) -> ClientProcess {
    let mut child = Command::new(env!("CARGO_BIN_EXE_resume_client"))
        .args(["--url", url, "--codec", codec])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("client process starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let (tx, lines) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = stdout.next_line().await {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    ClientProcess {
        _child: child,
        lines,
    }
}

impl ClientProcess {
    /// The lines printed until (and with) one equal to `last`, within 15 s.
    async fn until(&mut self, last: &str) -> Vec<String> {
        self.until_all(&[last]).await
    }

    /// The lines printed until each of `wanted` was, within 15 s.
    async fn until_all(&mut self, wanted: &[&str]) -> Vec<String> {
        let mut seen: Vec<String> = Vec::new();
        while !wanted.iter().all(|w| seen.iter().any(|line| line == w)) {
            let line = tokio::time::timeout(Duration::from_secs(15), self.lines.recv())
                .await
                .unwrap_or_else(|_| panic!("{wanted:?} within 15 s; saw {seen:?}"))
                .expect("the client process runs");
            seen.push(line);
        }
        seen
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_processes_resume_what_they_missed_and_are_told_when_history_was_lost() {
    let addr = format!("127.0.0.1:{}", free_port());
    let url = format!("ws://{addr}/ws");
    let server = spawn_server(&addr).await;
    let mut clients = vec![spawn_client(&url, "json"), spawn_client(&url, "postcard")];
    for client in &mut clients {
        client.until("ready").await;
    }
    let control = Client::builder(url.clone())
        .reconnect(ReconnectPolicy::default().with_initial_delay(Duration::from_millis(50)))
        .connect()
        .await
        .expect("control client connects");
    let publish = |text: &str| Publish {
        channel: "news/all".into(),
        text: text.into(),
    };
    assert_eq!(control.request(&publish("one")).await.unwrap(), 2);

    // Both clients are disconnected, and three publications follow at once:
    // they are away (or leaving) while those are made.
    let kick = Kick {
        channel: "news/all".into(),
        reconnect_after_ms: 300,
        texts: vec!["two".into(), "three".into(), "four".into()],
    };
    assert_eq!(control.request(&kick).await.unwrap(), 2);
    for client in &mut clients {
        let seen = client
            .until_all(&["resubscribed news/all recovered=true", "news four"])
            .await;
        // Some may have come before the close, the rest replayed: each once.
        let news: Vec<&String> = seen.iter().filter(|l| l.starts_with("news ")).collect();
        assert_eq!(news, ["news one", "news two", "news three", "news four"]);
    }

    // The server process dies and comes back with no memory of the channel.
    drop(server);
    let _restarted = spawn_server(&addr).await;
    for client in &mut clients {
        let seen = client.until("resubscribed news/all recovered=false").await;
        assert!(
            !seen.iter().any(|line| line.starts_with("news ")),
            "nothing is replayed across a lost history: {seen:?}"
        );
    }
    control
        .wait_for(ConnectionState::Open, Duration::from_secs(15))
        .await
        .expect("the control client is back");
    assert_eq!(control.request(&publish("five")).await.unwrap(), 2);
    for client in &mut clients {
        assert_eq!(client.until("news five").await, ["news five"]);
    }
}
