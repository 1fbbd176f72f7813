// Doc comments go on the generated struct; `#[cfg]` applies to everything generated;
// other attributes stay on `run`. The event may come before the context.
#![deny(unused)]

use sente_lite::Ctx;
use serde::{Deserialize, Serialize};

#[sente_lite::event("chat/send")]
#[derive(Serialize, Deserialize)]
struct ChatSend {
    text: String,
}

/// Not compiled at all.
#[sente_lite::handler]
#[cfg(any())]
async fn gone(event: ChatSend) {
    this_does_not_exist(event);
}

/// The body's lints are allowed on `run`.
#[sente_lite::handler]
#[allow(unused_variables)]
#[must_use]
async fn on_send(event: ChatSend, ctx: Ctx) {
    let unused = 1;
    let _ = (event.text, ctx);
}

fn main() {
    let _ = sente_lite::Router::new().handler(on_send).build();
}
