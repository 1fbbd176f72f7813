// `#[handler]` goes on an `async fn`, not on a struct.
use serde::{Deserialize, Serialize};

#[sente_lite::event("chat/send")]
#[derive(Serialize, Deserialize)]
pub struct ChatSend {
    pub text: String,
}

#[sente_lite::handler]
pub struct OnSend;

fn main() {}
