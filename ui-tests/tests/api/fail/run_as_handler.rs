// `name::run` is the handler's body, for unit tests; the router takes `name`.
#[path = "../../common/events.rs"]
mod events;

use events::*;

#[sente_lite::handler]
async fn on_send(_event: ChatSend) {}

fn main() {
    let _ = sente_lite::Router::new().handler(on_send::run);
}
