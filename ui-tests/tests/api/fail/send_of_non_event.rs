// Only events go on the wire: a plain serde type needs `#[sente_lite::event]`.
#[path = "../../common/events.rs"]
mod events;

use events::*;

fn tell(client: &sente_lite::Client) {
    let _ = client.send(&User { name: "ada".into() });
}

fn main() {}
