// An event crosses threads, so it must be `Send` and `Sync`: no `Cell`, `RefCell` or `Rc` fields.
use std::cell::Cell;

use serde::{Deserialize, Serialize};

#[sente_lite::event("counter/set")]
#[derive(Serialize, Deserialize)]
pub struct CounterSet {
    pub value: Cell<u32>,
}

fn main() {}
