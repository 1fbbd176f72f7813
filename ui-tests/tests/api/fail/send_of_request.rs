// A request waits for its reply: `send` refuses it.
#[path = "../../common/events.rs"]
mod events;

use events::*;

fn tell(client: &sente_lite::Client) {
    let _ = client.send(&GetUser { id: 1 });
}

fn main() {}
