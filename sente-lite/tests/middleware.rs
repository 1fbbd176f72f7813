//! Handler middleware seen by real clients: a namespace refused to all but
//! one user (requests and one-way events alike), a timeout that drops a slow
//! handler, a per-connection limit, and a log around everything that sees
//! every outcome, in the documented order.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sente_lite::middleware::{self, Call, Middleware as _, Next};
use sente_lite::protocol::Control;
use sente_lite::{Client, Codec, ConnId, Ctx, ErrorReply, RequestError, Router, Server};
use serde::{Deserialize, Serialize};
use support::{Frame, Raw};

#[sente_lite::event("mw/echo", reply = String)]
#[derive(Debug, Serialize, Deserialize)]
struct Echo(String);

#[sente_lite::event("mw/slow", reply = ())]
#[derive(Debug, Serialize, Deserialize)]
struct Slow;

#[sente_lite::event("mw/fail", reply = ())]
#[derive(Debug, Serialize, Deserialize)]
struct Fail;

#[sente_lite::event("mw/boom", reply = ())]
#[derive(Debug, Serialize, Deserialize)]
struct Boom;

#[sente_lite::event("admin.mw/purge", reply = u32)]
#[derive(Debug, Serialize, Deserialize)]
struct Purge;

#[sente_lite::event("admin.mw/wipe")]
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Wipe;

/// What happened on the server.
#[derive(Default)]
struct Seen {
    /// `event outcome`, as the outermost layer saw each call.
    log: Mutex<Vec<String>>,
    /// Handlers that ran (started).
    ran: Mutex<Vec<&'static str>>,
    /// Handlers dropped before they finished.
    dropped: Mutex<Vec<&'static str>>,
}

fn seen(ctx: &Ctx) -> Arc<Seen> {
    Arc::clone(ctx.state::<Arc<Seen>>().unwrap())
}

#[sente_lite::handler]
async fn echo(ctx: Ctx, req: Echo) -> String {
    seen(&ctx).ran.lock().unwrap().push("mw/echo");
    req.0
}

struct MarkDropped(Arc<Seen>, bool);

impl Drop for MarkDropped {
    fn drop(&mut self) {
        if !self.1 {
            self.0.dropped.lock().unwrap().push("mw/slow");
        }
    }
}

#[sente_lite::handler]
async fn slow(ctx: Ctx, _req: Slow) {
    let seen = seen(&ctx);
    seen.ran.lock().unwrap().push("mw/slow");
    let mut mark = MarkDropped(seen, false);
    tokio::time::sleep(Duration::from_secs(30)).await;
    mark.1 = true;
}

#[sente_lite::handler]
async fn fail(_req: Fail) -> Result<(), ErrorReply> {
    Err(ErrorReply::new("mw/nope", "this one always fails"))
}

#[sente_lite::handler]
async fn boom(_req: Boom) {
    panic!("a handler that panics");
}

#[sente_lite::handler]
async fn purge(ctx: Ctx, _req: Purge) -> u32 {
    seen(&ctx).ran.lock().unwrap().push("admin.mw/purge");
    7
}

#[sente_lite::handler]
async fn wipe(ctx: Ctx, _req: Wipe) {
    seen(&ctx).ran.lock().unwrap().push("admin.mw/wipe");
}

fn router(seen: &Arc<Seen>) -> Router {
    let counts: Arc<Mutex<HashMap<ConnId, u32>>> = Arc::default();
    let log = Arc::clone(seen);
    Router::new()
        .handler(echo)
        .handler(slow)
        .handler(fail)
        .handler(boom)
        .handler(purge)
        .handler(wipe)
        // Innermost: three echoes per connection.
        .layer(
            middleware::from_fn(move |call: Call, next: Next| {
                let counts = Arc::clone(&counts);
                async move {
                    let n = {
                        let mut counts = counts.lock().unwrap();
                        let n = counts.entry(call.ctx().conn_id()).or_default();
                        *n += 1;
                        *n
                    };
                    if n > 3 {
                        return Err(ErrorReply::new(
                            "rate-limited",
                            "three echoes per connection",
                        ));
                    }
                    next.run().await
                }
            })
            .only(|event| event == "mw/echo"),
        )
        .layer(
            middleware::from_fn(|call: Call, next: Next| async move {
                match tokio::time::timeout(Duration::from_millis(100), next.run()).await {
                    Ok(finished) => finished,
                    Err(_) => Err(ErrorReply::new(
                        "timeout",
                        format!("`{}` took too long", call.event()),
                    )),
                }
            })
            .only(|event| event == "mw/slow"),
        )
        .layer(
            middleware::from_fn(|call: Call, next: Next| async move {
                if call.ctx().user_id().is_none_or(|user| user.0 != "root") {
                    return Err(ErrorReply::new("forbidden", "administrators only"));
                }
                next.run().await
            })
            .only(|event| event.starts_with("admin.mw/")),
        )
        // Outermost: sees every call and how it ended, refusals included.
        .layer(middleware::from_fn(move |call: Call, next: Next| {
            let log = Arc::clone(&log);
            async move {
                let result = next.run().await;
                let line = match &result {
                    Ok(finished) => format!("{} {:?}", call.event(), finished.outcome()),
                    Err(refusal) => format!("{} refused {}", call.event(), refusal.code),
                };
                log.log.lock().unwrap().push(line);
                result
            }
        }))
}

/// A server with the router's middleware; users come from `?user=`.
async fn server() -> (Arc<Seen>, Server) {
    let seen = Arc::new(Seen::default());
    let server = Server::builder()
        .router(router(&seen))
        .state(Arc::clone(&seen))
        .auth(|request| async move { Ok(request.query("user").map(Into::into)) })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    (seen, server)
}

async fn client(server: &Server, user: &str) -> Client {
    Client::builder(format!("{}?user={user}", server.ws_url()))
        .connect()
        .await
        .unwrap()
}

fn code(result: Result<impl std::fmt::Debug, RequestError>) -> String {
    match result {
        Err(RequestError::Remote(e)) => e.code.into_owned(),
        other => panic!("not a remote error: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn middleware_refuses_limits_times_out_and_logs() {
    let (seen, server) = server().await;
    let (ada, root) = (client(&server, "ada").await, client(&server, "root").await);

    for i in 0..3 {
        assert_eq!(
            ada.request(&Echo(format!("e{i}"))).await.unwrap(),
            format!("e{i}")
        );
    }
    assert_eq!(code(ada.request(&Echo("e3".into())).await), "rate-limited");
    assert_eq!(
        root.request(&Echo("r".into())).await.unwrap(),
        "r",
        "per connection"
    );

    assert_eq!(code(ada.request(&Purge).await), "forbidden");
    assert_eq!(root.request(&Purge).await.unwrap(), 7);

    assert_eq!(code(ada.request(&Slow).await), "timeout");
    support::until("the slow handler was dropped", || {
        *seen.dropped.lock().unwrap() == ["mw/slow"]
    })
    .await;

    assert_eq!(code(ada.request(&Fail).await), "mw/nope");
    assert_eq!(code(ada.request(&Boom).await), "internal");

    assert_eq!(
        *seen.ran.lock().unwrap(),
        [
            "mw/echo",
            "mw/echo",
            "mw/echo",
            "mw/echo",
            "admin.mw/purge",
            "mw/slow"
        ],
        "refused calls never reach their handler"
    );
    assert_eq!(
        *seen.log.lock().unwrap(),
        [
            "mw/echo Ok",
            "mw/echo Ok",
            "mw/echo Ok",
            "mw/echo refused rate-limited",
            "mw/echo Ok",
            "admin.mw/purge refused forbidden",
            "admin.mw/purge Ok",
            "mw/slow refused timeout",
            "mw/fail Error(\"mw/nope\")",
            "mw/boom Panicked",
        ]
    );
}

/// A one-way event refused by a middleware: the peer gets `sl/error` with the
/// refusal, in both encodings, and the handler does not run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_one_way_event_is_answered_with_sl_error() {
    let (seen, server) = server().await;
    for codec in [Codec::Json, Codec::Postcard] {
        let mut raw = Raw::connect(&server.ws_url(), "?user=ada", codec).await;
        raw.send_message(codec.encode_event(&Wipe).unwrap()).await;
        let Frame::Control(Control::Error(error)) = raw.next::<Wipe>().await else {
            panic!("an `sl/error`");
        };
        assert_eq!(
            (error.code.as_ref(), error.message.as_str()),
            ("forbidden", "administrators only")
        );
        let mut root = Raw::connect(&server.ws_url(), "?user=root", codec).await;
        root.send_message(codec.encode_event(&Wipe).unwrap()).await;
        support::until("root's wipe ran", || {
            seen.ran
                .lock()
                .unwrap()
                .iter()
                .filter(|e| **e == "admin.mw/wipe")
                .count()
                == usize::from(codec == Codec::Postcard) + 1
        })
        .await;
    }
}
