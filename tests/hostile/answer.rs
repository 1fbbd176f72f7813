//! The server's frames as short answers that a case can state and a table can
//! show: `sl/error bad-frame`, `sl/err 5 too-many-requests`, `sl/ok 7`,
//! `close 1009`, in either encoding. Conversations over [`RawWs`] that end by
//! saying whether the connection is still open.

use super::raw::{Frame, Incoming, RawWs, op};

/// The `sl/ping` a conversation sends last to see that the connection is open.
const PROBE: u64 = 424_242;

/// What one frame of the server says; `None` for the server's `sl/ping`,
/// which is part of no answer.
pub(crate) fn describe(incoming: &Incoming) -> Option<String> {
    match incoming {
        Incoming::Frame(op::TEXT, text) => json(text),
        Incoming::Frame(op::BINARY, bytes) => postcard(bytes),
        Incoming::Frame(op::CLOSE, payload) => Some(match payload.get(..2) {
            Some(code) => format!("close {}", u16::from_be_bytes([code[0], code[1]])),
            None => "close without a code".into(),
        }),
        Incoming::Frame(op::PONG, _) => Some("WebSocket pong".into()),
        Incoming::Frame(opcode, _) => Some(format!("opcode {opcode:#x}")),
        Incoming::Eof => Some("end of stream".into()),
        Incoming::Reset => Some("reset".into()),
        Incoming::Silence => Some("nothing".into()),
    }
}

/// Whether a description ends the connection.
pub(crate) fn is_end(description: &str) -> bool {
    description.starts_with("close") || ["end of stream", "reset", "nothing"].contains(&description)
}

fn json(text: &[u8]) -> Option<String> {
    let value: serde_json::Value = match serde_json::from_slice(text) {
        Ok(value) => value,
        Err(_) => return Some(format!("text {}", String::from_utf8_lossy(text))),
    };
    let code = |error: &serde_json::Value| error["code"].as_str().unwrap_or("?").to_owned();
    let name = value[0].as_str().unwrap_or("?");
    Some(match name {
        "sl/ping" => return None,
        "sl/error" => format!("sl/error {}", code(&value[1])),
        "sl/err" => format!("sl/err {} {}", value[1], code(&value[2])),
        "sl/ok" => format!("sl/ok {}", value[1]),
        "sl/pong" => format!("sl/pong {}", value[1]),
        "sl/pub" => format!("sl/pub {}", value[1].as_str().unwrap_or("?")),
        "sl/close" => format!("sl/close {}", code(&value[1])),
        "sl/handshake" => "sl/handshake".into(),
        other => format!("text {other}"),
    })
}

/// A postcard header read field by field (section 4 of PROTOCOL.md).
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn varint(&mut self) -> u64 {
        let mut value = 0u64;
        for (i, byte) in self.0.iter().enumerate() {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.0 = &self.0[i + 1..];
                return value;
            }
        }
        self.0 = &[];
        value
    }

    fn str(&mut self) -> String {
        let len = usize::try_from(self.varint())
            .unwrap_or(usize::MAX)
            .min(self.0.len());
        let (text, rest) = self.0.split_at(len);
        self.0 = rest;
        String::from_utf8_lossy(text).into_owned()
    }
}

fn postcard(bytes: &[u8]) -> Option<String> {
    let mut f = Fields(bytes);
    Some(match f.varint() {
        2 => format!("sl/ok {}", f.varint()),
        3 => {
            let id = f.varint();
            format!("sl/err {id} {}", f.str())
        }
        4 => format!("sl/pub {}", f.str()),
        5 => "sl/handshake".into(),
        6 => return None,
        7 => format!("sl/pong {}", f.varint()),
        10 => format!("sl/error {}", f.str()),
        11 => format!("sl/close {}", f.str()),
        kind => format!("binary kind {kind}"),
    })
}

/// The server's frames until `count` answers came or the connection ended
/// (with a close frame, the client's close is sent back).
pub(crate) async fn answers(ws: &mut RawWs, count: usize) -> Vec<String> {
    let mut seen = Vec::new();
    while seen.len() < count {
        let Some(answer) = describe(&ws.next().await) else {
            continue;
        };
        let end = is_end(&answer);
        seen.push(answer);
        if end {
            close_back(ws).await;
            break;
        }
    }
    seen
}

/// Answers the server's close frame with the client's (code 1000), so that it
/// need not wait for it.
async fn close_back(ws: &mut RawWs) {
    let _ = ws
        .send(&[Frame::new(op::CLOSE, 1000u16.to_be_bytes())])
        .await;
}

/// How a conversation ended: `open` when the connection still answers an
/// `sl/ping` (any other answer on the way is listed first), or how it closed.
pub(crate) async fn ending(ws: &mut RawWs) -> Vec<String> {
    let ping = format!(r#"["sl/ping",{PROBE}]"#);
    if !ws.send(&[Frame::text(ping)]).await {
        return vec!["the server had closed".into()];
    }
    let mut seen = Vec::new();
    loop {
        let Some(answer) = describe(&ws.next().await) else {
            continue;
        };
        if answer == format!("sl/pong {PROBE}") {
            seen.push("open".into());
            return seen;
        }
        let end = is_end(&answer);
        seen.push(answer);
        if end {
            close_back(ws).await;
            return seen;
        }
    }
}

/// Sends `frames` on a new connection, reads `count` answers, and says how the
/// connection ended; the answers as [`summary`] writes them.
pub(crate) async fn converse(
    addr: &str,
    protocol: Option<&str>,
    frames: &[Frame],
    count: usize,
) -> String {
    let mut ws = RawWs::open(addr, protocol).await;
    // A frame the server refuses may close the connection before the rest
    // arrives: what it answered is read either way.
    let _ = ws.send(frames).await;
    let mut seen = answers(&mut ws, count).await;
    if !seen.last().is_some_and(|a| is_end(a)) {
        seen.extend(ending(&mut ws).await);
    }
    summary(&seen)
}

/// Answers joined with `; `, a run of equal ones written once with its
/// count (`sl/error bad-frame × 21`).
pub(crate) fn summary(answers: &[String]) -> String {
    let mut parts: Vec<(String, usize)> = Vec::new();
    for answer in answers {
        match parts.last_mut() {
            Some((last, n)) if last == answer => *n += 1,
            _ => parts.push((answer.clone(), 1)),
        }
    }
    let parts: Vec<String> = parts
        .into_iter()
        .map(|(answer, n)| {
            if n == 1 {
                answer
            } else {
                format!("{answer} × {n}")
            }
        })
        .collect();
    parts.join("; ")
}

/// How many answers a [`summary`] holds before its final `open`, if any.
pub(crate) fn count_before_open(summary: &str) -> usize {
    summary
        .split("; ")
        .filter(|part| *part != "open")
        .map(|part| {
            part.rsplit_once(" × ")
                .and_then(|(_, n)| n.parse().ok())
                .unwrap_or(1)
        })
        .sum()
}
