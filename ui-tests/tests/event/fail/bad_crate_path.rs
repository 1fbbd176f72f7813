// `crate` takes a path written as a string, once.
use serde::{Deserialize, Serialize};

#[sente_lite::event("chat/send", crate = "not a path")]
#[derive(Serialize, Deserialize)]
struct ChatSend {
    text: String,
}

#[sente_lite::event("chat/ping", crate = "sente_lite", crate = "sente_lite")]
#[derive(Serialize, Deserialize)]
struct ChatPing;

fn main() {}
