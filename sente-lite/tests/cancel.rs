//! Cancellation over the wire (extension `cancel`), in both encodings and
//! both directions: a requester that drops its request future tells the
//! peer, whose handler is dropped (its drop guards run, the work it spawned
//! sees its `Cancellation`), whose in-flight slot is free at once, and which
//! sends no reply; a request still waiting for a handler never runs.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sente_lite::protocol::{Control, EXTENSION_CANCEL};
use sente_lite::{Cancellation, Client, Codec, Ctx, Router, Server};
use serde::{Deserialize, Serialize};
use support::{Frame, Raw, until};
use tokio::sync::Notify;

/// Held until cancelled, unless `tag >= 100`: then answered at once.
#[sente_lite::event("cancel/hold", reply = u32)]
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Hold {
    tag: u32,
}

/// The server asks the client `cancel/slow` and stops waiting when told.
#[sente_lite::event("cancel/ask", reply = bool)]
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Ask {
    tag: u32,
}

/// A client's handler that never answers.
#[sente_lite::event("cancel/slow", reply = u32)]
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Slow {
    tag: u32,
}

/// What the handlers of one side saw.
#[derive(Default)]
struct Seen {
    started: Mutex<Vec<u32>>,
    /// Handlers dropped before they finished (their drop guard ran).
    dropped: Mutex<Vec<u32>>,
    /// Spawned watchers that saw the request's cancellation.
    watched: Mutex<Vec<u32>>,
    /// Tells `cancel/ask` to stop waiting for the client.
    go: Notify,
}

impl Seen {
    fn started(&self) -> Vec<u32> {
        self.started.lock().unwrap().clone()
    }
    fn dropped(&self) -> Vec<u32> {
        self.dropped.lock().unwrap().clone()
    }
    fn watched(&self) -> Vec<u32> {
        self.watched.lock().unwrap().clone()
    }

    /// Records the start of handler `tag`, and returns the guard that
    /// records its drop; a spawned watcher records its cancellation.
    fn start(self: &Arc<Self>, tag: u32) -> DropGuard {
        self.started.lock().unwrap().push(tag);
        let cancellation = Cancellation::current().expect("inside a request's handler");
        let seen = Arc::clone(self);
        tokio::spawn(async move {
            cancellation.cancelled().await;
            seen.watched.lock().unwrap().push(tag);
        });
        DropGuard {
            seen: Arc::clone(self),
            tag,
            finished: false,
        }
    }
}

struct DropGuard {
    seen: Arc<Seen>,
    tag: u32,
    finished: bool,
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.seen.dropped.lock().unwrap().push(self.tag);
        }
    }
}

#[sente_lite::handler]
async fn hold(ctx: Ctx, req: Hold) -> u32 {
    let seen = Arc::clone(ctx.state::<Arc<Seen>>().unwrap());
    let mut guard = seen.start(req.tag);
    if req.tag < 100 {
        std::future::pending::<()>().await;
    }
    guard.finished = true;
    req.tag
}

#[sente_lite::handler]
async fn ask(ctx: Ctx, req: Ask) -> bool {
    let seen = Arc::clone(ctx.state::<Arc<Seen>>().unwrap());
    let asked = Slow { tag: req.tag };
    tokio::select! {
        reply = ctx.request(&asked) => panic!("the client answered {reply:?}"),
        () = seen.go.notified() => true,
    }
}

#[sente_lite::handler]
async fn slow(ctx: Ctx, req: Slow) -> u32 {
    let seen = Arc::clone(ctx.state::<Arc<Seen>>().unwrap());
    let _guard = seen.start(req.tag);
    std::future::pending::<()>().await;
    req.tag
}

async fn server(
    seen: &Arc<Seen>,
    limits: impl FnOnce(&mut sente_lite::server::ServerConfig),
) -> Server {
    Server::builder()
        .router(Router::new().handler(hold).handler(ask))
        .state(Arc::clone(seen))
        .configure(|config| limits(config))
        .bind("127.0.0.1:0")
        .await
        .unwrap()
}

async fn client(server: &Server, codec: Codec, seen: &Arc<Seen>) -> Client {
    Client::builder(server.ws_url())
        .codec(codec)
        .router(Router::new().handler(slow))
        .state(Arc::clone(seen))
        .connect()
        .await
        .unwrap()
}

/// Polls `request` until the handler `tag` started on `seen`'s side; the
/// request is in flight then, and its future is returned to be dropped.
async fn started<F: Future + Unpin>(request: &mut F, seen: &Seen, tag: u32)
where
    F::Output: std::fmt::Debug,
{
    tokio::select! {
        reply = request => panic!("answered before it was dropped: {reply:?}"),
        () = until("the handler started", || seen.started().contains(&tag)) => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_request_drops_the_servers_handler_and_frees_its_slot() {
    for codec in [Codec::Json, Codec::Postcard] {
        let seen = Arc::new(Seen::default());
        // One request in flight at a time: the next one is only accepted
        // once the cancelled one gave its place back.
        let server = server(&seen, |c| c.limits.max_in_flight_requests = 1).await;
        let client = client(&server, codec, &Arc::new(Seen::default())).await;

        let mut request = Box::pin(client.request(&Hold { tag: 1 }));
        started(&mut request, &seen, 1).await;
        drop(request);

        until("the handler was dropped", || seen.dropped() == [1]).await;
        until("its spawned work saw the cancellation", || {
            seen.watched() == [1]
        })
        .await;
        assert_eq!(server.stats().requests_cancelled, 1, "{codec:?}");
        // The slot is free: the next request runs and is answered.
        assert_eq!(client.request(&Hold { tag: 100 }).await.unwrap(), 100);
        assert_eq!(seen.started(), [1, 100]);
        assert_eq!(server.stats().late_replies, 0);
        assert_eq!(
            client.stats().late_replies,
            0,
            "no reply for the cancelled one"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_cancelled_in_the_waiting_line_never_runs() {
    for codec in [Codec::Json, Codec::Postcard] {
        let seen = Arc::new(Seen::default());
        // One handler at a time: the second request waits in line.
        let server = server(&seen, |c| c.limits.max_concurrent_handlers = 1).await;
        let client = client(&server, codec, &Arc::new(Seen::default())).await;

        let mut first = Box::pin(client.request(&Hold { tag: 1 }));
        started(&mut first, &seen, 1).await;
        let mut second = Box::pin(client.request(&Hold { tag: 2 }));
        // Sent, and waiting behind the first.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut second)
                .await
                .is_err()
        );
        drop(second);
        until("the waiting request was cancelled", || {
            server.stats().requests_cancelled == 1
        })
        .await;
        drop(first);
        until("the running one too", || {
            server.stats().requests_cancelled == 2
        })
        .await;

        // The handler slot is free, and the next request is the second to run.
        assert_eq!(client.request(&Hold { tag: 100 }).await.unwrap(), 100);
        assert_eq!(
            seen.started(),
            [1, 100],
            "{codec:?}: the cancelled one never ran"
        );
        assert_eq!(seen.dropped(), [1]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_server_drops_drops_the_clients_handler() {
    for codec in [Codec::Json, Codec::Postcard] {
        let on_server = Arc::new(Seen::default());
        let on_client = Arc::new(Seen::default());
        let server = server(&on_server, |_| {}).await;
        let client = client(&server, codec, &on_client).await;

        let mut asking = Box::pin(client.request(&Ask { tag: 7 }));
        started(&mut asking, &on_client, 7).await;
        // The server's handler stops waiting for the client and answers.
        on_server.go.notify_one();
        assert!(asking.await.unwrap());

        until("the client's handler was dropped", || {
            on_client.dropped() == [7]
        })
        .await;
        until("its spawned work saw the cancellation", || {
            on_client.watched() == [7]
        })
        .await;
        assert_eq!(client.stats().requests_cancelled, 1, "{codec:?}");
        assert_eq!(server.stats().late_replies, 0, "the client sent no reply");
    }
}

/// A raw client sees exactly which frames the server sends: no `sl/cancel`
/// unless it named the extension, and `sl/cancel` to its request id if it did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_sends_cancels_only_to_a_client_that_takes_them() {
    for codec in [Codec::Json, Codec::Postcard] {
        for takes_cancel in [false, true] {
            let seen = Arc::new(Seen::default());
            let server = server(&seen, |_| {}).await;
            let mut raw = Raw::connect(&server.ws_url(), "", codec).await;
            assert!(
                raw.handshake
                    .extensions
                    .iter()
                    .any(|e| e == EXTENSION_CANCEL)
            );
            if takes_cancel {
                raw.send(&Control::Extensions(vec![
                    "some-future-extension".into(),
                    EXTENSION_CANCEL.into(),
                ]))
                .await;
            }
            let ask_id = raw.req_id();
            raw.send_message(
                codec
                    .encode_request(ask_id, Some(5_000), &Ask { tag: 1 })
                    .unwrap(),
            )
            .await;
            let Frame::Request { req_id: slow_id } = raw.next::<Hold>().await else {
                panic!("the server's request first");
            };
            seen.go.notify_one();
            if takes_cancel {
                let frame = raw.next::<Hold>().await;
                assert!(
                    matches!(frame, Frame::Control(Control::Cancel { req_id }) if req_id == slow_id),
                    "{codec:?}: {frame:?}"
                );
            }
            let Frame::Reply { req_id, result } = raw.next::<Hold>().await else {
                panic!("{codec:?}: the reply next, and no `sl/cancel` before it");
            };
            assert_eq!(req_id, ask_id);
            assert!(raw.payload::<bool>(&result.unwrap()));
        }
    }
}

/// What a cancel asks of the server, seen from outside: no reply for the
/// cancelled request, nothing at all for an id it does not hold, and a
/// malformed cancel answered `bad-frame`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancels_from_a_raw_client() {
    for codec in [Codec::Json, Codec::Postcard] {
        let seen = Arc::new(Seen::default());
        let server = server(&seen, |_| {}).await;
        let mut raw = Raw::connect(&server.ws_url(), "", codec).await;

        let held = raw.req_id();
        raw.send_message(codec.encode_request(held, None, &Hold { tag: 1 }).unwrap())
            .await;
        until("the handler started", || seen.started() == [1]).await;
        raw.send(&Control::Cancel { req_id: held }).await;
        // A second cancel of it, and one of an id never used: ignored.
        raw.send(&Control::Cancel { req_id: held }).await;
        raw.send(&Control::Cancel { req_id: 999_999 }).await;
        let next = raw.req_id();
        raw.send_message(
            codec
                .encode_request(next, None, &Hold { tag: 100 })
                .unwrap(),
        )
        .await;
        // The next frame answers the next request: nothing for the cancelled one.
        let Frame::Reply { req_id, result } = raw.next::<Hold>().await else {
            panic!("a reply");
        };
        assert_eq!((req_id, raw.payload::<u32>(&result.unwrap())), (next, 100));
        until("dropped", || seen.dropped() == [1]).await;
        assert_eq!(server.stats().requests_cancelled, 1);

        let malformed = match codec {
            Codec::Json => sente_lite::Message::text(r#"["sl/cancel","7"]"#),
            Codec::Postcard => sente_lite::Message::binary(vec![0x0f]),
        };
        raw.send_message(malformed).await;
        let Frame::Control(Control::Error(error)) = raw.next::<Hold>().await else {
            panic!("an `sl/error`");
        };
        assert_eq!(error.code, "bad-frame", "{codec:?}");
        assert_eq!(server.stats().errors.bad_frame, 1);
    }
}
