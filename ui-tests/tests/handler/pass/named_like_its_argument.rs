// A handler may be named like one of its parameters, and a parameter may be
// a pattern: the body sees the parameter, not the handler's unit struct.
#![deny(missing_docs, warnings)]
//! A handler named like its event parameter.

use sente_lite::Ctx;
use serde::{Deserialize, Serialize};

/// Something said.
#[sente_lite::event("chat/say", reply = usize)]
#[derive(Serialize, Deserialize)]
pub struct Say {
    /// What.
    pub text: String,
}

/// Answers the length of what was said.
#[sente_lite::handler]
async fn say(ctx: Ctx, say: Say) -> usize {
    let _ = ctx.conn_id();
    say.text.len()
}

/// The same, with the event destructured.
#[sente_lite::handler]
async fn length(Say { text }: Say) -> usize {
    text.len()
}

fn main() {
    let _ = sente_lite::Router::new().handler(say).build();
    let _ = sente_lite::Router::new().handler(length).build();
}
