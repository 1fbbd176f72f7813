// A handler cannot have an `extern` ABI.
use sente_lite::Ctx;
use serde::{Deserialize, Serialize};

#[sente_lite::event("chat/send")]
#[derive(Serialize, Deserialize)]
pub struct ChatSend {
    pub text: String,
}

#[sente_lite::handler]
pub async extern "C" fn on_send(_ctx: Ctx, _event: ChatSend) {}

fn main() {}
