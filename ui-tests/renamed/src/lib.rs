//! Events and handlers of a crate that depends on sente-lite under the name
//! `sl` (`sl = { package = "sente-lite", ... }`), so that nothing generated may
//! name `::sente_lite`: each macro is told `crate = "sl"`.

use serde::{Deserialize, Serialize};

/// Says something; one way.
#[sl::event("renamed/say", crate = "sl")]
#[derive(Debug, Serialize, Deserialize)]
pub struct Say {
    /// What was said.
    pub text: String,
}

/// Asks for the length of a text.
#[sl::event("renamed/len", reply = usize, crate = "sl")]
#[derive(Debug, Serialize, Deserialize)]
pub struct Len {
    /// The text to measure.
    pub text: String,
}

/// Takes what was said.
#[sl::handler(crate = "sl")]
pub async fn on_say(_ctx: sl::Ctx, _event: Say) {}

/// Answers with the text's length in bytes.
#[sl::handler(crate = "sl")]
pub async fn on_len(event: Len) -> usize {
    event.text.len()
}

/// The routes of this crate.
pub fn router() -> sl::Router {
    sl::Router::new().handler(on_say).handler(on_len)
}
