// The router takes what `#[handler]` makes, not a plain async fn.
#[path = "../../common/events.rs"]
mod events;

use events::*;

async fn on_send(_ctx: sente_lite::Ctx, _event: ChatSend) {}

fn main() {
    let _ = sente_lite::Router::new().handler(on_send);
}
