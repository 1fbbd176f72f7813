// The compile-time duplicate check is per module: the same id in two modules compiles,
// and the runtime registry reports the clash.
use serde::{Deserialize, Serialize};

mod a {
    use super::*;

    #[sente_lite::event("chat/send")]
    #[derive(Serialize, Deserialize)]
    pub struct ChatSend;
}

mod b {
    use super::*;

    #[sente_lite::event("chat/send")]
    #[derive(Serialize, Deserialize)]
    pub struct ChatSend;
}

fn main() {
    let _ = (a::ChatSend, b::ChatSend);
    assert!(sente_lite::registry::check().is_err());
}
