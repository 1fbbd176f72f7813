//! Dispatch through a built router, as a connection does it: decode a frame,
//! dispatch it, and check the frame that goes back and the connection's queue.

use std::sync::{Arc, LazyLock};

use sente_lite::protocol::codes;
use sente_lite::schema::{Description, Difference};
use sente_lite::{
    Codec, ConnId, Ctx, Dispatched, ErrorReply, EventKey, EventRef, Inbound, Message, Outbound,
    OutboundReceiver, Outcome, Payload, ProtocolError, RouteTable, Router, RouterError,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

#[sente_lite::event("test/note")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Note {
    text: String,
}

#[sente_lite::event("test/echo")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Echoed {
    text: String,
}

#[sente_lite::event("test/add", reply = Sum)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
struct Sum(i64);

#[sente_lite::event("test/wait", reply = ())]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Wait;

#[sente_lite::event("test/boom", reply = ())]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Boom;

#[sente_lite::event("test/fail")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Fail;

/// Echoes a note back to the sender through the connection's queue.
#[sente_lite::handler]
async fn on_note(ctx: Ctx, note: Note) {
    ctx.send(&Echoed { text: note.text })
        .expect("queue has room");
}

#[sente_lite::handler]
async fn on_add(req: Add) -> Result<Sum, ErrorReply> {
    req.a
        .checked_add(req.b)
        .map(Sum)
        .ok_or_else(|| ErrorReply::new("math/overflow", "the sum overflows i64"))
}

static GATE: LazyLock<Arc<Notify>> = LazyLock::new(|| Arc::new(Notify::new()));

#[sente_lite::handler]
async fn on_wait(_req: Wait) {
    GATE.notified().await;
}

#[sente_lite::handler]
async fn on_boom(_req: Boom) {
    panic!("handler bug");
}

#[sente_lite::handler]
async fn on_fail(_ev: Fail) -> Result<(), ErrorReply> {
    Err(ErrorReply::new("test/failed", "it failed"))
}

#[sente_lite::handler]
async fn on_add_again(req: Add) -> Sum {
    Sum(req.a + req.b)
}

fn routes() -> RouteTable {
    Router::new()
        .handler(on_note)
        .handler(on_add)
        .handler(on_wait)
        .handler(on_boom)
        .handler(on_fail)
        .build()
        .expect("routes build")
}

fn conn(codec: Codec, max_in_flight: usize) -> (Ctx, OutboundReceiver) {
    let (outbound, queue) = Outbound::channel(ConnId(9), 8);
    (
        Ctx::new(
            ConnId(9),
            Some("ada".into()),
            codec,
            outbound,
            max_in_flight,
        ),
        queue,
    )
}

/// Decodes `frame` and starts its handler.
fn start(
    routes: &RouteTable,
    ctx: &Ctx,
    frame: &Message,
) -> Result<sente_lite::DispatchFuture, ProtocolError> {
    match Codec::decode(frame)? {
        Inbound::Event { event, payload } => routes.dispatch(ctx, &event, payload, None),
        Inbound::Request {
            event,
            req_id,
            payload,
            ..
        } => routes.dispatch(ctx, &event, payload, Some(req_id)),
        other => panic!("not an event: {other:?}"),
    }
}

/// Decodes `frame`, dispatches it and waits for the handler.
async fn feed(
    routes: &RouteTable,
    ctx: &Ctx,
    frame: &Message,
) -> Result<Dispatched, ProtocolError> {
    Ok(start(routes, ctx, frame)?.await)
}

fn reply_of(message: &Message) -> (u64, Result<Payload<'_>, ErrorReply>) {
    match Codec::decode(message).expect("reply decodes") {
        Inbound::Reply { req_id, result } => (req_id, result),
        other => panic!("not a reply: {other:?}"),
    }
}

#[tokio::test]
async fn one_way_event_runs_its_handler_in_both_codecs() {
    let routes = routes();
    for codec in [Codec::Json, Codec::Postcard] {
        let (ctx, mut queue) = conn(codec, 4);
        let frame = codec.encode_event(&Note { text: "hi".into() }).unwrap();
        let done = feed(&routes, &ctx, &frame).await.unwrap();
        assert_eq!(done.outcome, Outcome::Ok);
        assert!(done.message.is_none(), "a one-way event gets no reply");
        let sent = queue.try_recv().expect("the handler sent an event back");
        match Codec::decode(&sent).unwrap() {
            Inbound::Event { event, payload } => {
                assert!(event.is("test/echo", EventKey::of("test/echo")));
                assert_eq!(payload.decode::<Echoed>("test/echo").unwrap().text, "hi");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn requests_get_their_reply_or_their_error_in_both_codecs() {
    let routes = routes();
    for codec in [Codec::Json, Codec::Postcard] {
        let (ctx, _queue) = conn(codec, 4);
        let frame = codec
            .encode_request(5, Some(1000), &Add { a: 2, b: 3 })
            .unwrap();
        let message = feed(&routes, &ctx, &frame).await.unwrap().message.unwrap();
        let (req_id, result) = reply_of(&message);
        assert_eq!(req_id, 5);
        assert_eq!(result.unwrap().decode::<Sum>("reply").unwrap(), Sum(5));

        let frame = codec
            .encode_request(6, None, &Add { a: i64::MAX, b: 1 })
            .unwrap();
        let err = feed(&routes, &ctx, &frame).await.unwrap();
        assert_eq!(err.outcome, Outcome::Error("math/overflow".into()));
        let message = err.message.unwrap();
        let (req_id, result) = reply_of(&message);
        assert_eq!(req_id, 6);
        assert_eq!(result.unwrap_err().code, "math/overflow");
    }
}

#[tokio::test]
async fn unknown_events_are_bad_events() {
    let routes = routes();
    let (ctx, _queue) = conn(Codec::Json, 4);
    let err = feed(&routes, &ctx, &Message::text(r#"["test/nope",{}]"#))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ProtocolError::UnknownEvent {
            event: "test/nope".into()
        }
    );
    assert_eq!(err.code(), codes::BAD_EVENT);
    let unknown_key = EventRef::Key(EventKey::from_raw(42));
    let err = routes
        .dispatch(&ctx, &unknown_key, Payload::Postcard(&[]), None)
        .err()
        .unwrap();
    assert_eq!(err.code(), codes::BAD_EVENT);
    // The answer the peer gets names the event.
    let told = RouteTable::error_message(Codec::Json, None, &err);
    assert_eq!(
        told.to_text().unwrap(),
        r#"["sl/error",{"code":"bad-event","message":"unknown event `key 0x0000002a`: no handler is routed for it"}]"#
    );
}

#[tokio::test]
async fn requests_and_events_must_come_as_what_they_are() {
    let routes = routes();
    let (ctx, _queue) = conn(Codec::Json, 4);
    let err = feed(
        &routes,
        &ctx,
        &Message::text(r#"["test/add",{"a":1,"b":2}]"#),
    )
    .await
    .unwrap_err();
    assert_eq!(err, ProtocolError::ExpectedRequest { event: "test/add" });
    let err = feed(
        &routes,
        &ctx,
        &Message::text(r#"["test/note",{"text":"x"},3]"#),
    )
    .await
    .unwrap_err();
    assert_eq!(err, ProtocolError::NotARequest { event: "test/note" });
    assert_eq!(err.code(), codes::BAD_EVENT);
}

#[tokio::test]
async fn a_payload_of_the_wrong_shape_is_a_bad_payload() {
    let routes = routes();
    let (ctx, _queue) = conn(Codec::Json, 4);
    let err = feed(
        &routes,
        &ctx,
        &Message::text(r#"["test/add",{"a":"one","b":2},1]"#),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            ProtocolError::BadPayload {
                event: "test/add",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.code(), codes::BAD_PAYLOAD);
    // Trailing bytes after a postcard payload are rejected too.
    let mut bytes = Codec::Postcard
        .encode_event(&Note { text: "x".into() })
        .unwrap()
        .into_data()
        .to_vec();
    bytes.push(0);
    let err = feed(&routes, &ctx, &Message::binary(bytes))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProtocolError::BadPayload {
                event: "test/note",
                ..
            }
        ),
        "{err:?}"
    );
}

/// Releases `GATE` until every task has finished.
async fn release(tasks: &[&tokio::task::JoinHandle<Dispatched>]) {
    while tasks.iter().any(|t| !t.is_finished()) {
        GATE.notify_waiters();
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_request_id_in_flight_cannot_be_reused_and_the_bound_holds() {
    let routes = routes();
    let (ctx, _queue) = conn(Codec::Json, 2);
    let wait = |id| Codec::Json.encode_request(id, None, &Wait).unwrap();
    let first = tokio::spawn(start(&routes, &ctx, &wait(1)).unwrap());
    let err = feed(&routes, &ctx, &wait(1)).await.unwrap_err();
    assert_eq!(err, ProtocolError::DuplicateRequest { req_id: 1 });
    let told = RouteTable::error_message(Codec::Json, Some(1), &err);
    assert_eq!(
        told.to_text().unwrap(),
        r#"["sl/err",1,{"code":"duplicate-request","message":"request id 1 is already in flight"}]"#
    );

    let second = tokio::spawn(start(&routes, &ctx, &wait(2)).unwrap());
    let err = feed(&routes, &ctx, &wait(3)).await.unwrap_err();
    assert_eq!(err, ProtocolError::TooManyRequests { max: 2 });

    // Once both finish, their ids are free again.
    release(&[&first, &second]).await;
    assert_eq!(first.await.unwrap().outcome, Outcome::Ok);
    assert_eq!(second.await.unwrap().outcome, Outcome::Ok);
    let again = tokio::spawn(start(&routes, &ctx, &wait(1)).unwrap());
    release(&[&again]).await;
    assert_eq!(again.await.unwrap().outcome, Outcome::Ok);
}

#[tokio::test]
async fn a_panicking_handler_answers_internal_and_the_connection_goes_on() {
    let routes = routes();
    for codec in [Codec::Json, Codec::Postcard] {
        let (ctx, _queue) = conn(codec, 4);
        let done = feed(
            &routes,
            &ctx,
            &codec.encode_request(1, None, &Boom).unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(done.outcome, Outcome::Panicked);
        let message = done.message.unwrap();
        let (req_id, result) = reply_of(&message);
        assert_eq!(req_id, 1);
        assert_eq!(result.unwrap_err().code, codes::INTERNAL);
        // The same request id can be used again and other routes still work.
        let frame = codec.encode_request(1, None, &Add { a: 1, b: 1 }).unwrap();
        assert_eq!(
            feed(&routes, &ctx, &frame).await.unwrap().outcome,
            Outcome::Ok
        );
    }
}

#[tokio::test]
async fn a_failing_one_way_handler_tells_the_peer_with_an_error_frame() {
    let routes = routes();
    let (ctx, _queue) = conn(Codec::Json, 4);
    let done = feed(&routes, &ctx, &Message::text(r#"["test/fail",null]"#))
        .await
        .unwrap();
    assert_eq!(done.outcome, Outcome::Error("test/failed".into()));
    assert_eq!(
        done.message.unwrap().to_text().unwrap(),
        r#"["sl/error",{"code":"test/failed","message":"it failed"}]"#
    );
}

#[test]
fn routing_an_event_twice_fails_at_build_naming_both_handlers() {
    let err = Router::new()
        .handler(on_add)
        .handler(on_note)
        .handler(on_add_again)
        .build()
        .unwrap_err();
    assert_eq!(
        err,
        RouterError::DuplicateRoute {
            id: "test/add",
            first: "router::on_add".into(),
            second: "router::on_add_again".into(),
        }
    );
    assert!(err.to_string().contains("routed twice"), "{err}");
}

#[test]
fn the_registry_lists_this_programs_events_with_a_stable_schema_hash() {
    use sente_lite::registry;
    let ids: Vec<&str> = registry::events().iter().map(|r| r.id).collect();
    for id in [
        "test/add",
        "test/boom",
        "test/echo",
        "test/fail",
        "test/note",
        "test/wait",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    let add = registry::by_id("test/add").unwrap();
    assert_eq!(add.type_name, "Add");
    assert_eq!(add.reply_type, Some("Sum"));
    assert_eq!(add.module_path, "router");
    assert_eq!(add.key, EventKey::of("test/add"));
    registry::check().expect("no clash");
    // The hash depends on the application's shapes only: the description
    // holds no library event, recomputing the hash from it agrees, and
    // changing a reply's shape changes it.
    let telemetry = registry::by_id("telemetry/batch").expect("the library's event is registered");
    assert!(telemetry.is_library());
    assert!(!add.is_library());
    let ours = Description::of_this_program();
    assert!(ours.event("telemetry/batch").is_none());
    assert_eq!(registry::schema_hash(), ours.hash());
    assert_eq!(format!("{:016x}", ours.hash()), ours.schema_hash);
    let mut changed = ours.clone();
    let add_shape = changed
        .events
        .iter_mut()
        .find(|e| e.id == "test/add")
        .unwrap();
    add_shape.reply = Some(serde_json::json!({"type": "integer"}));
    assert_ne!(ours.hash(), changed.hash());
    assert_eq!(
        ours.differences(&changed),
        [Difference::Shape {
            id: "test/add".to_owned(),
            payload: false,
            reply: true
        }]
    );
}
