// The server asking a connection: only a request has a reply to wait for.
#[path = "../../common/events.rs"]
mod events;

use events::*;

async fn ask(server: &sente_lite::Server, conn: sente_lite::ConnId) {
    let _ = server.request(conn, &ChatSend { text: "who?".into() }).await;
}

fn main() {}
