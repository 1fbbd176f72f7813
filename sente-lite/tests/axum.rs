//! The server mounted in an axum application, beside the application's own routes.

use futures_util::{SinkExt, StreamExt};
use sente_lite::{Message, Router, Server};
use serde::{Deserialize, Serialize};

#[sente_lite::event("axum/double", reply = u32)]
#[derive(Debug, Serialize, Deserialize)]
struct Double(u32);

#[sente_lite::handler]
async fn double(req: Double) -> u32 {
    req.0 * 2
}

#[tokio::test]
async fn a_mounted_server_answers_next_to_the_apps_routes() {
    let sente = Server::builder()
        .router(Router::new().handler(double))
        .build()
        .unwrap();
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "the app" }))
        .merge(sente.axum_router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap();
    });

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    let handshake = ws.next().await.unwrap().unwrap();
    assert!(
        handshake
            .to_text()
            .unwrap()
            .starts_with(r#"["sl/handshake","#)
    );
    ws.send(Message::text(r#"["axum/double",21,1]"#))
        .await
        .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap().to_text().unwrap(),
        r#"["sl/ok",1,42]"#
    );
    assert_eq!(sente.stats().connections, 1);

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut http = tokio::net::TcpStream::connect(addr).await.unwrap();
    http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut page = String::new();
    http.read_to_string(&mut page).await.unwrap();
    assert!(page.ends_with("the app"), "{page}");
}
