// Two events in one module cannot have ids whose keys collide (both hash to 0xf15546ae).
use serde::{Deserialize, Serialize};

#[sente_lite::event("chat/m68465")]
#[derive(Serialize, Deserialize)]
pub struct First;

#[sente_lite::event("chat/m202410")]
#[derive(Serialize, Deserialize)]
pub struct Second;

fn main() {}
