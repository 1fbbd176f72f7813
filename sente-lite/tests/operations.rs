//! Server operations seen by real clients: every connection of a user closed
//! at once with a reason, and the others left alone; a publication to a
//! channel's subscribers but one.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sente_lite::protocol::CloseReason;
use sente_lite::{
    Client, Codec, ConnectionState, Ctx, ErrorReply, ReconnectPolicy, Router, Server, UserId,
};
use serde::{Deserialize, Serialize};
use support::{Frame, Raw};

async fn client(server: &Server, user: &str) -> Client {
    Client::builder(format!("{}?user={user}", server.ws_url()))
        .reconnect(ReconnectPolicy::default().with_initial_delay(Duration::from_millis(20)))
        .connect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_user_closes_every_connection_of_the_user_with_its_reason() {
    let server = Server::builder()
        .auth(|request| async move { Ok(request.query("user").map(Into::into)) })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let (phone, laptop, bob) = (
        client(&server, "ada").await,
        client(&server, "ada").await,
        client(&server, "bob").await,
    );
    let before = [phone.conn_id(), laptop.conn_id(), bob.conn_id()];
    let reason = CloseReason {
        code: "policy".into(),
        message: "signed out everywhere".into(),
        reconnect_after_ms: Some(50),
    };
    assert_eq!(
        server.disconnect_user(&UserId::from("ada"), reason.clone()),
        2
    );
    assert_eq!(
        server.disconnect_user(&UserId::from("nobody"), reason.clone()),
        0
    );

    for (ada, was) in [(&phone, before[0]), (&laptop, before[1])] {
        support::until("told why", || ada.last_close().is_some()).await;
        assert_eq!(ada.last_close(), Some(reason.clone()));
        // Back after the server's `reconnect_after_ms`, as another connection.
        support::until("reconnected", || {
            ada.state() == ConnectionState::Open && ada.conn_id() != was
        })
        .await;
    }
    assert_eq!(bob.conn_id(), before[2], "bob stays");
    assert_eq!(bob.last_close(), None);
    assert_eq!(server.user_connections(&UserId::from("ada")).len(), 2);
}

/// What a client says in a room: passed on to the others (`except_me`, with
/// `publish_except` or, with `now`, `broadcast_except`), or to everyone. The
/// reply is the publication's offset.
#[sente_lite::event("ops/say", reply = u64)]
#[derive(Debug, Serialize, Deserialize)]
struct Say {
    room: String,
    text: String,
    except_me: bool,
    now: bool,
}

/// What the room hears.
#[sente_lite::event("ops/said")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Said {
    text: String,
}

#[sente_lite::handler]
async fn pass_on(ctx: Ctx, say: Say) -> Result<u64, ErrorReply> {
    let server = ctx.server().expect("on a server");
    let channel = format!("room/{}", say.room);
    let said = Said { text: say.text };
    let failed = |e: String| ErrorReply::new("ops/failed", e);
    if say.now {
        assert!(say.except_me, "only `broadcast_except` is asked for now");
        server
            .broadcast_except(&channel, &said, ctx.conn_id())
            .map_err(|e| failed(e.to_string()))?;
        return Ok(0);
    }
    let published = if say.except_me {
        server.publish_except(&channel, &said, ctx.conn_id()).await
    } else {
        server.publish(&channel, &said).await
    };
    let published = published.map_err(|e| failed(e.to_string()))?;
    Ok(published.position.map_or(0, |p| p.offset))
}

/// The texts a client's handler heard.
#[derive(Clone, Default)]
struct Heard(Arc<Mutex<Vec<String>>>);

#[sente_lite::handler]
async fn hear(ctx: Ctx, said: Said) {
    if let Some(heard) = ctx.state::<Heard>() {
        heard.0.lock().unwrap().push(said.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_except_reaches_every_subscriber_but_the_sender() {
    let server = Server::builder()
        .router(Router::new().handler(pass_on))
        .channel("room/*", sente_lite::server::allow_all)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    for codec in [Codec::Json, Codec::Postcard] {
        let room = format!("r-{codec:?}");
        let channel = format!("room/{room}");
        // The others: one client in each encoding.
        let mut others = Vec::new();
        for other in [Codec::Json, Codec::Postcard] {
            let heard = Heard::default();
            let client = Client::builder(server.ws_url())
                .codec(other)
                .router(Router::new().handler(hear))
                .state(heard.clone())
                .connect()
                .await
                .unwrap();
            client.subscribe(&channel).await.unwrap();
            others.push((client, heard));
        }
        // The sender, seen frame by frame.
        let mut sender = Raw::connect(&server.ws_url(), "", codec).await;
        let (_, subscribed) = sender.subscribe::<Said>(&channel, None).await;
        assert_eq!(subscribed.unwrap().position.unwrap().offset, 0);

        let mut say = async |text: &str, except_me: bool, now: bool| {
            let req_id = sender.req_id();
            let request = Say {
                room: room.clone(),
                text: text.into(),
                except_me,
                now,
            };
            sender
                .send_message(codec.encode_request(req_id, None, &request).unwrap())
                .await;
            let (before, reply) = sender.until_reply::<Said>(req_id).await;
            (before, sender.payload::<u64>(&reply.unwrap()))
        };
        let (before, offset) = say("one", true, false).await;
        assert_eq!(
            (before, offset),
            (vec![], 1),
            "{codec:?}: not to the sender"
        );
        let (before, _) = say("two", true, true).await;
        assert_eq!(before, vec![], "{codec:?}: not to the sender");
        let (before, offset) = say("three", false, false).await;
        assert_eq!(offset, 3);
        // The sender's offsets skip the two it was left out of.
        let [
            Frame::Pub {
                position, event, ..
            },
        ] = &before[..]
        else {
            panic!("{codec:?}: the publication to all, before the reply: {before:?}");
        };
        assert_eq!(event.text, "three");
        assert_eq!(position.as_ref().unwrap().offset, 3);

        for (client, heard) in &others {
            support::until("the others heard all three", || {
                *heard.0.lock().unwrap() == ["one", "two", "three"]
            })
            .await;
            client.disconnect().await;
        }
    }
}
