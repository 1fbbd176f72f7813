// A handler for a request must return the reply (here `User`), not `()`.
use sente_lite::Ctx;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, schemars::JsonSchema)]
pub struct User {
    pub name: String,
}

#[sente_lite::event("user/get", reply = User)]
#[derive(Serialize, Deserialize)]
pub struct GetUser {
    pub id: u64,
}

#[sente_lite::handler]
pub async fn get_user(_ctx: Ctx, _event: GetUser) {}

fn main() {}
