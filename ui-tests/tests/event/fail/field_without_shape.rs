// The types an event's fields use need a shape for the schema hash too.
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct Author {
    pub name: String,
}

#[sente_lite::event("chat/send")]
#[derive(Serialize, Deserialize)]
pub struct ChatSend {
    pub author: Author,
    pub text: String,
}

fn main() {}
