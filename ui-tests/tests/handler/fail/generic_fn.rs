// A handler cannot be generic.
use sente_lite::Ctx;
use serde::{Deserialize, Serialize};

#[sente_lite::event("chat/send")]
#[derive(Serialize, Deserialize)]
pub struct ChatSend {
    pub text: String,
}

#[sente_lite::handler]
pub async fn on_any<E: sente_lite::Event>(_ctx: Ctx, _event: E) {}

fn main() {}
