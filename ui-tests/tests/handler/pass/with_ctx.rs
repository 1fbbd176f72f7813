// A handler taking the context and a one-way event, routed by a `Router`.
use sente_lite::{Ctx, Event, Handler, Router};
use serde::{Deserialize, Serialize};

#[sente_lite::event("chat/send")]
#[derive(Serialize, Deserialize)]
struct ChatSend {
    text: String,
}

/// Logs a chat message.
#[sente_lite::handler]
async fn on_send(ctx: Ctx, event: ChatSend) {
    let _ = (ctx.conn_id(), event.text);
}

#[sente_lite::handler]
async fn on_send_qualified(_: sente_lite::Ctx, ChatSend { text }: ChatSend) -> () {
    let _ = text;
}

fn takes_handler<H: Handler<Event = ChatSend>>(_: H) {}

fn main() {
    assert_eq!(on_send::NAME, "on_send");
    assert_eq!(on_send::MODULE, module_path!());
    assert_eq!(<on_send as Handler>::Event::ID, "chat/send");
    takes_handler(on_send);
    takes_handler(on_send_qualified);
    let copy = on_send;
    let _ = (copy, on_send::default(), format!("{on_send:?}"));

    let table = Router::new().handler(on_send).build().expect("routes");
    assert_eq!(table.len(), 1);
}
