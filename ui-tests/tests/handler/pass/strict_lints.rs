// The generated code compiles in a crate that denies missing docs and forbids unsafe code.
#![deny(missing_docs, warnings)]
#![forbid(unsafe_code)]
//! A library-like crate with strict lints.

use sente_lite::{Ctx, ErrorReply};
use serde::{Deserialize, Serialize};

/// The API.
pub mod api {
    use super::*;

    /// Says something in a room.
    #[sente_lite::event("chat/send")]
    #[derive(Serialize, Deserialize)]
    pub struct ChatSend {
        /// What was said.
        pub text: String,
    }

    /// Asks for a user.
    #[sente_lite::event("user/get", reply = User)]
    #[derive(Serialize, Deserialize)]
    pub struct GetUser {
        /// The user's id.
        pub id: u64,
    }

    /// A user.
    #[derive(Serialize, Deserialize, schemars::JsonSchema)]
    pub struct User {
        /// The user's name.
        pub name: String,
    }

    /// Handles a chat message.
    #[sente_lite::handler]
    pub async fn on_send(ctx: Ctx, event: ChatSend) {
        let _ = (ctx, event.text);
    }

    /// Answers a user request.
    #[sente_lite::handler]
    pub async fn get_user(event: GetUser) -> Result<User, ErrorReply> {
        Ok(User {
            name: event.id.to_string(),
        })
    }
}

fn main() {
    let _ = sente_lite::Router::new()
        .handler(api::on_send)
        .handler(api::get_user)
        .build()
        .expect("routes");
}
