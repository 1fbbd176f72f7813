//! `/metrics` and `/health` scraped over HTTP from a server under real traffic.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sente_lite::server::Shutdown;
use sente_lite::{Client, Codec, Router, Server};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[sente_lite::event("obs/square", reply = u64)]
#[derive(Debug, Serialize, Deserialize)]
struct Square(u64);

#[sente_lite::handler]
async fn square(req: Square) -> u64 {
    req.0 * req.0
}

async fn get(server: &Server, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(server.local_addr().unwrap())
        .await
        .unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

#[tokio::test]
async fn metrics_count_real_traffic_and_health_reports_checks_and_draining() {
    let database_up = Arc::new(AtomicBool::new(true));
    let check = Arc::clone(&database_up);
    let server = Server::builder()
        .router(Router::new().handler(square))
        .health_check("database", move || {
            if check.load(Ordering::Relaxed) {
                Ok(())
            } else {
                Err("connection refused".into())
            }
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::builder(server.ws_url())
        .codec(Codec::Postcard)
        .connect()
        .await
        .unwrap();
    for n in 0..5 {
        assert_eq!(client.request(&Square(n)).await.unwrap(), n * n);
    }

    let (status, metrics) = get(&server, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("sente_lite_event_messages_in_total{event=\"obs/square\"} 5"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sente_lite_handler_duration_seconds_count{event=\"obs/square\"} 5"),
        "{metrics}"
    );
    assert!(metrics.contains("sente_lite_connections 1"), "{metrics}");
    assert!(
        metrics.contains("sente_lite_requests_handled_total 5"),
        "{metrics}"
    );
    assert!(metrics.ends_with("# EOF\n"), "{metrics}");

    let (status, health) = get(&server, "/health").await;
    assert_eq!(status, 200);
    assert_eq!(
        health,
        r#"{"status":"ok","connections":1,"checks":{"database":"ok"}}"#
    );
    database_up.store(false, Ordering::Relaxed);
    let (status, health) = get(&server, "/health").await;
    assert_eq!(status, 503);
    assert_eq!(
        health,
        r#"{"status":"failing","connections":1,"checks":{"database":"connection refused"}}"#
    );

    database_up.store(true, Ordering::Relaxed);
    server.shutdown(Shutdown::default()).await;
    assert_eq!(server.health().status, "draining");
}
