// A handler's future must be `Send`: it cannot hold an `Rc` across an `.await`.
use sente_lite::Ctx;
use serde::{Deserialize, Serialize};

#[sente_lite::event("chat/send")]
#[derive(Serialize, Deserialize)]
pub struct ChatSend {
    pub text: String,
}

use std::rc::Rc;

async fn yield_now() {}

#[sente_lite::handler]
pub async fn on_send(_ctx: Ctx, event: ChatSend) {
    let shared = Rc::new(event.text);
    yield_now().await;
    drop(shared);
}

fn main() {}
