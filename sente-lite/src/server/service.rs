//! The server as a tower `Service` of HTTP requests ([`ServerService`]), and
//! a `Layer` that puts it in front of an application's own service
//! ([`ServerLayer`]).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{Either, Full};
use tower_layer::Layer;
use tower_service::Service;

use super::Server;
use super::hub::Shared;

/// The peer's address, put in a request's extensions by the code that
/// accepted its connection, for the server's per-address limits, logs and
/// authentication hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteAddr(pub SocketAddr);

/// A boxed future of the server's answer.
pub type ServiceFuture =
    Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send>>;

/// The server as a tower [`Service`] of HTTP requests ([`Server::service`]).
/// Cheap to clone.
///
/// [`ServerBuilder::bind`](super::ServerBuilder::bind) serves connections
/// with this very service; an application with its own HTTP stack mounts it:
///
/// - axum: `Router::route_service("/ws", server.service())` (and the other
///   paths it should answer), `.layer(server.layer())` around the whole
///   application, or [`Server::axum_router`] (feature `axum`);
/// - hyper: `serve_connection(io, service).with_upgrades()`, the upgrades
///   being what WebSocket connections need (see [`Server::service`]).
///
/// It answers the WebSocket endpoint (the upgrade needs hyper's upgrade
/// extension on the request, as hyper and axum put it), `/health`,
/// `/metrics`, `/schema`, the HTTP API when it is on, and the builder's
/// pages; any other path is a 404. The peer's address comes from a
/// [`RemoteAddr`] extension (or axum's `ConnectInfo<SocketAddr>`, feature
/// `axum`).
#[derive(Clone)]
pub struct ServerService {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ServerService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerService")
            .field("path", &self.shared.config.path)
            .finish_non_exhaustive()
    }
}

impl ServerService {
    /// Whether `path` is one this service answers when it stands in front of
    /// another ([`ServerLayer`]): the WebSocket endpoint, `/health`,
    /// `/metrics`, `/schema` (when published), the HTTP API (when on) and the
    /// builder's pages.
    pub fn serves(&self, path: &str) -> bool {
        let config = &self.shared.config;
        path == config.path
            || path == "/health"
            || path == "/metrics"
            || (path == crate::schema::DESCRIPTION_PATH && config.publish_schema)
            || (config.http_api.is_some() && path.starts_with(super::http_api::PREFIX))
            || self.shared.pages.contains_key(path)
    }
}

fn remote_of<B>(request: &Request<B>) -> Option<SocketAddr> {
    if let Some(RemoteAddr(addr)) = request.extensions().get::<RemoteAddr>() {
        return Some(*addr);
    }
    #[cfg(feature = "axum")]
    if let Some(info) = request
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(info.0);
    }
    None
}

impl<B> Service<Request<B>> for ServerService
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = ServiceFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        let remote = remote_of(&request);
        Box::pin(async move { Ok(super::http::handle(request, shared, remote).await) })
    }
}

/// A tower [`Layer`] that puts the server in front of an application's
/// service ([`Server::layer`]): the paths the server answers
/// ([`ServerService::serves`]) go to it, every other request to the
/// application. The answer's body is the server's or the application's
/// ([`Either`]).
#[derive(Clone, Debug)]
pub struct ServerLayer {
    service: ServerService,
}

impl<S> Layer<S> for ServerLayer {
    type Service = WithServer<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WithServer {
            server: self.service.clone(),
            inner,
        }
    }
}

/// An application's service with the server in front of it ([`ServerLayer`]).
#[derive(Clone, Debug)]
pub struct WithServer<S> {
    server: ServerService,
    inner: S,
}

impl<S, B, ResBody> Service<Request<B>> for WithServer<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Either<Full<Bytes>, ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if self.server.serves(request.uri().path()) {
            let answer = self.server.call(request);
            return Box::pin(async move {
                let Ok(response) = answer.await;
                Ok(response.map(Either::Left))
            });
        }
        // The ready clone answers; the one left behind is polled ready next time.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let answer = inner.call(request);
        Box::pin(async move { Ok(answer.await?.map(Either::Right)) })
    }
}

impl Server {
    /// The server as a tower [`Service`] of HTTP requests: what
    /// [`ServerBuilder::bind`](super::ServerBuilder::bind) serves, for an
    /// application's own HTTP stack (see [`ServerService`]).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use hyper::body::Incoming;
    /// use hyper_util::rt::TokioIo;
    /// use sente_lite::server::RemoteAddr;
    /// use tower_service::Service as _;
    ///
    /// let server = sente_lite::Server::builder().build()?;
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    /// loop {
    ///     let (stream, remote) = listener.accept().await?;
    ///     let sente = server.service();
    ///     // The peer's address goes with each request, for limits and logs.
    ///     let service = hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
    ///         request.extensions_mut().insert(RemoteAddr(remote));
    ///         sente.clone().call(request)
    ///     });
    ///     let connection = hyper::server::conn::http1::Builder::new()
    ///         .serve_connection(TokioIo::new(stream), service)
    ///         .with_upgrades(); // WebSocket connections are upgrades
    ///     tokio::spawn(connection);
    /// }
    /// # }
    /// ```
    pub fn service(&self) -> ServerService {
        ServerService {
            shared: Arc::clone(&self.shared),
        }
    }

    /// A tower [`Layer`] that puts the server in front of an application's
    /// service: the server's paths ([`ServerService::serves`]) go to the
    /// server, the rest to the application.
    ///
    /// ```no_run
    /// # #[cfg(feature = "axum")]
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = sente_lite::Server::builder().build()?;
    /// let app = axum::Router::new()
    ///     .route("/", axum::routing::get(|| async { "the app" }))
    ///     .layer(server.layer());
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    /// axum::serve(listener, app).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn layer(&self) -> ServerLayer {
        ServerLayer {
            service: self.service(),
        }
    }
}
