// A publication decodes into the event type it was published as.
#[path = "../../common/events.rs"]
mod events;

use events::*;

async fn replay(server: &sente_lite::Server) {
    for publication in server.history("room/lobby").await.unwrap_or_default() {
        let _ = publication.decode::<User>();
    }
}

fn main() {}
