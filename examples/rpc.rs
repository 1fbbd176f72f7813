//! Request/reply in both directions, in one program: a server and a native
//! client, typed end to end.
//!
//! Run with `cargo run -p sente-lite-examples --example rpc`. It starts a server
//! on a free port, connects a postcard client, and shows a typed request, an
//! application error, a deadline, and the server asking the client.

use std::time::Duration;

use sente_lite::{Client, Codec, Ctx, ErrorReply, RequestError, Router, Server};
use serde::{Deserialize, Serialize};

/// Divide two numbers.
#[sente_lite::event("math/divide", reply = f64)]
#[derive(Debug, Serialize, Deserialize)]
struct Divide {
    a: f64,
    b: f64,
}

/// Think for a while.
#[sente_lite::event("math/ponder", reply = String)]
#[derive(Debug, Serialize, Deserialize)]
struct Ponder {
    ms: u64,
}

/// The server asks the client for its version.
#[sente_lite::event("client/version", reply = String)]
#[derive(Debug, Serialize, Deserialize)]
struct Version;

#[sente_lite::handler]
async fn divide(req: Divide) -> Result<f64, ErrorReply> {
    if req.b == 0.0 {
        return Err(ErrorReply::new(
            "math/divide-by-zero",
            "cannot divide by zero",
        ));
    }
    Ok(req.a / req.b)
}

#[sente_lite::handler]
async fn ponder(ctx: Ctx, req: Ponder) -> String {
    // Ask the client something while we are at it.
    let version = ctx
        .request(&Version)
        .await
        .unwrap_or_else(|e| format!("unknown ({e})"));
    tokio::time::sleep(Duration::from_millis(req.ms)).await;
    format!("pondered {} ms for a client at version {version}", req.ms)
}

#[sente_lite::handler]
async fn answer_version(_req: Version) -> String {
    "1.2.3".into()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::builder()
        .router(Router::new().handler(divide).handler(ponder))
        .bind("127.0.0.1:0")
        .await?;
    let client = Client::builder(server.ws_url())
        .codec(Codec::Postcard)
        .router(Router::new().handler(answer_version))
        .connect()
        .await?;

    let quotient = client.request(&Divide { a: 1.0, b: 4.0 }).await?;
    println!("1 / 4 = {quotient}");

    match client.request(&Divide { a: 1.0, b: 0.0 }).await {
        Err(RequestError::Remote(err)) => println!("1 / 0 -> error {}: {}", err.code, err.message),
        other => println!("unexpected: {other:?}"),
    }

    println!("{}", client.request(&Ponder { ms: 50 }).await?);

    match client
        .request_within(&Ponder { ms: 2_000 }, Duration::from_millis(200))
        .await
    {
        Err(RequestError::Timeout(after)) => println!("a slow request gave up after {after:?}"),
        other => println!("unexpected: {other:?}"),
    }

    client.disconnect().await;
    server.shutdown(Default::default()).await;
    Ok(())
}
