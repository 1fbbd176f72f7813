// A handler receives exactly one event.
use serde::{Deserialize, Serialize};

#[sente_lite::event("chat/send")]
#[derive(Serialize, Deserialize)]
pub struct ChatSend {
    pub text: String,
}

#[sente_lite::event("chat/typing")]
#[derive(Serialize, Deserialize)]
pub struct ChatTyping;

#[sente_lite::handler]
pub async fn on_both(_event: ChatSend, _typing: ChatTyping) {}

fn main() {}
