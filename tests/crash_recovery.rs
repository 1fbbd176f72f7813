//! Crash recovery across processes: a server process is killed with SIGKILL and
//! restarted on the same port while native clients run. Every client returns to
//! open, restores its subscriptions, and delivers what it queued while away, in
//! order.

#[path = "events.rs"]
mod events;

use std::process::Stdio;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use events::{News, Note, Publish, Received};
use sente_lite::{Client, Codec, ConnId, ConnectionState, ReconnectPolicy, Router};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// Kills the server process when dropped, so a failing test leaves nothing behind.
struct ServerProcess {
    child: Child,
    stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn spawn_server(addr: &str) -> ServerProcess {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash_server"))
        .args(["--addr", addr])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("server process starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("server says it listens within 20 s")
        .expect("stdout readable")
        .expect("a line");
    assert!(line.starts_with("listening ws://"), "{line}");
    ServerProcess {
        child,
        stdout: lines,
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
