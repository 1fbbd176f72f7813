// A request: `reply = Type` names the reply, and the event implements `Request`.
use sente_lite::{Event, Request};
use serde::{Deserialize, Serialize};

mod model {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, schemars::JsonSchema)]
    pub struct User {
        pub name: String,
    }
}

#[sente_lite::event("user/get", reply = model::User)]
#[derive(Serialize, Deserialize)]
struct GetUser {
    id: u64,
}

#[sente_lite::event("user.v2/list-all_users", reply = Vec<model::User>,)]
#[derive(Serialize, Deserialize)]
struct ListUsers;

fn request<E: Request<Reply = R>, R>() {}

fn main() {
    assert!(GetUser::IS_REQUEST);
    request::<GetUser, model::User>();
    request::<ListUsers, Vec<model::User>>();
    assert_eq!(ListUsers::ID, "user.v2/list-all_users");

    let record = sente_lite::registry::by_id("user/get").expect("registered");
    assert_eq!(record.type_name, "GetUser");
    assert_eq!(record.reply_type, Some("model::User"));
    let record = sente_lite::registry::by_id("user.v2/list-all_users").expect("registered");
    assert_eq!(record.reply_type, Some("Vec<model::User>"));
    assert!(sente_lite::registry::check().is_ok());
    let _ = GetUser { id: 1 }.id;
}
