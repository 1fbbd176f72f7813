// A channel carries one-way events; a request is answered, not published.
#[path = "../../common/events.rs"]
mod events;

use events::*;

#[sente_lite::channel("room/{name}", events(Said, GetUser))]
pub struct Room {
    pub name: String,
}

fn main() {}
