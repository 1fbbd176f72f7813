// A one-way event: no reply, not a request, registered in the registry.
use sente_lite::{Event, EventKey, NoReply};
use serde::{Deserialize, Serialize};

#[sente_lite::event("chat/send")]
#[derive(Serialize, Deserialize)]
struct ChatSend {
    text: String,
}

fn reply_of<E: Event<Reply = NoReply>>() {}

fn main() {
    assert_eq!(ChatSend::ID, "chat/send");
    assert_eq!(ChatSend::KEY, EventKey::of("chat/send"));
    assert!(!ChatSend::IS_REQUEST);
    reply_of::<ChatSend>();

    let record = sente_lite::registry::by_id("chat/send").expect("registered");
    assert_eq!(record.type_name, "ChatSend");
    assert_eq!(record.reply_type, None);
    assert_eq!(record.module_path, module_path!());
    assert_eq!(record.key, ChatSend::KEY);
    let _ = ChatSend {
        text: String::new(),
    }
    .text;
}
