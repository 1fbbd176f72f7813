//! A collaborative editor: several pages edit one shared text at once, and
//! every copy converges to the same document. The text is a CRDT: a Yjs
//! `Y.Text` in each page, a `yrs` document (the Rust port of Yjs, which
//! reads and writes the same updates) on the server, which keeps the
//! authoritative copy in memory. Each page shows who else is editing (the
//! channel's presence) and where their carets are; a page that loses its
//! connection, or is put offline with its button, keeps editing, and its
//! edits merge with everyone else's when it is back.
//!
//! The events, all on the channel `editor/doc`:
//!
//! - `editor/sync` (request): a page sends its state vector, the server
//!   answers with the update the page lacks, its own state vector (from
//!   which the page computes what the server lacks and sends it), and the
//!   other editors' carets. A page syncs on every (re)connection.
//! - `editor/update` (request): a page's own changes, a Yjs update in the v1
//!   encoding. The server applies it and passes it on (`editor/changed`) to
//!   every other page. A page has one update in flight at a time, so its
//!   updates reach the server in order.
//! - `editor/cursor` (one-way): a page's caret or selection, as two Yjs
//!   relative positions, passed on as `editor/peer-cursor`.
//! - `editor/document` (request): the server's copy, text and update.
//!
//! Binary fields travel as base64 in JSON (what pages speak) and as raw
//! bytes in postcard.
//!
//! Bounds: an update is at most what a message holds (1 MiB); the document,
//! measured as the size of the update that rebuilds it, is at most
//! `--max-doc-bytes` (512 KiB by default). An update that would make it
//! larger is refused with `editor/too-large` (the page then drops its unsaved
//! change and reloads the server's copy); an update yrs cannot decode or
//! apply with `editor/bad-update`; one that follows changes the server never
//! got with `editor/out-of-order`. None of them changes the document.
//!
//! Run with `cargo run -p sente-lite-examples --example editor` (defaults:
//! `127.0.0.1:3002`; `-- --addr 127.0.0.1:4002` to change) and open
//! `http://127.0.0.1:3002/` in several windows (`?name=ada` names the editor;
//! without it the page picks a name). The page, its script and Yjs
//! (`editor_page/vendor/yjs.js`, bundled by `js/scripts/bundle-yjs.js`) are
//! served from the binary. `js/test/editor.test.js` drives three pages in
//! headless Chromium, with interleaved and offline edits, and compares the
//! final documents byte for byte.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clap::Parser;
use sente_lite::server::{ChannelOptions, Presence, Rejection, Shutdown};
use sente_lite::{Ctx, ErrorReply, Router, Server};
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::{self, error::RecvError};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, GetString, ReadTxn, StateVector, Transact, Update};

/// The editor server.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3002")]
    addr: String,
    /// The largest document, in bytes of its encoded state.
    #[arg(long, default_value_t = 512 * 1024)]
    max_doc_bytes: usize,
}

/// The channel every page subscribes to.
const CHANNEL: &str = "editor/doc";
/// The name of the shared text in the document (`doc.getText("text")`).
const TEXT: &str = "text";
/// The longest encoded relative position a caret may use.
const MAX_POSITION_BYTES: usize = 64;

/// Bytes on the wire: base64 text in human-readable encodings (JSON, what
/// pages speak), raw bytes in binary ones (postcard).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Bytes(Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&STANDARD.encode(&self.0))
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(BytesVisitor)
        } else {
            deserializer.deserialize_byte_buf(BytesVisitor)
        }
    }
}

impl schemars::JsonSchema for Bytes {
    fn schema_name() -> Cow<'static, str> {
        "Base64".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "contentEncoding": "base64" })
    }
}

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Bytes;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("bytes, as base64 text in JSON")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Bytes, E> {
        STANDARD
            .decode(text)
            .map(Bytes)
            .map_err(|e| E::custom(format!("not base64: {e}")))
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Bytes, E> {
        Ok(Bytes(bytes.to_vec()))
    }

    fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<Bytes, E> {
        Ok(Bytes(bytes))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(byte) = seq.next_element()? {
            bytes.push(byte);
        }
        Ok(Bytes(bytes))
    }
}

/// Asks for what the server has and the page lacks.
#[sente_lite::event("editor/sync", reply = Synced)]
#[derive(Debug, Serialize, Deserialize)]
struct SyncState {
    /// The page's state vector (`Y.encodeStateVector`).
    state_vector: Bytes,
}

/// The answer to [`SyncState`].
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
struct Synced {
    /// What the page lacks: a Yjs update (v1).
    update: Bytes,
    /// The server's state vector: the page sends what is not in it.
    state_vector: Bytes,
    /// The document's size, in bytes of its encoded state.
    doc_bytes: u64,
    /// The largest the document may grow.
    max_doc_bytes: u64,
    /// The other editors' carets.
    cursors: Vec<PeerCursor>,
}

/// A page's own changes, applied by the server and passed on to the others.
#[sente_lite::event("editor/update", reply = Saved)]
#[derive(Debug, Serialize, Deserialize)]
struct Edit {
    /// A Yjs update (v1).
    update: Bytes,
}

/// The answer to [`Edit`]: the update is in the server's document.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
struct Saved {
    /// The document's size now, in bytes of its encoded state.
    doc_bytes: u64,
}

/// Another page's changes, published on the channel.
#[sente_lite::event("editor/changed")]
#[derive(Debug, Serialize, Deserialize)]
struct Changed {
    /// A Yjs update (v1), as the server applied it.
    update: Bytes,
}

/// Where a page's caret is: the selection's anchor and head, each a Yjs
/// relative position (`Y.encodeRelativePosition`); equal for a caret.
#[sente_lite::event("editor/cursor")]
#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    /// Where the selection starts.
    anchor: Bytes,
    /// Where it ends: the caret.
    head: Bytes,
}

/// Another editor's caret, published on the channel.
#[sente_lite::event("editor/peer-cursor")]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PeerCursor {
    /// Who it is (the user the connection signed in as).
    user: String,
    /// Where the selection starts.
    anchor: Bytes,
    /// Where it ends: the caret.
    head: Bytes,
}

/// Asks for the server's copy of the document.
#[sente_lite::event("editor/document", reply = DocumentCopy)]
#[derive(Debug, Serialize, Deserialize)]
struct GetDocument;

/// The server's copy of the document.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
struct DocumentCopy {
    /// The text.
    text: String,
    /// The update that rebuilds the document (Yjs v1).
    update: Bytes,
    /// Its state vector.
    state_vector: Bytes,
}

fn refusal(code: &'static str, message: impl Into<String>) -> ErrorReply {
    ErrorReply::new(code, message)
}

/// The count a Yjs update or state vector starts with (a LEB128 number),
/// checked against the bytes that follow it, each entry taking at least one:
/// a few bytes cannot make the decoder reserve room for billions of entries.
fn check_leading_count(bytes: &[u8], code: &'static str) -> Result<(), ErrorReply> {
    let mut count: u64 = 0;
    for (i, byte) in bytes.iter().take(10).enumerate() {
        count |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let rest = (bytes.len() - i - 1) as u64;
            return if count <= rest {
                Ok(())
            } else {
                Err(refusal(
                    code,
                    format!("it announces {count} entries in {rest} bytes"),
                ))
            };
        }
    }
    Err(refusal(code, "it does not start with a count"))
}

/// Decodes a Yjs update or state vector (v1), or refuses it with `code`.
/// yrs panics on some malformed input (a client id wider than 53 bits)
/// instead of returning an error; decoding touches nothing shared, so the
/// panic is caught here and becomes a refusal like any other.
fn decode<T: Decode>(bytes: &[u8], code: &'static str, what: &str) -> Result<T, ErrorReply> {
    check_leading_count(bytes, code)?;
    DECODING.with(|decoding| decoding.set(true));
    let decoded = std::panic::catch_unwind(|| T::decode_v1(bytes));
    DECODING.with(|decoding| decoding.set(false));
    match decoded {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(refusal(code, format!("not a Yjs {what}: {e}"))),
        Err(_) => Err(refusal(
            code,
            format!("not a Yjs {what}: it cannot be read"),
        )),
    }
}

thread_local! {
    /// Whether this thread is in [`decode`], whose panics are refusals.
    static DECODING: Cell<bool> = const { Cell::new(false) };
}

/// Keeps the panics [`decode`] catches out of the log (a peer could fill it
/// with their backtraces); every other panic is reported as before.
fn quiet_decoder_panics() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !DECODING.with(Cell::get) {
            report(info);
        }
    }));
}

fn decode_update(bytes: &[u8]) -> Result<Update, ErrorReply> {
    decode(bytes, "editor/bad-update", "update (v1 encoding)")
}

/// The authoritative copy of the shared document.
struct Document {
    doc: Doc,
    /// The size of the update that rebuilds it (changes waiting for ones
    /// they follow included).
    size: usize,
    /// The largest `size` may grow.
    max_size: usize,
}

impl Document {
    fn new(max_size: usize) -> Self {
        let doc = Doc::new();
        doc.get_or_insert_text(TEXT);
        let mut document = Self {
            doc,
            size: 0,
            max_size,
        };
        document.size = document.encoded().len();
        document
    }

    /// The update that rebuilds the whole document.
    fn encoded(&self) -> Vec<u8> {
        self.doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default())
    }

    fn text(&self) -> String {
        let text = self.doc.get_or_insert_text(TEXT);
        text.get_string(&self.doc.transact())
    }

    fn state_vector(&self) -> Vec<u8> {
        self.doc.transact().state_vector().encode_v1()
    }

    /// What a peer with state vector `theirs` lacks, and the server's state vector.
    fn diff(&self, theirs: &[u8]) -> Result<(Vec<u8>, Vec<u8>), ErrorReply> {
        let theirs: StateVector = decode(theirs, "editor/bad-state-vector", "state vector")?;
        let txn = self.doc.transact();
        Ok((txn.encode_diff_v1(&theirs), txn.state_vector().encode_v1()))
    }

    /// Applies a peer's update; returns the document's size after it.
    fn apply(&mut self, bytes: &[u8]) -> Result<usize, ErrorReply> {
        let too_large = || {
            refusal(
                "editor/too-large",
                format!(
                    "the document is limited to {} bytes: this change was not saved",
                    self.max_size
                ),
            )
        };
        if bytes.len() > self.max_size {
            return Err(too_large());
        }
        let update = decode_update(bytes)?;
        let ours = self.doc.transact().state_vector();
        if let Some((client, clock)) = update
            .state_vector_lower()
            .iter()
            .find(|(client, clock)| **clock > ours.get(client))
        {
            return Err(refusal(
                "editor/out-of-order",
                format!(
                    "the update starts at clock {clock} of client {client}, past the server's {}: sync first",
                    ours.get(client)
                ),
            ));
        }
        // Near the limit, the update is tried on a copy first: one that
        // deletes makes the document smaller, not larger.
        if self.size + bytes.len() > self.max_size && self.size_with(bytes)? > self.max_size {
            return Err(too_large());
        }
        self.doc
            .transact_mut()
            .apply_update(update)
            .map_err(|e| refusal("editor/bad-update", format!("yrs refused it: {e}")))?;
        self.size = self.encoded().len();
        Ok(self.size)
    }

    /// The document's size if `bytes` were applied, measured on a copy.
    fn size_with(&self, bytes: &[u8]) -> Result<usize, ErrorReply> {
        let copy = Doc::new();
        {
            let mut txn = copy.transact_mut();
            for update in [self.encoded().as_slice(), bytes] {
                txn.apply_update(decode_update(update)?)
                    .map_err(|e| refusal("editor/bad-update", format!("yrs refused it: {e}")))?;
            }
        }
        let size = copy
            .transact()
            .encode_state_as_update_v1(&StateVector::default())
            .len();
        Ok(size)
    }
}

/// The server's state: the document and the carets last seen, by user
/// (removed when the user goes offline).
struct Editor {
    document: Mutex<Document>,
    cursors: Mutex<HashMap<String, PeerCursor>>,
}

/// Locks `mutex`; what it guards stays consistent across a panic (no
/// update is half applied to it), so a poisoned lock is taken over.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn editor(ctx: &Ctx) -> Result<(&Editor, Server), ErrorReply> {
    let server = ctx
        .server()
        .ok_or_else(|| refusal("editor/no-server", "not on a server"))?;
    let editor = ctx
        .state::<Arc<Editor>>()
        .ok_or_else(|| refusal("editor/no-document", "the server holds no document"))?;
    Ok((editor, server))
}

/// Who the connection is: the user it signed in as.
fn user(ctx: &Ctx) -> String {
    ctx.user_id()
        .map_or_else(|| format!("conn-{}", ctx.conn_id()), |user| user.0.clone())
}

#[sente_lite::handler]
async fn sync_page(ctx: Ctx, req: SyncState) -> Result<Synced, ErrorReply> {
    let (editor, _) = editor(&ctx)?;
    let me = user(&ctx);
    let (update, state_vector, doc_bytes, max_doc_bytes) = {
        let document = lock(&editor.document);
        let (update, state_vector) = document.diff(&req.state_vector.0)?;
        (update, state_vector, document.size, document.max_size)
    };
    let cursors = lock(&editor.cursors)
        .values()
        .filter(|cursor| cursor.user != me)
        .cloned()
        .collect();
    Ok(Synced {
        update: Bytes(update),
        state_vector: Bytes(state_vector),
        doc_bytes: doc_bytes as u64,
        max_doc_bytes: max_doc_bytes as u64,
        cursors,
    })
}

#[sente_lite::handler]
async fn save_update(ctx: Ctx, edit: Edit) -> Result<Saved, ErrorReply> {
    let (editor, server) = editor(&ctx)?;
    let mut document = lock(&editor.document);
    let doc_bytes = document.apply(&edit.update.0)?;
    // Published under the lock, so that the channel carries the updates in
    // the order the document took them.
    let changed = Changed {
        update: edit.update,
    };
    server
        .broadcast_except(CHANNEL, &changed, ctx.conn_id())
        .map_err(|e| refusal("editor/unavailable", e.to_string()))?;
    Ok(Saved {
        doc_bytes: doc_bytes as u64,
    })
}

#[sente_lite::handler]
async fn pass_on_cursor(ctx: Ctx, cursor: Cursor) {
    let Ok((editor, server)) = editor(&ctx) else {
        return;
    };
    if cursor.anchor.0.len() > MAX_POSITION_BYTES || cursor.head.0.len() > MAX_POSITION_BYTES {
        tracing::warn!(conn_id = %ctx.conn_id(), "caret position too long: dropped");
        return;
    }
    let peer = PeerCursor {
        user: user(&ctx),
        anchor: cursor.anchor,
        head: cursor.head,
    };
    let _ = server.broadcast_except(CHANNEL, &peer, ctx.conn_id());
    lock(&editor.cursors).insert(peer.user.clone(), peer);
}

#[sente_lite::handler]
async fn copy_document(ctx: Ctx, _req: GetDocument) -> Result<DocumentCopy, ErrorReply> {
    let (editor, _) = editor(&ctx)?;
    let document = lock(&editor.document);
    Ok(DocumentCopy {
        text: document.text(),
        update: Bytes(document.encoded()),
        state_vector: Bytes(document.state_vector()),
    })
}

/// Forgets the carets of users who went offline.
async fn forget_carets(editor: Arc<Editor>, mut presence: broadcast::Receiver<Presence>) {
    loop {
        match presence.recv().await {
            Ok(Presence::Offline(user)) => {
                lock(&editor.cursors).remove(&user.0);
            }
            Ok(Presence::Online(_)) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    quiet_decoder_panics();
    const HTML: &str = "text/html; charset=utf-8";
    const JS: &str = "text/javascript; charset=utf-8";
    let state = Arc::new(Editor {
        document: Mutex::new(Document::new(args.max_doc_bytes)),
        cursors: Mutex::new(HashMap::new()),
    });
    let server = Server::builder()
        .router(
            Router::new()
                .handler(sync_page)
                .handler(save_update)
                .handler(pass_on_cursor)
                .handler(copy_document),
        )
        .state(Arc::clone(&state))
        .auth(|req| async move {
            match req.query("name") {
                Some(name) if !name.is_empty() && name.len() <= 32 => Ok(Some(name.into())),
                _ => Err(Rejection::unauthorized(
                    "an editor is named with ?name= (1 to 32 bytes)",
                )),
            }
        })
        .channel(CHANNEL, sente_lite::server::allow_all)
        .channel_options(
            CHANNEL,
            ChannelOptions {
                presence: true,
                ..ChannelOptions::default()
            },
        )
        .presence_info(|ctx, _channel| {
            ctx.user_id()
                .map(|user| serde_json::json!({ "name": user.0 }))
        })
        .page("/", HTML, include_str!("editor_page/index.html"))
        .page("/editor.js", JS, include_str!("editor_page/editor.js"))
        .page(
            "/vendor/yjs.js",
            JS,
            include_str!("editor_page/vendor/yjs.js"),
        )
        .page("/sente-lite.js", JS, sente_lite::JS_CLIENT)
        .bind(&args.addr)
        .await?;
    // The whole document travels in one sync reply, as base64 (4 bytes for 3).
    let max_message = server.config().limits.max_message_size;
    if args.max_doc_bytes / 3 * 4 + 64 * 1024 > max_message {
        return Err(format!(
            "--max-doc-bytes {} does not fit in a message of {max_message} bytes",
            args.max_doc_bytes
        )
        .into());
    }
    tracing::info!("editor listening at {}", server.ws_url());
    if let Some(addr) = server.local_addr() {
        tracing::info!("open http://{addr}/ in a browser");
    }
    tokio::spawn(forget_carets(state, server.presence()));
    server
        .shutdown_on_signal(Shutdown {
            deadline: Duration::from_secs(2),
            ..Shutdown::default()
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::Text;

    /// A page's copy: its own doc, and the updates its edits make.
    struct Page {
        doc: Doc,
    }

    impl Page {
        fn new() -> Self {
            Self { doc: Doc::new() }
        }

        /// Inserts `text` at `index` and returns the update it makes.
        fn insert(&self, index: u32, text: &str) -> Vec<u8> {
            let shared = self.doc.get_or_insert_text(TEXT);
            let mut txn = self.doc.transact_mut();
            shared.insert(&mut txn, index, text);
            txn.encode_update_v1()
        }

        /// Deletes `len` characters at `index` and returns the update.
        fn delete(&self, index: u32, len: u32) -> Vec<u8> {
            let shared = self.doc.get_or_insert_text(TEXT);
            let mut txn = self.doc.transact_mut();
            shared.remove_range(&mut txn, index, len);
            txn.encode_update_v1()
        }

        fn receive(&self, update: &[u8]) {
            self.doc
                .transact_mut()
                .apply_update(Update::decode_v1(update).unwrap())
                .unwrap();
        }

        fn text(&self) -> String {
            let shared = self.doc.get_or_insert_text(TEXT);
            shared.get_string(&self.doc.transact())
        }
    }

    fn code(result: Result<usize, ErrorReply>) -> String {
        result.unwrap_err().code.into_owned()
    }

    #[test]
    fn concurrent_edits_converge_through_the_server() {
        let mut server = Document::new(64 * 1024);
        let (ada, bob) = (Page::new(), Page::new());
        let a = ada.insert(0, "hello");
        server.apply(&a).unwrap();
        bob.receive(&a);
        // Both edit at once, then each gets the other's change.
        let a = ada.insert(5, " world");
        let b = bob.insert(0, ">> ");
        server.apply(&b).unwrap();
        server.apply(&a).unwrap();
        ada.receive(&b);
        bob.receive(&a);
        assert_eq!(ada.text(), ">> hello world");
        assert_eq!(bob.text(), ada.text());
        assert_eq!(server.text(), ada.text());
        // A page that starts late gets it all from one sync.
        let cy = Page::new();
        let (update, _) = server
            .diff(&cy.doc.transact().state_vector().encode_v1())
            .unwrap();
        cy.receive(&update);
        assert_eq!(cy.text(), ada.text());
    }

    #[test]
    fn malformed_updates_are_refused_and_change_nothing() {
        let mut server = Document::new(64 * 1024);
        let ada = Page::new();
        let good = ada.insert(0, "kept");
        server.apply(&good).unwrap();
        let before = server.encoded();
        assert_eq!(code(server.apply(b"")), "editor/bad-update");
        assert_eq!(code(server.apply(&[0xff; 12])), "editor/bad-update");
        // Four billion clients announced in five bytes.
        assert_eq!(
            code(server.apply(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0])),
            "editor/bad-update"
        );
        let next = ada.insert(4, " and more");
        assert_eq!(
            code(server.apply(&next[..next.len() / 2])),
            "editor/bad-update"
        );
        assert_eq!(server.encoded(), before);
        let error = server.diff(&[0x05, 0x01]).unwrap_err();
        assert_eq!(error.code, "editor/bad-state-vector");
        // A client id wider than 53 bits, on which yrs panics.
        let wide = [1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10, 1];
        assert_eq!(
            server.diff(&wide).unwrap_err().code,
            "editor/bad-state-vector"
        );
        server.apply(&next).unwrap();
        assert_eq!(server.text(), "kept and more");
    }

    #[test]
    fn mangled_updates_never_panic() {
        let ada = Page::new();
        let mut updates = vec![ada.insert(0, "the quick brown fox")];
        updates.push(ada.delete(4, 6));
        updates.push(ada.insert(4, "slow "));
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut refused = 0;
        for round in 0..3000 {
            let mut server = Document::new(64 * 1024);
            server.apply(&updates[0]).unwrap();
            let mut bytes = updates[1 + round % 2].clone();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let at = (seed as usize) % bytes.len();
            match round % 3 {
                0 => bytes[at] ^= 1 << ((seed >> 40) % 8),
                1 => bytes[at] = (seed >> 32) as u8,
                _ => bytes.truncate(at),
            }
            if server.apply(&bytes).is_err() {
                refused += 1;
            }
            // Whatever it took, the document still encodes and reads.
            let _ = server.text();
            assert!(Update::decode_v1(&server.encoded()).is_ok());
        }
        assert!(
            refused > 100,
            "only {refused} of 3000 mangled updates refused"
        );
    }

    #[test]
    fn an_update_that_skips_ahead_is_refused_until_what_it_follows_arrives() {
        let mut server = Document::new(64 * 1024);
        let ada = Page::new();
        let first = ada.insert(0, "one");
        let second = ada.insert(3, " two");
        assert_eq!(code(server.apply(&second)), "editor/out-of-order");
        assert_eq!(server.text(), "");
        server.apply(&first).unwrap();
        server.apply(&second).unwrap();
        assert_eq!(server.text(), "one two");
        // The same update again changes nothing.
        server.apply(&second).unwrap();
        assert_eq!(server.text(), "one two");
    }

    #[test]
    fn the_document_size_is_bounded_but_deleting_at_the_bound_works() {
        let mut server = Document::new(400);
        let ada = Page::new();
        let fill = ada.insert(0, &"x".repeat(300));
        let size = server.apply(&fill).unwrap();
        assert!(size <= 400);
        let before = server.encoded();
        let more = ada.insert(300, &"y".repeat(200));
        let error = server.apply(&more).unwrap_err();
        assert_eq!(error.code, "editor/too-large");
        assert!(error.message.contains("400 bytes"), "{}", error.message);
        assert_eq!(server.encoded(), before);
        // A fresh page (a new client) deletes most of it: accepted, and smaller.
        let bob = Page::new();
        bob.receive(&before);
        let cut = bob.delete(0, 290);
        let after = server.apply(&cut).unwrap();
        assert!(after < size, "{after} < {size}");
        assert_eq!(server.text(), "x".repeat(10));
    }

    #[test]
    fn bytes_are_base64_in_json() {
        let edit = Edit {
            update: Bytes(vec![0, 1, 2, 250, 255]),
        };
        let json = serde_json::to_string(&edit).unwrap();
        assert_eq!(json, r#"{"update":"AAEC+v8="}"#);
        let back: Edit = serde_json::from_str(&json).unwrap();
        assert_eq!(back.update, edit.update);
        assert!(serde_json::from_str::<Edit>(r#"{"update":"not base64!"}"#).is_err());
    }
}
