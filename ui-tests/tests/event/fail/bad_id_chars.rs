// An event id may only use lowercase ASCII letters, digits, `_`, `-` and `.` around one `/`.
use serde::{Deserialize, Serialize};

#[sente_lite::event("chat/send message!")]
#[derive(Serialize, Deserialize)]
pub struct ChatSend {
    pub text: String,
}

fn main() {}
