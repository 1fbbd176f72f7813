// A handler asking its peer: `Ctx::request` takes requests only.
#[path = "../../common/events.rs"]
mod events;

use events::*;

#[sente_lite::handler]
async fn on_get(ctx: sente_lite::Ctx, event: GetUser) -> User {
    let _ = ctx.request(&ChatSend { text: "who?".into() }).await;
    User { name: event.id.to_string() }
}

fn main() {}
