// An enum can be an event; its attributes and serde options are kept as written.
use sente_lite::Event;
use serde::{Deserialize, Serialize};

/// What happened to a room.
#[sente_lite::event("room/changed")]
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum RoomChanged {
    Opened { name: String },
    Closed,
}

fn main() {
    assert_eq!(RoomChanged::ID, "room/changed");
    assert_ne!(
        RoomChanged::Closed,
        RoomChanged::Opened { name: "a".into() }
    );
}
