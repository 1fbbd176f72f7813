// `reply` can be given only once.
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, schemars::JsonSchema)]
pub struct User {
    pub name: String,
}

#[sente_lite::event("user/get", reply = User, reply = String)]
#[derive(Serialize, Deserialize)]
pub struct GetUser {
    pub id: u64,
}

fn main() {}
