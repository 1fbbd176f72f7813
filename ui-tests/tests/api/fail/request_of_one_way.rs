// A one-way event has no reply to await: `request` refuses it.
#[path = "../../common/events.rs"]
mod events;

use events::*;

async fn ask(client: sente_lite::Client) {
    let _ = client.request(&ChatSend { text: "hi".into() }).await;
}

fn main() {}
