// A handler cannot be `unsafe`.
use sente_lite::Ctx;
use serde::{Deserialize, Serialize};

#[sente_lite::event("chat/send")]
#[derive(Serialize, Deserialize)]
pub struct ChatSend {
    pub text: String,
}

#[sente_lite::handler]
pub async unsafe fn on_send(_ctx: Ctx, _event: ChatSend) {}

fn main() {}
