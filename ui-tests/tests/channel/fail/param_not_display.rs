// A parameter is written into the name and read back: Display and FromStr.
#[path = "../../common/events.rs"]
mod events;

use events::*;

pub struct Code(u8);

#[sente_lite::channel("room/{code}", events(Said))]
pub struct Room {
    pub code: Code,
}

fn main() {}
