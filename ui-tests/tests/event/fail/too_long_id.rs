// An event id is at most 128 bytes long.
use serde::{Deserialize, Serialize};

#[sente_lite::event(
    "chat/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
)]
#[derive(Serialize, Deserialize)]
pub struct ChatSend;

fn main() {}
