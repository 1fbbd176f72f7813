// A handler parameter cannot be `impl Trait`.
use sente_lite::Ctx;
use serde::{Deserialize, Serialize};

#[sente_lite::event("chat/send")]
#[derive(Serialize, Deserialize)]
pub struct ChatSend {
    pub text: String,
}

#[sente_lite::handler]
pub async fn on_send(_ctx: Ctx, _event: impl sente_lite::Event) {}

fn main() {}
