//! HTTP on the server's listener: the WebSocket upgrade, `/health`, and static pages.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::config::OriginPolicy;
use super::hub::Shared;
use super::per_address::{PerAddress, SlotCell};
use super::upgraded::UpgradedIo;
use super::{HandshakeRequest, run_connection};
use crate::Codec;
use crate::connection::Parkable;

/// What wraps accepted sockets: nothing, or TLS.
#[cfg(feature = "tls")]
pub(crate) type Acceptor = Option<tokio_rustls::TlsAcceptor>;
/// What wraps accepted sockets: nothing (TLS needs the `tls` feature).
#[cfg(not(feature = "tls"))]
pub(crate) type Acceptor = Option<std::convert::Infallible>;

/// How long a TLS handshake may take before the socket is dropped.
#[cfg(feature = "tls")]
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection's last progress, in [`now_ms`] milliseconds, or [`STOPPED`].
type Progress = Arc<AtomicU64>;

/// The progress stamp of a connection that upgraded or ended: stamps stop.
const STOPPED: u64 = u64::MAX;

/// Milliseconds on a clock shared by every connection's progress stamp.
fn now_ms() -> u64 {
    static START: LazyLock<Instant> = LazyLock::new(Instant::now);
    u64::try_from(START.elapsed().as_millis()).unwrap_or(STOPPED - 1)
}

/// An accepted socket that stamps its [`Progress`] whenever a byte is read
/// or written, until the stamp is [`STOPPED`].
pub(super) struct Watched<I> {
    io: I,
    progress: Progress,
}

impl<I> Watched<I> {
    /// The socket, once the connection has upgraded (nothing is stamped
    /// after that).
    pub(super) fn into_inner(self) -> I {
        self.io
    }

    fn stamp(&self) {
        if self.progress.load(Ordering::Relaxed) != STOPPED {
            self.progress.store(now_ms(), Ordering::Relaxed);
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.stamp();
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.stamp();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.stamp();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Serves HTTP (and upgrades) on one accepted socket.
///
/// hyper closes the connection when a request head takes longer than
/// `Limits::http_header_timeout` (counted again each time a kept-alive
/// connection waits for its next request); this closes it when no byte has
/// moved for `Limits::http_idle_timeout`. Neither applies once the connection
/// has upgraded.
///
/// The connection holds a slot of its remote address (when the server limits
/// connections per address) for as long as it lives: the upgrade takes the
/// slot into the WebSocket's task. Without a slot to take, every request is
/// answered 429 and the connection is closed.
async fn serve<I>(io: I, shared: Arc<Shared>, remote: SocketAddr)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = &shared.config.limits;
    let (slot, refused) = match limits.max_connections_per_address {
        None => (None, false),
        Some(max) => match PerAddress::take(&shared.per_address, remote.ip(), max) {
            Some(slot) => (Some(slot), false),
            None => {
                crate::stats::bump(&shared.counters.address_refusals);
                tracing::debug!(target: "sente_lite", %remote, "too many connections from this address");
                (None, true)
            }
        },
    };
    let slot = SlotCell::new(slot);
    let idle_ms = u64::try_from(limits.http_idle_timeout.as_millis()).unwrap_or(STOPPED - 1);
    let progress: Progress = Arc::new(AtomicU64::new(now_ms()));
    let io = Watched {
        io,
        progress: Arc::clone(&progress),
    };
    // The server's own tower service answers; this connection adds the
    // peer's address and its per-address slot to each request.
    let server = super::Server {
        shared: Arc::clone(&shared),
    }
    .service();
    let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(slot.clone());
        req.extensions_mut().insert(super::RemoteAddr(remote));
        let answer = tower_service::Service::call(&mut server.clone(), req);
        async move {
            if refused {
                let mut response = text(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many connections from this address\n",
                );
                response.headers_mut().insert(
                    header::CONNECTION,
                    header::HeaderValue::from_static("close"),
                );
                return Ok::<_, Infallible>(response);
            }
            answer.await
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(!refused)
        .header_read_timeout(limits.http_header_timeout);
    let mut connection = std::pin::pin!(
        builder
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades()
    );
    let served = loop {
        let quiet = now_ms().saturating_sub(progress.load(Ordering::Relaxed));
        if quiet >= idle_ms {
            break None;
        }
        tokio::select! {
            served = connection.as_mut() => break Some(served),
            () = tokio::time::sleep(Duration::from_millis(idle_ms - quiet)) => {}
        }
    };
    progress.store(STOPPED, Ordering::Relaxed);
    match served {
        Some(Ok(())) => {}
        None => {
            crate::stats::bump(&shared.counters.http_timeouts);
            tracing::debug!(target: "sente_lite", %remote, "idle http connection closed");
        }
        Some(Err(err)) if err.is_timeout() => {
            crate::stats::bump(&shared.counters.http_timeouts);
            tracing::debug!(target: "sente_lite", %remote, "http request head timed out: connection closed");
        }
        Some(Err(err)) => {
            tracing::debug!(target: "sente_lite", error = %err, "http connection ended with an error");
        }
    }
}

/// How long the accept loop waits after a failed `accept()` before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Failed accepts, reported at most once a second.
#[derive(Default)]
struct AcceptFailures {
    last_report: Option<Instant>,
    unreported: u64,
}

impl AcceptFailures {
    fn failed(&mut self, shared: &Shared, err: &std::io::Error) {
        crate::stats::bump(&shared.counters.accept_failures);
        let now = Instant::now();
        if self
            .last_report
            .is_some_and(|last| now.duration_since(last) < Duration::from_secs(1))
        {
            self.unreported += 1;
            return;
        }
        tracing::warn!(
            target: "sente_lite",
            error = %err,
            failures_since_last_report = self.unreported,
            "accept failed, retrying in 50 ms"
        );
        self.last_report = Some(now);
        self.unreported = 0;
    }
}

/// Accepts TCP connections until the server starts draining.
///
/// When `accept()` fails (most often because the process is out of file
/// descriptors: EMFILE or ENFILE), the failure is counted
/// (`errors.accept_failed`), reported at most once a second, and the loop waits
/// [`ACCEPT_BACKOFF`] before trying again. Connections meanwhile wait in the
/// kernel's listen backlog and are accepted once descriptors free up (the
/// header and idle timeouts free those of stalled HTTP connections).
pub(crate) async fn accept_loop(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    acceptor: Acceptor,
) {
    let mut failures = AcceptFailures::default();
    loop {
        let stop = shared.stop_accepting.notified();
        tokio::select! {
            () = stop => break,
            accepted = listener.accept() => {
                let (stream, remote) = match accepted {
                    Ok(pair) => pair,
                    Err(err) => {
                        failures.failed(&shared, &err);
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
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

/// Checks the host a request is for: the authority of an absolute-form
/// target, which takes the place of `Host` (RFC 9112 §3.2.2), or the one
/// `Host` header. More than one `Host`, or none in an HTTP/1.1 request, is a
/// 400 (RFC 9112 §3.2); a host the server does not answer is a 403, and so is
/// an HTTP/1.0 request without one unless the server answers any host.
fn check_host<B>(request: &Request<B>, shared: &Shared) -> Result<(), (StatusCode, &'static str)> {
    let policy = &shared.config.hosts;
    let bound = *super::hub::lock(&shared.local_addr);
    let not_served = (
        StatusCode::FORBIDDEN,
        "this server does not answer for that Host (see the server's `hosts` setting)",
    );
    if let Some(authority) = request.uri().authority() {
        return if policy.allows(authority.as_str(), bound) {
            Ok(())
        } else {
            Err(not_served)
        };
    }
    let mut hosts = request.headers().get_all(header::HOST).iter();
    let (first, second) = (hosts.next(), hosts.next());
    match (first, second) {
        (Some(_), Some(_)) => Err((
            StatusCode::BAD_REQUEST,
            "a request has one Host header, not several",
        )),
        (None, _) if request.version() >= http::Version::HTTP_11 => Err((
            StatusCode::BAD_REQUEST,
            "an HTTP/1.1 request needs a Host header",
        )),
        (None, _) if policy.allows_any(bound) => Ok(()),
        (None, _) => Err(not_served),
        (Some(host), None) => {
            if host.to_str().is_ok_and(|host| policy.allows(host, bound)) {
                Ok(())
            } else {
                Err(not_served)
            }
        }
    }
}

/// Routes one HTTP request.
pub(crate) async fn handle<B>(
    request: Request<B>,
    shared: Arc<Shared>,
    remote: Option<SocketAddr>,
) -> Response<Full<Bytes>>
where
    B: hyper::body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let path = request.uri().path();
    if let Err((status, why)) = check_host(&request, &shared) {
        crate::stats::bump(&shared.counters.host_refusals);
        if path == shared.config.path {
            crate::stats::bump(&shared.counters.handshakes_rejected);
        }
        tracing::debug!(target: "sente_lite", path, why, "request refused for its Host");
        return text(status, format!("{why}\n"));
    }
    if path == shared.config.path {
        if is_probe(&request) {
            return probe(request, shared, remote).await;
        }
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
    if path == crate::schema::DESCRIPTION_PATH && shared.config.publish_schema {
        return Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")
            .body(Full::new(schema_body()))
            .unwrap_or_default();
    }
    if path.starts_with(super::http_api::PREFIX)
        && let Some(config) = &shared.config.http_api
    {
        return super::http_api::handle(request, &shared, config).await;
    }
    if let Some((content_type, body)) = shared.pages.get(path) {
        return Response::builder()
            .header(header::CONTENT_TYPE, content_type.as_str())
            .body(Full::new(body.clone()))
            .unwrap_or_default();
    }
    text(StatusCode::NOT_FOUND, "not found\n")
}

/// The body of `GET /schema`: this program's description, built once.
fn schema_body() -> Bytes {
    static BODY: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
    BODY.get_or_init(|| Bytes::from(crate::schema::Description::of_this_program().to_json()))
        .clone()
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

/// Whether `key` is the base64 encoding of 16 bytes (RFC 6455 §4.2.1).
fn valid_key(key: &header::HeaderValue) -> bool {
    key.len() == 24
        && data_encoding::BASE64
            .decode(key.as_bytes())
            .is_ok_and(|bytes| bytes.len() == 16)
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

/// The query parameter that makes a plain `GET` of the endpoint an
/// authentication probe (`docs/PROTOCOL.md` §5, "Probing a refusal").
pub(crate) const PROBE_PARAM: &str = "sl_probe";

/// A `GET` of the endpoint without `Upgrade`, whose query has `sl_probe=1`.
fn is_probe(request: &Request<impl Sized>) -> bool {
    request.method() == http::Method::GET
        && !header_has_token(request, header::UPGRADE, "websocket")
        && request.uri().query().is_some_and(|query| {
            query
                .split('&')
                .any(|pair| pair == "sl_probe=1" || pair == PROBE_PARAM)
        })
}

/// Answers whether an upgrade with this request's credentials would be
/// accepted: the checks after the WebSocket headers' (draining, origin, the
/// authentication hook, room for a connection), without opening anything.
/// 204 when it would; the refusal's status and one-line body when not. A page
/// reads the status (CORS allows its origin when the origin policy does),
/// which a browser's WebSocket never shows it.
async fn probe<B>(
    request: Request<B>,
    shared: Arc<Shared>,
    remote: Option<SocketAddr>,
) -> Response<Full<Bytes>> {
    let origin = request.headers().get(header::ORIGIN).cloned();
    let origin_ok = origin_allowed(&shared.config.origins, &request);
    let verdict = if shared.draining.load(Ordering::Acquire) {
        Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down".to_owned(),
        ))
    } else if !origin_ok {
        Err((StatusCode::FORBIDDEN, "origin not allowed".to_owned()))
    } else {
        let accepted = match &shared.auth {
            None => Ok(()),
            Some(auth) => auth(HandshakeRequest {
                uri: request.uri().clone(),
                headers: request.headers().clone(),
                remote_addr: remote,
            })
            .await
            .map(|_| ())
            .map_err(|rejection| (rejection.status, rejection.message)),
        };
        accepted.and_then(|()| {
            let full = shared.counters.connections_open.load(Ordering::Acquire)
                >= shared.config.limits.max_connections as u64;
            if full {
                Err((
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many connections".to_owned(),
                ))
            } else {
                Ok(())
            }
        })
    };
    let mut response = match verdict {
        Ok(()) => Response::builder()
            .status(StatusCode::NO_CONTENT)
            .body(Full::new(Bytes::new()))
            .unwrap_or_default(),
        Err((status, why)) => {
            tracing::debug!(target: "sente_lite", status = status.as_u16(), why, "probe refused");
            text(status, format!("{why}\n"))
        }
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    headers.insert(header::VARY, header::HeaderValue::from_static("Origin"));
    if let (Some(origin), true) = (origin, origin_ok) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            header::HeaderValue::from_static("true"),
        );
    }
    response
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
    if !valid_key(&key) {
        return refuse(
            &shared,
            StatusCode::BAD_REQUEST,
            "Sec-WebSocket-Key must be the base64 encoding of 16 bytes (24 characters)",
        );
    }
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
    // The remote address's slot now belongs to the WebSocket's task.
    let slot = request
        .extensions()
        .get::<SlotCell>()
        .and_then(SlotCell::take);
    tokio::spawn(async move {
        let _slot = slot;
        match on_upgrade.await {
            Ok(upgraded) => {
                // Parked until it has something to read or write: an idle
                // connection holds no WebSocket buffers. Boxed: the stream is
                // moved through several futures, and a pointer is all each of
                // them then keeps.
                let ws = Parkable::new(UpgradedIo::new(upgraded), ws_config);
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
