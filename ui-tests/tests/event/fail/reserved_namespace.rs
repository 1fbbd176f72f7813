// The namespace `sl` is reserved for the protocol's own frames.
use serde::{Deserialize, Serialize};

#[sente_lite::event("sl/ping")]
#[derive(Serialize, Deserialize)]
pub struct Ping;

fn main() {}
