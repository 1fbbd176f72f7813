// The generated code compiles in a crate that denies missing docs and forbids unsafe code.
#![deny(missing_docs, warnings)]
#![forbid(unsafe_code)]
//! A library-like crate with strict lints.

use serde::{Deserialize, Serialize};

/// Events of a public API.
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

    /// A room's state.
    #[sente_lite::event("room/state")]
    #[derive(Serialize, Deserialize)]
    pub enum RoomState {
        /// Anyone may talk.
        Open,
        /// Nobody may talk.
        Closed,
    }
}

fn main() {
    // This crate's three events are registered (the runtime adds its own).
    for id in ["chat/send", "room/state", "user/get"] {
        let record = sente_lite::registry::by_id(id).expect("registered");
        assert!(record.module_path.ends_with("::api"), "{}", record.module_path);
    }
}
