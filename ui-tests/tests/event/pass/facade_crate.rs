// sente-lite reached through a facade crate that re-exports it
// (`sente_lite_ui_tests::runtime`): `crate = "path"` says where it is.
// (A dependency renamed in Cargo.toml is tested by `ui-tests/renamed`.)
#![deny(missing_docs, warnings)]
#![forbid(unsafe_code)]
//! A crate that uses sente-lite through a facade.

use sente_lite_ui_tests::runtime as sl;
use serde::{Deserialize, Serialize};

/// Says something.
#[sente_lite_ui_tests::runtime::event("facade/say", crate = "sente_lite_ui_tests::runtime")]
#[derive(Serialize, Deserialize)]
pub struct Say {
    /// What was said.
    pub text: String,
}

/// Asks for a length.
#[sl::event("facade/len", reply = usize, crate = "sl")]
#[derive(Serialize, Deserialize)]
pub struct Len {
    /// The text to measure.
    pub text: String,
}

/// Handles `Say`.
#[sente_lite_ui_tests::runtime::handler(crate = "sente_lite_ui_tests::runtime")]
pub async fn on_say(_ctx: sl::Ctx, _event: Say) {}

/// Answers `Len`.
#[sl::handler(crate = "sl")]
pub async fn on_len(event: Len) -> usize {
    event.text.len()
}

fn main() {
    use sl::{Event, Handler};
    assert_eq!(Say::ID, "facade/say");
    assert!(Len::IS_REQUEST);
    assert_eq!(on_len::NAME, "on_len");
    assert!(sl::registry::by_id("facade/len").is_some());
    let routes = sl::Router::new()
        .handler(on_say)
        .handler(on_len)
        .build()
        .expect("two routes");
    assert_eq!(routes.len(), 2);
}
