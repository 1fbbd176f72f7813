//! Connections that go nowhere (half-open handshakes), upgrade requests the
//! server refuses, a client that speaks before it is spoken to, and a slow
//! reader of a busy channel.

use std::time::{Duration, Instant};

use super::{Case, Run, Target};
use crate::hostile::answer::{describe, ending, is_end, summary};
use crate::hostile::raw::{Frame, Incoming, KEY, RawWs, upgrade_request};
use crate::hostile::setup::{BUSY_CHANNEL, HTTP_TIMEOUT, PING_INTERVAL, PING_TIMEOUT};

/// An HTTP connection closed by the header (or idle) timeout.
const HTTP_CLOSED: &[(&str, u64)] = &[("closed_http_timeout", 1)];

pub(super) fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "half-open: TCP connect, then nothing",
            sent: "nothing",
            answer: "closed after the header timeout, nothing sent",
            spec: "§5 Opening, §10",
            counted: HTTP_CLOSED,
            run: Run::Custom(|target| Box::pin(silent_http(target.addr, ""))),
        },
        Case {
            name: "half-open: half a request head",
            sent: "`GET /ws HTTP/1.1`, `Host` and half an `Upgrade` header",
            answer: "closed after the header timeout, nothing sent",
            spec: "§5 Opening, §10",
            counted: HTTP_CLOSED,
            run: Run::Custom(|target| {
                Box::pin(async move {
                    let head =
                        format!("GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: webs", target.addr);
                    silent_http(target.addr, &head).await
                })
            }),
        },
        Case {
            name: "half-open: upgraded, then nothing",
            sent: "an upgrade request; then nothing is read or written",
            answer: "sl/handshake; close 4000",
            spec: "§6, §10",
            counted: &[("closed_heartbeat_timeout", 1)],
            run: Run::Custom(|target| Box::pin(silent_websocket(target.addr))),
        },
        Case {
            name: "early: a request in the same packet as the upgrade",
            sent: "an upgrade request and `[\"hostile/echo\",{\"text\":\"early\"},1]` in one write",
            answer: "sl/handshake; sl/ok 1; open",
            spec: "§5 Opening",
            counted: &[],
            run: Run::Custom(|target| Box::pin(pipelined(target.addr))),
        },
        Case {
            name: "upgrade: not an upgrade",
            sent: "`GET /ws` without `Upgrade`",
            answer: "HTTP 426",
            spec: "§5 Opening",
            counted: &[("handshakes_rejected", 1)],
            run: Run::Http(|addr| format!("GET /ws HTTP/1.1\r\nHost: {addr}\r\n\r\n")),
        },
        Case {
            name: "upgrade: key not 16 bytes of base64",
            sent: "an upgrade request with `Sec-WebSocket-Key: abc`",
            answer: "HTTP 400",
            spec: "§5 Opening",
            counted: &[("handshakes_rejected", 1)],
            run: Run::Http(|addr| upgrade_request(addr, None).replace(KEY, "abc")),
        },
        Case {
            name: "upgrade: only unknown subprotocols",
            sent: "an upgrade request offering `sente-lite.xml.v1`",
            answer: "HTTP 400",
            spec: "§1, §5 Opening",
            counted: &[("handshakes_rejected", 1)],
            run: Run::Http(|addr| upgrade_request(addr, Some("sente-lite.xml.v1"))),
        },
        Case {
            name: "upgrade: a Host the server does not answer",
            sent: "an upgrade request with `Host: evil.example`",
            answer: "HTTP 403",
            spec: "§5 Opening",
            counted: &[("handshakes_rejected", 1), ("errors_host_refused", 1)],
            run: Run::Http(|_| upgrade_request("evil.example", None)),
        },
        Case {
            name: "slow reader of a busy channel",
            sent: "`sl/sub` to `busy/feed` (8 KiB every 4 ms), then `sl/ping` every 100 ms and no reads; another subscriber reads",
            answer: "close 4001; the other subscriber kept receiving",
            spec: "§5 Closing, §10",
            counted: &[("closed_slow_consumer", 1)],
            run: Run::Custom(|target| Box::pin(slow_reader(target))),
        },
    ]
}

/// Sends `head` (perhaps nothing) and waits for the server to close.
async fn silent_http(addr: &str, head: &str) -> String {
    let started = Instant::now();
    let mut ws = RawWs::connect(addr).await;
    if !head.is_empty() {
        ws.write(head.as_bytes()).await;
    }
    let got = ws.next_within(HTTP_TIMEOUT * 10).await;
    let took = started.elapsed();
    match got {
        Incoming::Eof | Incoming::Reset if took >= HTTP_TIMEOUT.mul_f32(0.9) => {
            "closed after the header timeout, nothing sent".into()
        }
        other => format!("{other:?} after {took:?}"),
    }
}

/// Upgrades, then neither reads nor writes for well past the silence limit.
async fn silent_websocket(addr: &str) -> String {
    let mut ws = RawWs::upgrade(addr, None).await;
    tokio::time::sleep((PING_INTERVAL + PING_TIMEOUT) * 2).await;
    let mut seen = Vec::new();
    loop {
        let Some(answer) = describe(&ws.next().await) else {
            continue;
        };
        let end = is_end(&answer);
        seen.push(answer);
        if end {
            return summary(&seen);
        }
    }
}

/// The upgrade request and a first request, in one write.
async fn pipelined(addr: &str) -> String {
    let mut ws = RawWs::connect(addr).await;
    let mut bytes = upgrade_request(addr, None).into_bytes();
    bytes.extend(Frame::text(r#"["hostile/echo",{"text":"early"},1]"#).encode());
    ws.write(&bytes).await;
    let head = ws.http_head().await;
    if !head.starts_with("HTTP/1.1 101") {
        return format!("not upgraded: {head:?}");
    }
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match describe(&ws.next().await) {
            Some(answer) if is_end(&answer) => {
                seen.push(answer);
                return summary(&seen);
            }
            Some(answer) => seen.push(answer),
            None => {}
        }
    }
    seen.extend(ending(&mut ws).await);
    summary(&seen)
}

/// Opens a connection subscribed to the busy channel, and sees what it
/// receives until the server ends it.
async fn subscriber(ws: &mut RawWs) -> Result<(), String> {
    ws.handshake(None).await;
    let sub = format!(r#"["sl/sub",1,"{BUSY_CHANNEL}"]"#);
    ws.write(&Frame::text(sub).encode()).await;
    loop {
        match describe(&ws.next().await) {
            Some(answer) if answer == "sl/ok 1" => return Ok(()),
            Some(answer) if answer.starts_with("sl/pub ") => {}
            Some(other) => return Err(format!("the subscription was answered {other}")),
            None => {}
        }
    }
}

/// A subscriber of the busy channel that reads all it is sent (and pings, so
/// it is not silent), until `stop`; how many publications it received, or
/// how it ended.
async fn fast_reader(
    addr: String,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<u64, String> {
    let mut ws = RawWs::connect(&addr).await;
    subscriber(&mut ws).await?;
    let mut received = 0;
    let mut pinged = Instant::now();
    while !*stop.borrow() {
        if pinged.elapsed() > Duration::from_millis(100) {
            ws.write(&Frame::text(r#"["sl/ping",0]"#).encode()).await;
            pinged = Instant::now();
        }
        match describe(&ws.next_within(Duration::from_millis(100)).await) {
            Some(answer) if answer.starts_with("sl/pub ") => received += 1,
            Some(answer) if answer == "nothing" || answer.starts_with("sl/pong ") => {}
            Some(other) => return Err(format!("the reading subscriber got {other}")),
            None => {}
        }
    }
    Ok(received)
}

/// Subscribes to the busy channel, then writes but never reads, until the
/// server counts it a slow consumer; then reads what it was sent. Another
/// subscriber reads all along.
async fn slow_reader(target: &Target<'_>) -> String {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let reading = tokio::spawn(fast_reader(target.addr.to_owned(), stopped));
    let mut ws = RawWs::connect_small(target.addr).await;
    if let Err(failed) = subscriber(&mut ws).await {
        return failed;
    }
    let closed_before = target.server.metrics().await["sente_lite_closed_slow_consumer_total"];
    let started = Instant::now();
    for n in 1u64.. {
        if !ws.send(&[Frame::text(format!(r#"["sl/ping",{n}]"#))]).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let closed = target.server.metrics().await["sente_lite_closed_slow_consumer_total"];
        if closed > closed_before || started.elapsed() > Duration::from_secs(20) {
            break;
        }
    }
    // Reading again: what was sent, then the close frame that says why.
    let mut seen = Vec::new();
    let mut read = 0usize;
    loop {
        let incoming = ws.next().await;
        if let Incoming::Frame(_, payload) = &incoming {
            read += payload.len();
        }
        match describe(&incoming) {
            Some(answer) if answer.starts_with("sl/pub ") || answer.starts_with("sl/pong ") => {}
            Some(answer) => {
                let end = is_end(&answer);
                seen.push(answer);
                if end {
                    break;
                }
            }
            None => {}
        }
    }
    let _ = stop.send(true);
    match reading.await.expect("the reading subscriber runs") {
        Ok(received) if received >= 100 => {
            println!(
                "slow reader: closed after {:?}, {} KiB waiting for it (in the server's queue \
                 and the kernel's buffers); the other subscriber received {received} publications",
                started.elapsed(),
                read >> 10
            );
            seen.push("the other subscriber kept receiving".into());
        }
        Ok(received) => seen.push(format!(
            "the other subscriber received {received} publications"
        )),
        Err(failed) => seen.push(failed),
    }
    summary(&seen)
}
