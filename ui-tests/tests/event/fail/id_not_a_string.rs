// The event id must be a string literal.
use serde::{Deserialize, Serialize};

#[sente_lite::event(chat/send)]
#[derive(Serialize, Deserialize)]
pub struct ChatSend {
    pub text: String,
}

fn main() {}
