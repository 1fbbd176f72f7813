//! The HTTP side of the server's listener over raw sockets: connections that
//! stall before upgrading are closed, upgrade requests are checked exactly
//! (the key, the `Host`), and upgraded connections are left to their heartbeats.

use std::time::Duration;

use sente_lite::Server;
use sente_lite::server::{HostPolicy, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Short enough for a test, long enough that a loaded machine still sends a
/// request head in time.
const SHORT: Duration = Duration::from_millis(400);
/// How long past a timeout a test waits for the close.
const MARGIN: Duration = Duration::from_secs(5);

async fn start(change: impl FnOnce(&mut ServerConfig)) -> Server {
    Server::builder()
        .configure(change)
        .page("/big", "application/octet-stream", vec![b'x'; 64 << 20])
        .bind("127.0.0.1:0")
        .await
        .expect("server binds")
}

async fn open(server: &Server) -> TcpStream {
    TcpStream::connect(server.local_addr().unwrap())
        .await
        .unwrap()
}

/// Reads until the server closes the connection, within `within`; returns
/// what was read.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut seen = Vec::new();
    let closed = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the server kept the connection open past {within:?}; read {:?}",
        String::from_utf8_lossy(&seen)
    );
    seen
}

/// Reads one HTTP response (head and a `Content-Length` body) without waiting
/// for the connection to close.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&seen).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
        let n = tokio::time::timeout(MARGIN, stream.read(&mut buf))
            .await
            .expect("a response within the margin")
            .unwrap();
        assert!(n > 0, "closed before a whole response: {text}");
        seen.extend_from_slice(&buf[..n]);
    }
}

/// Waits until `condition` holds on the server's stats.
async fn wait_for(
    server: &Server,
    what: &str,
    condition: impl Fn(&sente_lite::StatsSnapshot) -> bool,
) {
    let waited = tokio::time::timeout(MARGIN, async {
        while !condition(&server.stats()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "{what}: {:?}", server.stats());
}

/// An upgrade request with this `Host` header value (and `Origin`, if any).
fn upgrade_request(host: &str, origin: Option<&str>, key: &str) -> String {
    let origin = origin.map_or_else(String::new, |o| format!("Origin: {o}\r\n"));
    format!(
        "GET /ws HTTP/1.1\r\nHost: {host}\r\n{origin}Connection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
    )
}

/// Sends `request` on a new connection and returns the status line's code and
/// the head and body as text.
async fn answer(server: &Server, request: &str) -> (u16, String) {
    let mut stream = open(server).await;
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    // A 101 leaves the connection open: stop at the end of the head.
    while !String::from_utf8_lossy(&seen).contains("\r\n\r\n") {
        let n = tokio::time::timeout(MARGIN, stream.read(&mut buf))
            .await
            .expect("an answer within the margin")
            .unwrap();
        assert!(n > 0, "closed without an answer");
        seen.extend_from_slice(&buf[..n]);
    }
    if !seen.starts_with(b"HTTP/1.1 101") {
        // Read the body too (text answers are short).
        seen.extend(read_response_rest(&mut stream, &seen).await);
    }
    let text = String::from_utf8_lossy(&seen).into_owned();
    (text[9..12].parse().unwrap(), text)
}

async fn read_response_rest(stream: &mut TcpStream, seen: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(seen);
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut rest = vec![0u8; length.saturating_sub(body.len())];
    tokio::time::timeout(MARGIN, stream.read_exact(&mut rest))
        .await
        .expect("the body within the margin")
        .unwrap();
    rest
}

/// A valid key: the base64 encoding of 16 bytes (RFC 6455's example).
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    let server = start(|c| {
        c.limits.http_header_timeout = SHORT;
        c.limits.http_idle_timeout = Duration::from_secs(600);
    })
    .await;
    let mut silent = open(&server).await;
    read_until_closed(&mut silent, SHORT + MARGIN).await;
    wait_for(&server, "the close is counted", |s| {
        s.errors.http_timeout == 1
    })
    .await;
}

#[tokio::test]
async fn half_a_request_head_is_closed_after_the_header_timeout() {
    let server = start(|c| {
        c.limits.http_header_timeout = SHORT;
        c.limits.http_idle_timeout = Duration::from_secs(600);
    })
    .await;
    let mut half = open(&server).await;
    half.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .unwrap();
    let seen = read_until_closed(&mut half, SHORT + MARGIN).await;
    assert!(!seen.starts_with(b"HTTP/1.1 200"), "{seen:?}");
    wait_for(&server, "the close is counted", |s| {
        s.errors.http_timeout == 1
    })
    .await;
}

#[tokio::test]
async fn a_kept_alive_connection_left_idle_after_health_is_closed() {
    // By the idle timeout, with a long header timeout ...
    let server = start(|c| {
        c.limits.http_header_timeout = Duration::from_secs(600);
        c.limits.http_idle_timeout = SHORT;
    })
    .await;
    let mut kept = open(&server).await;
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let response = read_response(&mut kept).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    read_until_closed(&mut kept, SHORT + MARGIN).await;
    wait_for(&server, "the close is counted", |s| {
        s.errors.http_timeout == 1
    })
    .await;

    // ... and by the header timeout, which runs again while a kept-alive
    // connection waits for its next request.
    let server = start(|c| {
        c.limits.http_header_timeout = SHORT;
        c.limits.http_idle_timeout = Duration::from_secs(600);
    })
    .await;
    let mut kept = open(&server).await;
    for _ in 0..2 {
        kept.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .unwrap();
        let response = read_response(&mut kept).await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }
    read_until_closed(&mut kept, SHORT + MARGIN).await;
}

#[tokio::test]
async fn a_peer_that_does_not_read_its_answer_is_closed_by_the_idle_timeout() {
    let server = start(|c| {
        c.limits.http_header_timeout = Duration::from_secs(600);
        c.limits.http_idle_timeout = SHORT;
    })
    .await;
    let mut stalled = open(&server).await;
    stalled
        .write_all(b"GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    // 64 MiB fill the socket buffers long before the end: the server's write
    // stalls, and nothing moves until the idle timeout closes the connection.
    wait_for(&server, "the stalled connection is closed", |s| {
        s.errors.http_timeout == 1
    })
    .await;
    drop(stalled);
}

#[tokio::test]
async fn upgraded_connections_outlive_the_http_timeouts() {
    let server = start(|c| {
        c.limits.http_header_timeout = SHORT;
        c.limits.http_idle_timeout = SHORT;
    })
    .await;
    let client = sente_lite::Client::builder(server.ws_url())
        .connect()
        .await
        .unwrap();
    tokio::time::sleep(SHORT * 3).await;
    assert_eq!(client.state(), sente_lite::ConnectionState::Open);
    assert_eq!(server.stats().connections, 1);
    assert_eq!(server.stats().errors.http_timeout, 0);
}

#[tokio::test]
async fn a_short_or_malformed_websocket_key_is_refused_with_400() {
    let server = start(|_| {}).await;
    let port = server.local_addr().unwrap().port();
    for key in [
        "",
        "abc",
        "YWJj",                         // 3 bytes
        "AAAAAAAAAAAAAAAAAAAA",         // 15 bytes
        "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", // 20 bytes
        "dGhlIHNhbXBsZSBub25jZQ!!",     // 24 characters, not base64
        "dGhlIHNhbXBsZSBub25jZQ",       // unpadded
    ] {
        let (status, text) = answer(
            &server,
            &upgrade_request(&format!("127.0.0.1:{port}"), None, key),
        )
        .await;
        assert_eq!(status, 400, "key {key:?}: {text}");
        assert!(
            text.contains("Sec-WebSocket-Key must be the base64 encoding of 16 bytes"),
            "{text}"
        );
    }
    assert_eq!(server.stats().handshakes_rejected, 7);
    let (status, text) = answer(
        &server,
        &upgrade_request(&format!("127.0.0.1:{port}"), None, KEY),
    )
    .await;
    assert_eq!(status, 101, "{text}");
    assert!(
        text.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "the accept value of RFC 6455's example: {text}"
    );
}

#[tokio::test]
async fn dns_rebinding_is_refused_on_a_loopback_server_by_default() {
    let server = start(|_| {}).await;
    let port = server.local_addr().unwrap().port();
    let evil = format!("http://evil.example:{port}");
    let (status, text) = answer(
        &server,
        &upgrade_request(&format!("evil.example:{port}"), Some(&evil), KEY),
    )
    .await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("does not answer for that Host"), "{text}");
    // Every route: a rebound page could read `/metrics` too.
    let (status, _) = answer(
        &server,
        &format!("GET /metrics HTTP/1.1\r\nHost: evil.example:{port}\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 403);
    let stats = server.stats();
    assert_eq!(stats.errors.host_refused, 2);
    assert_eq!(stats.handshakes_rejected, 1);

    // The names of the machine itself, as the chat page is opened.
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("LocalHost.:{port}"),
        "[::1]:8080".to_owned(),
        "app.localhost".to_owned(),
    ] {
        let origin = format!("http://{host}");
        let (status, text) = answer(&server, &upgrade_request(&host, Some(&origin), KEY)).await;
        assert_eq!(status, 101, "{host}: {text}");
    }
    // No Origin: not a browser, and let through; but an HTTP/1.1 request
    // without Host is malformed, whoever sends it.
    let (status, text) = answer(
        &server,
        &format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let (status, text) = answer(&server, "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status, 400, "{text}");
}

#[tokio::test]
async fn listed_hosts_are_the_only_ones_answered() {
    let server = start(|c| {
        c.hosts = HostPolicy::AllowList(vec!["app.example".into(), "localhost".into()]);
    })
    .await;
    let port = server.local_addr().unwrap().port();
    for (host, status) in [
        ("app.example", 101),
        ("APP.example", 101),
        ("localhost", 101),
        ("127.0.0.1", 403),
        ("evil.example", 403),
        ("app.example.evil.example", 403),
    ] {
        let host = format!("{host}:{port}");
        let origin = format!("http://{host}");
        let (got, text) = answer(&server, &upgrade_request(&host, Some(&origin), KEY)).await;
        assert_eq!(got, status, "{host}: {text}");
    }

    let open_to_all = start(|c| c.hosts = HostPolicy::Any).await;
    let port = open_to_all.local_addr().unwrap().port();
    let origin = format!("http://evil.example:{port}");
    let (status, _) = answer(
        &open_to_all,
        &upgrade_request(&format!("evil.example:{port}"), Some(&origin), KEY),
    )
    .await;
    assert_eq!(status, 101, "HostPolicy::Any checks nothing");
}

#[tokio::test]
async fn http_timeouts_and_host_refusals_are_in_metrics() {
    let server = start(|c| c.limits.http_header_timeout = SHORT).await;
    let mut silent = open(&server).await;
    read_until_closed(&mut silent, SHORT + MARGIN).await;
    wait_for(&server, "the close is counted", |s| {
        s.errors.http_timeout == 1
    })
    .await;
    let port = server.local_addr().unwrap().port();
    let (status, _) = answer(
        &server,
        &format!("GET /health HTTP/1.1\r\nHost: evil.example:{port}\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 403);
    let metrics = server.metrics_text();
    for line in [
        "sente_lite_closed_http_timeout_total 1",
        "sente_lite_errors_host_refused_total 1",
        "sente_lite_errors_accept_failed_total 0",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
}

#[tokio::test]
async fn one_address_holds_at_most_its_share_of_connections_before_and_after_upgrading() {
    let server = start(|config| {
        config.limits.max_connections_per_address = Some(2);
    })
    .await;
    // A WebSocket and a silent TCP connection take both slots of 127.0.0.1.
    let (ws, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .expect("the first connection upgrades");
    let silent = open(&server).await;
    let mut third = open(&server).await;
    third
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut third, MARGIN).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(
        answer.contains("too many connections from this address"),
        "{answer}"
    );
    assert_eq!(server.stats().errors.address_refused, 1);

    // Each connection gives its slot back when it ends: the upgraded one too.
    drop(ws);
    drop(silent);
    let deadline = tokio::time::Instant::now() + MARGIN;
    loop {
        let mut next = open(&server).await;
        next.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let answer = read_until_closed(&mut next, MARGIN).await;
        if answer.starts_with(b"HTTP/1.1 200") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slots never came back: {}",
            String::from_utf8_lossy(&answer)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_a, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .unwrap();
    let (_b, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .unwrap();
    let refused = tokio_tungstenite::connect_async(server.ws_url()).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
        }
        other => panic!("a third WebSocket was not refused: {other:?}"),
    }
}

#[tokio::test]
async fn a_request_names_exactly_one_host_and_an_absolute_target_names_it_instead() {
    let server = start(|_| {}).await;
    let port = server.local_addr().unwrap().port();
    let cases = [
        // No Host in HTTP/1.1, two Hosts: malformed (RFC 9112 §3.2).
        ("GET /health HTTP/1.1\r\n\r\n".to_owned(), 400),
        (
            format!("GET /health HTTP/1.1\r\nHost: localhost:{port}\r\nHost: evil.example\r\n\r\n"),
            400,
        ),
        // HTTP/1.0 without Host: no name this loopback server answers.
        ("GET /health HTTP/1.0\r\n\r\n".to_owned(), 403),
        // An absolute target's authority takes the place of Host.
        (
            format!(
                "GET http://evil.example:{port}/health HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n"
            ),
            403,
        ),
        (
            format!(
                "GET http://localhost:{port}/health HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n"
            ),
            200,
        ),
    ];
    for (request, expected) in cases {
        let (status, text) = answer(&server, &request).await;
        assert_eq!(status, expected, "{request:?}: {text}");
    }
    assert_eq!(server.stats().errors.host_refused, 4);
}
