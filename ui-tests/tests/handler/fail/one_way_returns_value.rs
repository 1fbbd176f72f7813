// A handler for a one-way event cannot return a value.
use sente_lite::Ctx;
use serde::{Deserialize, Serialize};

#[sente_lite::event("chat/send")]
#[derive(Serialize, Deserialize)]
pub struct ChatSend {
    pub text: String,
}

#[sente_lite::handler]
pub async fn on_send(_ctx: Ctx, event: ChatSend) -> usize {
    event.text.len()
}

fn main() {}
