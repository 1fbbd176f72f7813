// Pushing to every connection of a user is one-way; a request names one connection.
#[path = "../../common/events.rs"]
mod events;

use events::*;

fn push(server: &sente_lite::Server, user: &sente_lite::UserId) {
    let _ = server.send_to_user(user, &GetUser { id: 1 });
}

fn main() {}
