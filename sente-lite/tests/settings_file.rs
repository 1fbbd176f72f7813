//! A real server started from a settings file on disk, seen from a real
//! client: the path, the heartbeat, the limits and the channel options of the
//! file are what the client meets.

use std::path::PathBuf;

use sente_lite::protocol::codes;
use sente_lite::server::{Rejection, allow_all};
use sente_lite::settings::Settings;
use sente_lite::{Client, RequestError, Server, UserId};
use serde::{Deserialize, Serialize};

/// Published on the channels of the test.
#[sente_lite::event("settings-file/tick")]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tick {
    seq: u64,
}

const FILE: &str = r#"
[server]
addr = "127.0.0.1:0"
path = "/live"
ping_interval_ms = 1500
ping_timeout_ms = 700

[server.limits]
max_message_size = 65536
max_in_flight_requests = 7
rate_per_sec = 0
max_subscriptions = 9

[[server.channels]]
pattern = "room/*"
history_size = 10
presence = true
"#;

/// A folder of its own under the system's temporary folder, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "sente-lite-{name}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&path).expect("the temporary folder is created");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn a_server_started_from_a_file_serves_what_the_file_says() {
    let dir = TempDir::new("settings-file");
    let path = dir.0.join("server.toml");
    std::fs::write(&path, FILE).expect("the file is written");

    let settings = Settings::load(Some(&path)).expect("the file loads");
    let server = Server::builder()
        .settings(&settings.server)
        .expect("the settings apply")
        .auth(|req| async move { Ok::<_, Rejection>(req.query("name").map(UserId::from)) })
        .channel("room/*", allow_all)
        .channel("plain/*", allow_all)
        .bind(&settings.server.addr)
        .await
        .expect("server binds");
    let addr = server.local_addr().expect("a bound address");
    assert_eq!(server.ws_url(), format!("ws://{addr}/live"));

    // The endpoint is at the file's path, not at the default one.
    let elsewhere = Client::builder(format!("ws://{addr}/ws")).connect().await;
    assert!(elsewhere.is_err(), "nothing answers at /ws");

    // Publications before anyone subscribes: kept for `room/*` only.
    for seq in 1..=3 {
        let kept = server
            .publish("room/a", &Tick { seq })
            .await
            .expect("published");
        assert_eq!(kept.position.map(|p| p.offset), Some(seq));
        let dropped = server
            .publish("plain/a", &Tick { seq })
            .await
            .expect("published");
        assert_eq!(dropped.position, None, "plain/* keeps no history");
    }

    let client = Client::connect(format!("ws://{addr}/live?name=ada"))
        .await
        .expect("the client connects at the file's path");
    let handshake = client.handshake().expect("a handshake");
    assert_eq!(handshake.heartbeat.interval_ms, 1500);
    assert_eq!(handshake.heartbeat.timeout_ms, 700);
    assert_eq!(handshake.max_message_size, 65536);
    assert_eq!(handshake.limits.max_in_flight, 7);
    assert_eq!(handshake.limits.rate_per_sec, 0, "rate_per_sec = 0 is off");
    assert_eq!(handshake.limits.max_subscriptions, 9);

    let room = client.subscribe("room/a").await.expect("subscribed");
    assert_eq!(room.position.map(|p| p.offset), Some(3));
    let members = client
        .presence("room/a")
        .await
        .expect("room/* has presence");
    assert_eq!(
        members
            .members
            .iter()
            .map(|m| m.user_id.0.as_str())
            .collect::<Vec<_>>(),
        ["ada"]
    );

    client.subscribe("plain/a").await.expect("subscribed");
    match client.presence("plain/a").await {
        Err(RequestError::Remote(reply)) => assert_eq!(reply.code, codes::FORBIDDEN),
        other => panic!("plain/* has no presence, got {other:?}"),
    }
    client.disconnect().await;
}
