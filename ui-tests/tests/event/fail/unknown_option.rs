// `#[event]` has one option, `reply`; any other key is an error.
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, schemars::JsonSchema)]
pub struct User {
    pub name: String,
}

#[sente_lite::event("user/get", response = User)]
#[derive(Serialize, Deserialize)]
pub struct GetUser {
    pub id: u64,
}

fn main() {}
