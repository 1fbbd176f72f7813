// A typed channel publishes only the events it carries.
#[path = "../../common/events.rs"]
mod events;

use events::*;

#[sente_lite::channel("room/{name}", events(Said))]
pub struct Room {
    pub name: String,
}

fn announce(server: &sente_lite::Server) {
    let _ = server.broadcast(&Room { name: "lobby".into() }, &Typing);
}

fn main() {}
