// An event id cannot contain uppercase letters.
use serde::{Deserialize, Serialize};

#[sente_lite::event("Chat/Send")]
#[derive(Serialize, Deserialize)]
pub struct ChatSend {
    pub text: String,
}

fn main() {}
