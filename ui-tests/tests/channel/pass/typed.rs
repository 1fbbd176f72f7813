// Typed channels in a crate with strict lints: parameters of several types, a
// channel without parameters, publishing, authorising and joining.
#![deny(missing_docs, warnings)]
#![forbid(unsafe_code)]
//! A crate with typed channels.

use sente_lite::server::ChannelAccess;
use sente_lite::{Channel, ChannelEvent, ErrorReply};
use serde::{Deserialize, Serialize};

/// Something said.
#[sente_lite::event("room/said")]
#[derive(Debug, Serialize, Deserialize)]
pub struct Said {
    /// What.
    pub text: String,
}

/// Someone types.
#[sente_lite::event("room/typing")]
#[derive(Debug, Serialize, Deserialize)]
pub struct Typing;

/// A room of an organisation.
#[sente_lite::channel("org/{org}/room/{name}", events(Said, Typing), derive(Debug))]
#[derive(Debug, Clone, PartialEq)]
pub struct Room {
    /// The organisation.
    pub org: u32,
    /// The room.
    pub name: String,
}

/// The one lobby.
#[sente_lite::channel("lobby", events(Said))]
#[derive(Debug, PartialEq)]
pub struct Lobby;

async fn serve() -> Result<(), Box<dyn std::error::Error>> {
    let server = sente_lite::Server::builder()
        .typed_channel(|room: Room, _access: ChannelAccess| async move {
            if room.org == 7 {
                Ok(())
            } else {
                Err(ErrorReply::new("forbidden", "not your organisation"))
            }
        })
        .typed_channel(|_: Lobby, _| async { Ok(()) })
        .bind("127.0.0.1:0")
        .await?;
    let room = Room { org: 7, name: "a/b".into() };
    server.broadcast(&room, &Said { text: "hi".into() })?;
    server.broadcast(&room, &Typing)?;
    server.broadcast(&Lobby, &Said { text: "hi".into() })?;
    server.broadcast("anything/goes", &Typing)?;
    server.publish(&room, &Typing).await?;

    let client = sente_lite::Client::connect(server.ws_url()).await?;
    let mut joined = client.join(room).await?;
    if let Some(sente_lite::client::ChannelMessage::Event(event)) = joined.recv().await {
        match event {
            RoomEvent::Said(said) => drop(said.text),
            RoomEvent::Typing(Typing) => {}
        }
    }
    joined.leave().await?;
    Ok(())
}

fn main() {
    let room = Room { org: 7, name: "a/b".into() };
    assert_eq!(room.name(), "org/7/room/a%2Fb");
    assert_eq!(Room::parse("org/7/room/a%2Fb"), Some(room));
    assert_eq!(Room::parse("org/x/room/a"), None);
    assert_eq!(Lobby.name(), "lobby");
    assert_eq!(Lobby::parse("lobby"), Some(Lobby));
    assert_eq!(<RoomEvent as ChannelEvent>::IDS, ["room/said", "room/typing"]);
    assert_eq!(Room::PATTERN, "org/{org}/room/{name}");
    let _ = serve;
}
