// A handler's event parameter must be a type made with `#[event]`.
use sente_lite::Ctx;
use serde::{Deserialize, Serialize};

#[sente_lite::event("chat/send")]
#[derive(Serialize, Deserialize)]
pub struct ChatSend {
    pub text: String,
}

#[derive(Serialize, Deserialize)]
pub struct NotAnEvent {
    pub text: String,
}

#[sente_lite::handler]
pub async fn on_message(_ctx: Ctx, _event: NotAnEvent) {}

fn main() {}
