// A channel carries events: a plain serde type needs `#[sente_lite::event]` first.
#[path = "../../common/events.rs"]
mod events;

use events::*;

#[sente_lite::channel("room/{name}", events(Said, User))]
pub struct Room {
    pub name: String,
}

fn main() {}
