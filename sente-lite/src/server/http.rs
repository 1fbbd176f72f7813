//! HTTP on the server's listener: the WebSocket upgrade, `/health`, and static pages.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tungstenite::protocol::Role;

use super::config::OriginPolicy;
use super::hub::Shared;
use super::{HandshakeRequest, run_connection};
use crate::Codec;

/// What wraps accepted sockets: nothing, or TLS.
#[cfg(feature = "tls")]
pub(crate) type Acceptor = Option<tokio_rustls::TlsAcceptor>;
/// What wraps accepted sockets: nothing (TLS needs the `tls` feature).
#[cfg(not(feature = "tls"))]
pub(crate) type Acceptor = Option<std::convert::Infallible>;

/// How long a TLS handshake may take before the socket is dropped.
#[cfg(feature = "tls")]
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves HTTP (and upgrades) on one accepted socket.
async fn serve<I>(io: I, shared: Arc<Shared>, remote: SocketAddr)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(handle(req, shared, Some(remote)).await) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades()
        .await;
    if let Err(err) = served {
        tracing::debug!(target: "sente_lite", error = %err, "http connection ended with an error");
    }
}

/// Accepts TCP connections until the server starts draining.
pub(crate) async fn accept_loop(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    acceptor: Acceptor,
) {
    loop {
        let stop = shared.stop_accepting.notified();
        tokio::select! {
            () = stop => break,
            accepted = listener.accept() => {
                let (stream, remote) = match accepted {
                    Ok(pair) => pair,
                    Err(err) => {
                        // Out of file descriptors and the like: back off briefly.
                        tracing::warn!(target: "sente_lite", error = %err, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let shared = Arc::clone(&shared);
                match &acceptor {
                    None => {
                        tokio::spawn(serve(stream, shared, remote));
                    }
                    #[cfg(feature = "tls")]
                    Some(acceptor) => {
                        let accepting = acceptor.accept(stream);
                        tokio::spawn(async move {
                            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, accepting).await {
                                Ok(Ok(tls)) => serve(tls, shared, remote).await,
                                Ok(Err(err)) => tracing::debug!(target: "sente_lite", error = %err, "TLS handshake failed"),
                                Err(_) => tracing::debug!(target: "sente_lite", "TLS handshake timed out"),
                            }
                        });
                    }
                    #[cfg(not(feature = "tls"))]
                    Some(never) => match *never {},
                }
            }
        }
    }
    tracing::debug!(target: "sente_lite", "stopped accepting");
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(body.into()))
        .unwrap_or_default()
}

/// Routes one HTTP request.
pub(crate) async fn handle<B: Send + 'static>(
    request: Request<B>,
    shared: Arc<Shared>,
    remote: Option<SocketAddr>,
) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    if path == shared.config.path {
        return upgrade(request, shared, remote).await;
    }
    if path == "/health" {
        let health = super::Server {
            shared: Arc::clone(&shared),
        }
        .health();
        let body = serde_json::to_vec(&health).unwrap_or_default();
        return Response::builder()
            .status(if health.status == "ok" {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            })
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_default();
    }
    if path == "/metrics" {
        let server = super::Server {
            shared: Arc::clone(&shared),
        };
        return Response::builder()
            .header(header::CONTENT_TYPE, super::metrics::CONTENT_TYPE)
            .body(Full::new(Bytes::from(server.metrics_text())))
            .unwrap_or_default();
    }
    if let Some((content_type, body)) = shared.pages.get(path) {
        return Response::builder()
            .header(header::CONTENT_TYPE, content_type.as_str())
            .body(Full::new(body.clone()))
            .unwrap_or_default();
    }
    text(StatusCode::NOT_FOUND, "not found\n")
}

fn header_has_token(request: &Request<impl Sized>, name: header::HeaderName, token: &str) -> bool {
    request
        .headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn origin_allowed(policy: &OriginPolicy, request: &Request<impl Sized>) -> bool {
    let Some(origin) = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return true;
    };
    match policy {
        OriginPolicy::Any => true,
        OriginPolicy::AllowList(allowed) => allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)),
        OriginPolicy::SameHost => {
            let host = request
                .headers()
                .get(header::HOST)
                .and_then(|v| v.to_str().ok());
            let origin_host = origin
                .split_once("://")
                .map(|(_, rest)| rest.trim_end_matches('/'));
            matches!((host, origin_host), (Some(h), Some(o)) if h.eq_ignore_ascii_case(o))
        }
    }
}

/// Checks an upgrade request, answers 101 and starts the connection, or refuses it.
async fn upgrade<B: Send + 'static>(
    mut request: Request<B>,
    shared: Arc<Shared>,
    remote: Option<SocketAddr>,
) -> Response<Full<Bytes>> {
    let refuse = |shared: &Shared, status: StatusCode, why: &str| {
        crate::stats::bump(&shared.counters.handshakes_rejected);
        tracing::debug!(target: "sente_lite", status = status.as_u16(), why, "upgrade refused");
        text(status, format!("{why}\n"))
    };
    if request.method() != http::Method::GET
        || !header_has_token(&request, header::CONNECTION, "upgrade")
        || !header_has_token(&request, header::UPGRADE, "websocket")
    {
        return refuse(
            &shared,
            StatusCode::UPGRADE_REQUIRED,
            "this endpoint speaks WebSocket",
        );
    }
    if request
        .headers()
        .get(header::SEC_WEBSOCKET_VERSION)
        .and_then(|v| v.to_str().ok())
        != Some("13")
    {
        return refuse(
            &shared,
            StatusCode::BAD_REQUEST,
            "unsupported Sec-WebSocket-Version (13 is required)",
        );
    }
    let Some(key) = request.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return refuse(
            &shared,
            StatusCode::BAD_REQUEST,
            "missing Sec-WebSocket-Key",
        );
    };
    if shared.draining.load(Ordering::Acquire) {
        return refuse(
            &shared,
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        );
    }
    if !origin_allowed(&shared.config.origins, &request) {
        return refuse(&shared, StatusCode::FORBIDDEN, "origin not allowed");
    }
    let offered: Vec<&str> = request
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let asked_for_protocol = !offered.is_empty();
    let codec = match Codec::negotiate(offered) {
        Some(codec) if asked_for_protocol => codec,
        Some(_) => shared.config.default_codec,
        None => {
            return refuse(
                &shared,
                StatusCode::BAD_REQUEST,
                "no supported subprotocol (sente-lite.json.v1, sente-lite.postcard.v1)",
            );
        }
    };
    let user_id = match &shared.auth {
        None => None,
        Some(auth) => {
            let seen = HandshakeRequest {
                uri: request.uri().clone(),
                headers: request.headers().clone(),
                remote_addr: remote,
            };
            match auth(seen).await {
                Ok(user) => user,
                Err(rejection) => return refuse(&shared, rejection.status, &rejection.message),
            }
        }
    };
    // Reserve a connection slot before answering.
    let limit = shared.config.limits.max_connections as u64;
    if shared
        .counters
        .connections_open
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < limit).then_some(n + 1)
        })
        .is_err()
    {
        return refuse(
            &shared,
            StatusCode::SERVICE_UNAVAILABLE,
            "too many connections",
        );
    }
    let on_upgrade = hyper::upgrade::on(&mut request);
    let ws_config = shared.config.limits.websocket_config();
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(ws_config),
                )
                .await;
                // Boxed: the stream is moved through several futures, and a
                // pointer is all each of them then keeps (an idle connection's
                // task is most of its memory).
                run_connection(Box::pin(ws), shared, codec, user_id, remote).await;
            }
            Err(err) => {
                shared
                    .counters
                    .connections_open
                    .fetch_sub(1, Ordering::AcqRel);
                tracing::debug!(target: "sente_lite", error = %err, "upgrade failed");
            }
        }
    });
    let mut response = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(
            header::SEC_WEBSOCKET_ACCEPT,
            tungstenite::handshake::derive_accept_key(key.as_bytes()),
        );
    if asked_for_protocol {
        response = response.header(header::SEC_WEBSOCKET_PROTOCOL, codec.subprotocol());
    }
    response.body(Full::new(Bytes::new())).unwrap_or_default()
}
