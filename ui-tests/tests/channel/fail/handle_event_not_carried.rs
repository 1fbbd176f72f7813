// A joined channel delivers only its events: its enum has no other variant.
#[path = "../../common/events.rs"]
mod events;

use events::*;

#[sente_lite::channel("room/{name}", events(Said))]
pub struct Room {
    pub name: String,
}

async fn read(client: sente_lite::Client) -> Result<(), sente_lite::RequestError> {
    let mut room = client.join(Room { name: "lobby".into() }).await?;
    if let Some(sente_lite::client::ChannelMessage::Event(event)) = room.recv().await {
        match event {
            RoomEvent::Said(_) => {}
            RoomEvent::Typing(_) => {}
        }
    }
    Ok(())
}

fn main() {}
