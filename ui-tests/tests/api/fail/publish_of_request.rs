// `publish` waits for the engine's answer, but still publishes one-way events only.
#[path = "../../common/events.rs"]
mod events;

use events::*;

async fn announce(server: &sente_lite::Server) {
    let _ = server.publish("room/lobby", &GetUser { id: 1 }).await;
}

fn main() {}
