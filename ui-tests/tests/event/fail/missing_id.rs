// `#[event]` needs an id.
use serde::{Deserialize, Serialize};

#[sente_lite::event]
#[derive(Serialize, Deserialize)]
pub struct ChatSend {
    pub text: String,
}

fn main() {}
