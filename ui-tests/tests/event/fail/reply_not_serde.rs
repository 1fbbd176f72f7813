// A request's reply type must implement `Serialize` and `Deserialize` too.
use serde::{Deserialize, Serialize};

pub struct User {
    pub name: String,
}

#[sente_lite::event("user/get", reply = User)]
#[derive(Serialize, Deserialize)]
pub struct GetUser {
    pub id: u64,
}

fn main() {}
