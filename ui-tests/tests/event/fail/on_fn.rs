// `#[event]` goes on a struct or an enum, not on a function.
#[sente_lite::event("chat/send")]
pub fn chat_send() {}

fn main() {}
