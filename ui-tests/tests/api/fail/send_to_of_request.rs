// The server pushes one-way events to a connection; a request is asked with `request`.
#[path = "../../common/events.rs"]
mod events;

use events::*;

fn push(server: &sente_lite::Server, conn: sente_lite::ConnId) {
    let _ = server.send_to(conn, &GetUser { id: 1 });
}

fn main() {}
