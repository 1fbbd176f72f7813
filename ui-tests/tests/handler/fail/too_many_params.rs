// A handler takes at most two parameters: the context and one event.
use sente_lite::Ctx;
use serde::{Deserialize, Serialize};

#[sente_lite::event("chat/send")]
#[derive(Serialize, Deserialize)]
pub struct ChatSend {
    pub text: String,
}

#[sente_lite::handler]
pub async fn on_send(_ctx: Ctx, _event: ChatSend, _retries: u32) {}

fn main() {}
