// An event must implement `Serialize` and `Deserialize`; `#[event]` does not derive them.
#[sente_lite::event("chat/send")]
pub struct ChatSend {
    pub text: String,
}

fn main() {}
