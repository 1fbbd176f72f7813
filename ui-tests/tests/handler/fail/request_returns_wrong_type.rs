// A handler for a request must return its reply type (here `User`), or `Result<User, E>`.
use sente_lite::{Ctx, ErrorReply};
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
pub async fn get_user(_ctx: Ctx, event: GetUser) -> Result<String, ErrorReply> {
    Ok(event.id.to_string())
}

fn main() {}
