// An event cannot be generic.
use serde::{Deserialize, Serialize};

#[sente_lite::event("box/put")]
#[derive(Serialize, Deserialize)]
pub struct Put<T> {
    pub value: T,
}

fn main() {}
