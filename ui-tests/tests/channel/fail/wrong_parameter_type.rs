// A parameter has its field's type: a `String` name is written as text.
#[path = "../../common/events.rs"]
mod events;

use events::*;

#[sente_lite::channel("room/{name}", events(Said))]
pub struct Room {
    pub name: String,
}

async fn read(client: sente_lite::Client) {
    let _ = client.join(Room { name: 7 }).await;
}

fn main() {}
