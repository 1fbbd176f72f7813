// A typed channel is published on with its parameters: the type alone is no channel.
#[path = "../../common/events.rs"]
mod events;

use events::*;

#[sente_lite::channel("room/{name}", events(Said))]
pub struct Room {
    pub name: String,
}

fn announce(server: &sente_lite::Server) {
    let _ = server.broadcast(&Room, &Said { text: "hi".into() });
}

fn main() {}
