// A handler's return type cannot be `impl Trait`.
use serde::{Deserialize, Serialize};

#[sente_lite::event("user/get", reply = User)]
#[derive(Serialize, Deserialize)]
pub struct GetUser {
    pub id: u64,
}

#[derive(Serialize, Deserialize, schemars::JsonSchema)]
pub struct User {
    pub name: String,
}

#[sente_lite::handler]
pub async fn get_user(event: GetUser) -> impl Serialize {
    User {
        name: event.id.to_string(),
    }
}

fn main() {}
