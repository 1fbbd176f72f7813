// Handlers may return `Result<Reply, E>` (or `Result<(), E>` for a one-way event)
// where `E: Into<ErrorReply>`.
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

#[sente_lite::event("user/forget")]
#[derive(Serialize, Deserialize)]
pub struct ForgetUser {
    pub id: u64,
}

/// An application error that converts into the error told to the peer.
pub enum UserError {
    NotFound,
}

impl From<UserError> for ErrorReply {
    fn from(error: UserError) -> Self {
        match error {
            UserError::NotFound => ErrorReply::new("user/not-found", "no such user"),
        }
    }
}

#[sente_lite::handler]
pub async fn get_user(_ctx: Ctx, event: GetUser) -> Result<User, UserError> {
    match event.id {
        1 => Ok(User { name: "ada".into() }),
        _ => Err(UserError::NotFound),
    }
}

#[sente_lite::handler]
pub async fn get_user_plain(event: GetUser) -> User {
    User {
        name: event.id.to_string(),
    }
}

#[sente_lite::handler]
pub async fn get_user_reply_error(event: GetUser) -> Result<User, ErrorReply> {
    Err(ErrorReply::new("user/not-found", event.id.to_string()))
}

#[sente_lite::handler]
pub async fn forget_user(event: ForgetUser) -> Result<(), UserError> {
    if event.id == 0 {
        Err(UserError::NotFound)
    } else {
        Ok(())
    }
}

fn main() {
    let _ = sente_lite::Router::new()
        .handler(get_user)
        .handler(forget_user)
        .build()
        .expect("routes");
}
