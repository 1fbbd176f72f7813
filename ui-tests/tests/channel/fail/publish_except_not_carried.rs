// Every way of publishing on a typed channel checks its events.
#[path = "../../common/events.rs"]
mod events;

use events::*;

#[sente_lite::channel("room/{name}", events(Said))]
pub struct Room {
    pub name: String,
}

async fn pass_on(server: &sente_lite::Server, from: sente_lite::ConnId) {
    let room = Room { name: "lobby".into() };
    let _ = server.publish_except(&room, &ChatSend { text: "hi".into() }, from).await;
}

fn main() {}
