// Two events in one module cannot share an id.
use serde::{Deserialize, Serialize};

#[sente_lite::event("chat/send")]
#[derive(Serialize, Deserialize)]
pub struct ChatSend {
    pub text: String,
}

#[sente_lite::event("chat/send")]
#[derive(Serialize, Deserialize)]
pub struct ChatPost {
    pub body: String,
}

fn main() {}
