// A parameter is a whole segment; no segment is empty.
#[sente_lite::channel("room-{name}", events(Said))]
pub struct Room {
    pub name: String,
}

#[sente_lite::channel("room//{name}", events(Said))]
pub struct Hall {
    pub name: String,
}

fn main() {}
