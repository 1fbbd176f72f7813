//! Mounting the server in an axum application (feature `axum`).

use super::Server;

impl Server {
    /// An axum router that serves this server's WebSocket endpoint (at its
    /// configured path), `/health`, `/schema` and, when it is on, the HTTP
    /// API (`/api/...`); merge it into your application:
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let sente = sente_lite::Server::builder().build()?;
    /// let app = axum::Router::new()
    ///     .route("/", axum::routing::get(|| async { "hello" }))
    ///     .merge(sente.axum_router());
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    /// axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// Serve the application with `into_make_service_with_connect_info::<SocketAddr>()`
    /// so that connections know their peer's address (optional). The same
    /// [`Server::service`] mounts on any path with `route_service`, and
    /// [`Server::layer`] puts the server in front of a whole application.
    pub fn axum_router(&self) -> axum::Router {
        let mut router = axum::Router::new();
        let mut paths = vec![
            self.config().path.clone(),
            "/health".to_owned(),
            crate::schema::DESCRIPTION_PATH.to_owned(),
        ];
        if self.config().http_api.is_some() {
            paths.push("/api/{*request}".to_owned());
        }
        for path in paths {
            router = router.route_service(&path, self.service());
        }
        router
    }
}
