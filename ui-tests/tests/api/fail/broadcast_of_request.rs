// Only one-way events are published on a channel.
#[path = "../../common/events.rs"]
mod events;

use events::*;

fn announce(server: &sente_lite::Server) {
    let _ = server.broadcast("room/lobby", &GetUser { id: 1 });
}

fn main() {}
