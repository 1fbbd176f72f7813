//! The smallest server: every `echo/say` request is answered with its own text.
//!
//! Run with `cargo run -p sente-lite-examples --example echo`, then talk to it
//! from any WebSocket tool, for example in a browser console on any page:
//!
//! ```text
//! ws = new WebSocket("ws://127.0.0.1:3001/ws");
//! ws.onmessage = (m) => console.log(m.data);
//! ws.send(JSON.stringify(["echo/say", {"text": "hi"}, 1]));   // -> ["sl/ok",1,"hi"]
//! ```
//!
//! (The browser sends an `Origin` header: allow it with `--any-origin`.)

use clap::Parser;
use sente_lite::server::OriginPolicy;
use sente_lite::{Router, Server};
use serde::{Deserialize, Serialize};

/// Echo server.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3001")]
    addr: String,
    /// Accept browsers from any origin.
    #[arg(long)]
    any_origin: bool,
}

/// Ask the server to say something back.
#[sente_lite::event("echo/say", reply = String)]
#[derive(Debug, Serialize, Deserialize)]
struct Say {
    text: String,
}

#[sente_lite::handler]
async fn say(req: Say) -> String {
    req.text
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let args = Args::parse();
    let server = Server::builder()
        .router(Router::new().handler(say))
        .origins(if args.any_origin {
            OriginPolicy::Any
        } else {
            OriginPolicy::SameHost
        })
        .bind(args.addr)
        .await?;
    tracing::info!("echo server at {}", server.ws_url());
    tokio::signal::ctrl_c().await?;
    server.shutdown(Default::default()).await;
    Ok(())
}
