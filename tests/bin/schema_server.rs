//! A server process for the schema test: the shared events of
//! `schema/shared.rs`, plus `shape/greet` and `shape/get` in shapes that the
//! test declares differently, and `shape/server-only`.
//!
//! `cargo run -p sente-lite-tests --bin schema_server -- --addr 127.0.0.1:4300`
//! prints `listening ADDR` once it accepts connections; `--no-schema` keeps it
//! from publishing its description.

mod announce;
#[path = "../schema/shared.rs"]
mod shared;

use clap::Parser;
use sente_lite::{Router, Server};
use serde::{Deserialize, Serialize};

/// Schema test server.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long)]
    addr: String,
    /// Do not publish the description at `/schema`.
    #[arg(long)]
    no_schema: bool,
}

/// A greeting: here with one field (the test's has two).
#[sente_lite::event("shape/greet")]
#[derive(Debug, Serialize, Deserialize)]
struct Greet {
    name: String,
}

/// Asks for a profile: the same payload as the test's, another reply.
#[sente_lite::event("shape/get", reply = Profile)]
#[derive(Debug, Serialize, Deserialize)]
struct GetProfile {
    id: u64,
}

/// The reply of `shape/get`: here the age is a number.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
struct Profile {
    name: String,
    age: u32,
}

/// Declared by the server only.
#[sente_lite::event("shape/server-only")]
#[derive(Debug, Serialize, Deserialize)]
struct ServerOnly;

#[sente_lite::handler]
async fn same(_event: shared::Same) {}

#[sente_lite::handler]
async fn greet(_event: Greet) {}

#[sente_lite::handler]
async fn get(req: GetProfile) -> Profile {
    Profile {
        name: format!("user {}", req.id),
        age: 36,
    }
}

#[sente_lite::handler]
async fn server_only(_event: ServerOnly) {}

#[tokio::main(worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let server = Server::builder()
        .router(
            Router::new()
                .handler(same)
                .handler(greet)
                .handler(get)
                .handler(server_only),
        )
        .publish_schema(!args.no_schema)
        .bind(args.addr)
        .await?;
    announce::listening(&server).await?;
    server.closed().await;
    Ok(())
}
