//! A tour of the wire: events, a router, and the frames both codecs produce.
//!
//! Run with `cargo run -p sente-lite-examples --example wire`. It declares a
//! one-way event and a request, routes them, feeds the router JSON and postcard
//! frames (good and bad ones) as a connection would, and prints every frame that
//! goes back, so you can see the protocol of `docs/PROTOCOL.md` at work.

use sente_lite::{Codec, ConnId, Ctx, ErrorReply, Inbound, Message, Outbound, Router, registry};
use serde::{Deserialize, Serialize};

/// Post a message to a room.
#[sente_lite::event("chat/send")]
#[derive(Debug, Serialize, Deserialize)]
struct ChatSend {
    room: String,
    text: String,
}

/// Ask for a user by id.
#[sente_lite::event("user/get", reply = User)]
#[derive(Debug, Serialize, Deserialize)]
struct UserGet {
    id: u64,
}

/// A user.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
struct User {
    id: u64,
    name: String,
}

#[sente_lite::handler]
async fn on_send(ctx: Ctx, msg: ChatSend) {
    println!(
        "  handler: conn {} posted {:?} to {}",
        ctx.conn_id(),
        msg.text,
        msg.room
    );
}

#[sente_lite::handler]
async fn get_user(req: UserGet) -> Result<User, ErrorReply> {
    match req.id {
        0 => Err(ErrorReply::new("user/not-found", "there is no user 0")),
        id => Ok(User {
            id,
            name: format!("user-{id}"),
        }),
    }
}

fn show(message: &Message) -> String {
    match message {
        Message::Text(text) => text.to_string(),
        Message::Binary(bytes) => bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" "),
        other => format!("{other:?}"),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    println!(
        "registered events (schema hash {}):",
        registry::schema_hash_hex()
    );
    for rec in registry::events() {
        println!("  {:<10} key {}  {}", rec.id, rec.key, rec.qualified_name());
    }
    let routes = Router::new()
        .handler(on_send)
        .handler(get_user)
        .build()
        .expect("the routes do not clash");

    for codec in [Codec::Json, Codec::Postcard] {
        println!("\n== {codec} connection");
        let (outbound, _queue) = Outbound::channel(ConnId(1), 16);
        let ctx = Ctx::new(ConnId(1), Some("ada".into()), codec, outbound, 8);
        let inbound = [
            codec
                .encode_event(&ChatSend {
                    room: "lobby".into(),
                    text: "hi".into(),
                })
                .expect("encodes"),
            codec
                .encode_request(1, Some(5000), &UserGet { id: 7 })
                .expect("encodes"),
            codec
                .encode_request(2, None, &UserGet { id: 0 })
                .expect("encodes"),
            Message::text(r#"["chat/sned",{"room":"lobby","text":"typo"}]"#),
            Message::text(r#"["user/get",{"id":"seven"},3]"#),
            Message::text("not json"),
        ];
        for frame in &inbound {
            println!("-> {}", show(frame));
            let answer = match Codec::decode(frame) {
                Ok(Inbound::Event { event, payload }) => {
                    match routes.dispatch(&ctx, &event, payload, None) {
                        Ok(running) => running.await.message,
                        Err(err) => Some(sente_lite::RouteTable::error_message(codec, None, &err)),
                    }
                }
                Ok(Inbound::Request {
                    event,
                    req_id,
                    payload,
                    ..
                }) => match routes.dispatch(&ctx, &event, payload, Some(req_id)) {
                    Ok(running) => running.await.message,
                    Err(err) => Some(sente_lite::RouteTable::error_message(
                        codec,
                        Some(req_id),
                        &err,
                    )),
                },
                Ok(other) => {
                    println!("   (not an event: {other:?})");
                    None
                }
                Err(err) => Some(sente_lite::RouteTable::error_message(codec, None, &err)),
            };
            if let Some(answer) = answer {
                println!("<- {}", show(&answer));
            }
        }
    }
}
