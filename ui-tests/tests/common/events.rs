//! Events shared by the compile-fail cases of the API and of typed channels.
#![allow(dead_code)]

use serde::{Deserialize, Serialize};

#[sente_lite::event("chat/send")]
#[derive(Serialize, Deserialize)]
pub struct ChatSend {
    pub text: String,
}

#[sente_lite::event("user/get", reply = User)]
#[derive(Serialize, Deserialize)]
pub struct GetUser {
    pub id: u64,
}

#[derive(Serialize, Deserialize, schemars::JsonSchema)]
pub struct User {
    pub name: String,
}

#[sente_lite::event("room/said")]
#[derive(Serialize, Deserialize)]
pub struct Said {
    pub text: String,
}

#[sente_lite::event("room/typing")]
#[derive(Serialize, Deserialize)]
pub struct Typing;
