// `#[handler]` takes no arguments but `crate = "path"`.
use sente_lite::Ctx;
use serde::{Deserialize, Serialize};

#[sente_lite::event("chat/send")]
#[derive(Serialize, Deserialize)]
pub struct ChatSend {
    pub text: String,
}

#[sente_lite::handler(ChatSend)]
pub async fn on_send(_ctx: Ctx, _event: ChatSend) {}

fn main() {}
