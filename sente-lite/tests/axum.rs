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
    let addr = serve(app).await;

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

    let page = get(addr, "/").await;
    assert!(page.ends_with("the app"), "{page}");
}

/// Numbers requests for `SetRequestIdLayer`.
#[derive(Clone, Default)]
struct Numbered(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl tower_http::request_id::MakeRequestId for Numbered {
    fn make_request_id<B>(
        &mut self,
        _request: &http::Request<B>,
    ) -> Option<tower_http::request_id::RequestId> {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        Some(tower_http::request_id::RequestId::new(
            n.to_string().parse().unwrap(),
        ))
    }
}

/// Serves `app` on a free port; its address.
async fn serve(app: axum::Router) -> std::net::SocketAddr {
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
    addr
}

/// `GET path` over a fresh connection: the whole response as text.
async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut http = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    http.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    http.read_to_string(&mut response).await.unwrap();
    response
}

/// A client of `addr` asks the server to double 21.
async fn doubled(addr: std::net::SocketAddr) -> u32 {
    let client = sente_lite::Client::builder(format!("ws://{addr}/ws"))
        .connect()
        .await
        .unwrap();
    let answer = client.request(&Double(21)).await.unwrap();
    client.disconnect().await;
    answer
}

#[tokio::test]
async fn the_service_mounts_with_route_service_under_the_apps_tower_layers() {
    use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
    let sente = Server::builder()
        .router(Router::new().handler(double))
        .auth(|request| async move {
            // The peer's address reached the server through axum's ConnectInfo.
            assert!(request.remote_addr.is_some_and(|a| a.ip().is_loopback()));
            Ok(None)
        })
        .build()
        .unwrap();
    let header = http::HeaderName::from_static("x-request-id");
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "the app" }))
        .route_service("/ws", sente.service())
        .route_service("/health", sente.service())
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            http::StatusCode::REQUEST_TIMEOUT,
            std::time::Duration::from_secs(5),
        ))
        .layer(PropagateRequestIdLayer::new(header.clone()))
        .layer(SetRequestIdLayer::new(header, Numbered::default()));
    let addr = serve(app).await;

    assert_eq!(doubled(addr).await, 42);
    let page = get(addr, "/").await;
    assert!(page.ends_with("the app"), "{page}");
    assert!(
        page.to_ascii_lowercase().contains("x-request-id: "),
        "{page}"
    );
    let health = get(addr, "/health").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(
        health.to_ascii_lowercase().contains("x-request-id: "),
        "{health}"
    );
    assert_eq!(sente.stats().connections_total, 1);
}

#[tokio::test]
async fn the_layer_puts_the_server_in_front_of_an_app() {
    let sente = Server::builder()
        .router(Router::new().handler(double))
        .build()
        .unwrap();
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "the app" }))
        .route("/health", axum::routing::get(|| async { "the app's own" }))
        .layer(sente.layer());
    let addr = serve(app).await;

    assert_eq!(doubled(addr).await, 42);
    assert!(get(addr, "/").await.ends_with("the app"));
    // The server's paths are the server's.
    let health = get(addr, "/health").await;
    assert!(health.contains(r#""status":"ok""#), "{health}");
    let missing = get(addr, "/elsewhere").await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
}

#[tokio::test]
async fn plain_hyper_serves_the_service() {
    use hyper_util::rt::TokioIo;
    use sente_lite::server::RemoteAddr;
    use tower_service::Service as _;

    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let sente = Server::builder()
        .router(Router::new().handler(double))
        .auth({
            let seen = std::sync::Arc::clone(&seen);
            move |request| {
                *seen.lock().unwrap() = request.remote_addr;
                async move { Ok(None) }
            }
        })
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = sente.service();
    tokio::spawn(async move {
        loop {
            let (stream, remote) = listener.accept().await.unwrap();
            let sente = service.clone();
            let service = hyper::service::service_fn(
                move |mut request: http::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(RemoteAddr(remote));
                    sente.clone().call(request)
                },
            );
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades(),
            );
        }
    });

    assert_eq!(doubled(addr).await, 42);
    let remote = seen
        .lock()
        .unwrap()
        .expect("the hook saw the peer's address");
    assert!(remote.ip().is_loopback() && remote.port() != addr.port());
    assert!(get(addr, "/health").await.starts_with("HTTP/1.1 200"));
}
