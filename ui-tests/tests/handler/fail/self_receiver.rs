// A handler is a free function: it cannot take `self`.
use sente_lite::Ctx;
use serde::{Deserialize, Serialize};

#[sente_lite::event("chat/send")]
#[derive(Serialize, Deserialize)]
pub struct ChatSend {
    pub text: String,
}

pub struct Chat;

impl Chat {
    #[sente_lite::handler]
    pub async fn on_send(&self, _ctx: Ctx, _event: ChatSend) {}
}

fn main() {}
