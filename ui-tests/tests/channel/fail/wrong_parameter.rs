// A channel value has exactly the pattern's parameters.
#[path = "../../common/events.rs"]
mod events;

use events::*;

#[sente_lite::channel("room/{name}", events(Said))]
pub struct Room {
    pub name: String,
}

async fn read(client: sente_lite::Client) {
    let _ = client.join(Room { nme: "lobby".into() }).await;
}

fn main() {}
