// A handler telling its peer something: `Ctx::send` takes one-way events only.
#[path = "../../common/events.rs"]
mod events;

use events::*;

#[sente_lite::handler]
async fn on_send(ctx: sente_lite::Ctx, _event: ChatSend) {
    let _ = ctx.send(&GetUser { id: 1 });
}

fn main() {}
