// An event id needs a namespace: `namespace/name`, with exactly one `/`.
use serde::{Deserialize, Serialize};

#[sente_lite::event("chatsend")]
#[derive(Serialize, Deserialize)]
pub struct ChatSend {
    pub text: String,
}

fn main() {}
