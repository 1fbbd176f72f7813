//! The hostile cases, each with the answer `docs/PROTOCOL.md` documents for
//! it. The test runs this list and prints it as a table; nothing else states
//! what a case expects.

mod channels;
mod connections;
mod floods;
mod frames;
mod websocket;

use std::future::Future;
use std::pin::Pin;

use super::answer::{converse, count_before_open};
use super::process::ServerProcess;
use super::raw::{Frame, RawWs};

pub(crate) use super::setup::{MAX_MESSAGE_SIZE, RATE_BURST};

/// The postcard subprotocol.
pub(crate) const POSTCARD: &str = "sente-lite.postcard.v1";

/// In [`Case::counted`]: the counter moves by at least one (how many depends
/// on timing).
pub(crate) const SOME: u64 = u64::MAX;

/// What a case runs.
pub(crate) enum Run {
    /// One text message on a JSON connection.
    Text(&'static str),
    /// One binary message on a postcard connection.
    Binary(fn() -> Vec<u8>),
    /// These frames, written at once, on a JSON connection.
    Frames(fn() -> Vec<Frame>),
    /// This HTTP request (made for the server's address) on a new
    /// connection: answered with the status of the response (`HTTP 400`).
    Http(fn(&str) -> String),
    /// Anything else: returns the observed answer.
    Custom(for<'a> fn(&'a Target<'a>) -> Pin<Box<dyn Future<Output = String> + Send + 'a>>),
}

/// One hostile case.
pub(crate) struct Case {
    /// A short name.
    pub(crate) name: &'static str,
    /// What is sent, in words (for [`Run::Text`] the text itself is shown).
    pub(crate) sent: &'static str,
    /// The documented answer, exactly as the run reports what it observed.
    /// For [`Run::Text`], [`Run::Binary`] and [`Run::Frames`] it is the
    /// server's answers joined with `; `, ending with `open` (an `sl/ping`
    /// is still answered) or with how the connection ended.
    pub(crate) answer: &'static str,
    /// Where `docs/PROTOCOL.md` says so.
    pub(crate) spec: &'static str,
    /// The counters of `/metrics` the case moves (without the `sente_lite_`
    /// prefix and `_total` suffix), and by how much ([`SOME`]: by at least
    /// one); every other error and close counter stays.
    pub(crate) counted: &'static [(&'static str, u64)],
    /// What it does.
    pub(crate) run: Run,
}

/// What a case may use: the server.
pub(crate) struct Target<'a> {
    /// `127.0.0.1:PORT`.
    pub(crate) addr: &'a str,
    /// The server process (for its counters).
    pub(crate) server: &'a ServerProcess,
}

impl Case {
    /// Runs the case; returns what the server answered, in the form of
    /// [`Case::answer`].
    pub(crate) async fn observe(&self, target: &Target<'_>) -> String {
        let before_end = count_before_open(self.answer);
        match &self.run {
            Run::Text(text) => converse(target.addr, None, &[Frame::text(*text)], before_end).await,
            Run::Binary(bytes) => {
                converse(
                    target.addr,
                    Some(POSTCARD),
                    &[Frame::binary(bytes())],
                    before_end,
                )
                .await
            }
            Run::Frames(frames) => converse(target.addr, None, &frames(), before_end).await,
            Run::Http(request) => http_status(target.addr, &request(target.addr)).await,
            Run::Custom(run) => run(target).await,
        }
    }

    /// What is sent, for the table.
    pub(crate) fn sent(&self) -> String {
        match &self.run {
            Run::Text(text) => format!("`{text}`"),
            Run::Binary(bytes) => {
                let hex: Vec<String> = bytes().iter().map(|b| format!("{b:02x}")).collect();
                format!("{} (`{}`)", self.sent, hex.join(" "))
            }
            Run::Frames(_) | Run::Http(_) | Run::Custom(_) => self.sent.to_owned(),
        }
    }
}

/// The status of the answer to `request`, sent on a new connection.
async fn http_status(addr: &str, request: &str) -> String {
    let mut ws = RawWs::connect(addr).await;
    ws.write(request.as_bytes()).await;
    let head = ws.http_head().await;
    match head.get(9..12) {
        Some(status) if head.starts_with("HTTP/1.1 ") => format!("HTTP {status}"),
        _ => format!("not an HTTP answer: {head:?}"),
    }
}

/// Every case, in the order they run.
pub(crate) fn all() -> Vec<Case> {
    [
        frames::json(),
        frames::postcard(),
        frames::server_only(),
        websocket::cases(),
        floods::cases(),
        channels::cases(),
        connections::cases(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The key of an event id: 32-bit FNV-1a of its bytes (section 2).
pub(crate) fn key_of(id: &str) -> u32 {
    id.bytes().fold(0x811c_9dc5, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

/// `value` as a postcard varint (LEB128).
pub(crate) fn varint(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = u8::try_from(value & 0x7f).expect("seven bits");
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// A postcard request header for `id` with `req_id` and no deadline.
pub(crate) fn request_header(id: &str, req_id: u64) -> Vec<u8> {
    let mut out = vec![1];
    out.extend(varint(u64::from(key_of(id))));
    out.extend(varint(req_id));
    out.push(0);
    out
}
