//! The reverse proxy configurations of `deploy/` in front of a real server:
//! Debian's nginx with `deploy/nginx/sente-lite.conf` and Debian's Caddy with
//! `deploy/caddy/Caddyfile`, each started as its own process on a free port.
//! Through each, a native client connects, asks, gets a publication, and
//! stays connected across several heartbeats; a browser-like upgrade with an
//! `Origin` passes the server's origin check; `/health` answers.

#[path = "ports.rs"]
mod ports;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures_util::StreamExt as _;
use ports::free_port;
use sente_lite::{Client, ConnectionState, Ctx, Router, Server};
use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

#[sente_lite::event("proxy/echo", reply = String)]
#[derive(Debug, Serialize, Deserialize)]
struct Echo(String);

#[sente_lite::event("proxy/news")]
#[derive(Debug, Clone, Serialize, Deserialize)]
struct News(String);

#[sente_lite::handler]
async fn echo(ctx: Ctx, req: Echo) -> String {
    if let Some(server) = ctx.server() {
        let _ = server.broadcast("news/proxy", &News(req.0.clone()));
    }
    req.0
}

#[derive(Clone, Default)]
struct Heard(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

#[sente_lite::handler]
async fn hear(ctx: Ctx, news: News) {
    ctx.state::<Heard>().unwrap().0.lock().unwrap().push(news.0);
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A server on a free port, pinging every 200 ms (so that a proxy that cut
/// idle connections, or held frames back, would show within a second).
async fn server(port: u16) -> Server {
    Server::builder()
        .router(Router::new().handler(echo))
        .channel("news/*", sente_lite::server::allow_all)
        .configure(|c| {
            c.ping_interval = Duration::from_millis(200);
            c.ping_timeout = Duration::from_millis(300);
        })
        .bind(format!("127.0.0.1:{port}"))
        .await
        .unwrap()
}

/// `file` from `deploy/`, with each `(from, to)` replaced (each must be there).
fn configured(file: &str, replace: &[(&str, String)]) -> String {
    let mut text = std::fs::read_to_string(repo().join("deploy").join(file)).unwrap();
    for (from, to) in replace {
        assert!(text.contains(from), "{file} has `{from}`");
        text = text.replace(from, to);
    }
    text
}

/// A scratch folder for a proxy's files, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("sente-proxy-{name}-{}", free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        // The proxy's workers may run as another user.
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// nginx in one process (`master_process off`), so that killing it when the
/// test ends leaves no worker behind.
async fn nginx(listen: u16, upstream: u16, scratch: &Scratch) -> Child {
    let dir = scratch.0.display();
    let site = configured(
        "nginx/sente-lite.conf",
        &[
            ("listen 80;", format!("listen 127.0.0.1:{listen};")),
            (
                "server 127.0.0.1:3000;",
                format!("server 127.0.0.1:{upstream};"),
            ),
        ],
    );
    std::fs::write(scratch.0.join("site.conf"), site).unwrap();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log;\n\
         events {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {dir}/body;\n  \
         proxy_temp_path {dir}/proxy;\n  fastcgi_temp_path {dir}/fastcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n  \
         scgi_temp_path {dir}/scgi;\n  include {dir}/site.conf;\n}}\n"
    );
    std::fs::write(scratch.0.join("nginx.conf"), conf).unwrap();
    Command::new("nginx")
        .args(["-c", &format!("{dir}/nginx.conf"), "-p", &format!("{dir}/")])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("nginx starts (Debian's nginx-light package is installed)")
}

async fn caddy(listen: u16, upstream: u16, scratch: &Scratch) -> Child {
    let site = configured(
        "caddy/Caddyfile",
        &[
            (":80 {", format!(":{listen} {{")),
            (
                "reverse_proxy 127.0.0.1:3000",
                format!("reverse_proxy 127.0.0.1:{upstream}"),
            ),
        ],
    );
    // No admin endpoint (several tests, one port), no automatic HTTPS.
    let file = scratch.0.join("Caddyfile");
    std::fs::write(
        &file,
        format!("{{\n\tadmin off\n\tauto_https off\n}}\n{site}"),
    )
    .unwrap();
    Command::new("caddy")
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&file)
        .env("HOME", &scratch.0)
        .env("XDG_DATA_HOME", &scratch.0)
        .env("XDG_CONFIG_HOME", &scratch.0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("caddy starts (Debian's caddy package is installed)")
}

async fn listening(port: u16) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the proxy listens within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Everything the guide promises through the proxy listening on `port`.
async fn through(port: u16, server: &Server) {
    let heard = Heard::default();
    let client = Client::builder(format!("ws://127.0.0.1:{port}/ws"))
        .router(Router::new().handler(hear))
        .state(heard.clone())
        .connect()
        .await
        .expect("a client connects through the proxy");
    client.subscribe("news/proxy").await.unwrap();
    assert_eq!(client.request(&Echo("hi".into())).await.unwrap(), "hi");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while heard.0.lock().unwrap().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the publication arrives"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Several heartbeats later, the same connection.
    let conn = client.conn_id();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        (client.state(), client.conn_id()),
        (ConnectionState::Open, conn)
    );
    assert_eq!(client.stats().reconnects, 0);
    client.disconnect().await;

    // A browser's upgrade: its Origin is the proxy's address, as the Host it sent.
    let mut request = format!("ws://127.0.0.1:{port}/ws")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "origin",
        format!("http://127.0.0.1:{port}").parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("the origin check passes through the proxy");
    let handshake = ws.next().await.unwrap().unwrap();
    assert!(
        handshake
            .to_text()
            .unwrap()
            .starts_with(r#"["sl/handshake","#)
    );

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut http = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let get =
        format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    http.write_all(get.as_bytes()).await.unwrap();
    let mut health = String::new();
    http.read_to_string(&mut health).await.unwrap();
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains(r#""status":"ok""#), "{health}");
    assert_eq!(server.stats().errors.heartbeat_timeout, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_with_the_guides_configuration() {
    let (upstream, listen) = (free_port(), free_port());
    let server = server(upstream).await;
    let scratch = Scratch::new("nginx");
    let _nginx = nginx(listen, upstream, &scratch).await;
    listening(listen).await;
    through(listen, &server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_with_the_guides_configuration() {
    let (upstream, listen) = (free_port(), free_port());
    let server = server(upstream).await;
    let scratch = Scratch::new("caddy");
    let _caddy = caddy(listen, upstream, &scratch).await;
    listening(listen).await;
    through(listen, &server).await;
}
