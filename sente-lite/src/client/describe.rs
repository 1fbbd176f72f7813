//! Fetching the server's schema description (`GET /schema`) over HTTP(S), when
//! the server's schema hash differs from this program's.

use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::schema::Description;

/// The largest description read; a larger one is reported as unavailable.
pub(crate) const MAX_DESCRIPTION_BYTES: usize = 8 * 1024 * 1024;

/// The description's url: the WebSocket url's scheme made `http`/`https`, its
/// host and port, and the path `/schema`.
pub(crate) fn description_uri(ws: &Uri) -> Option<Uri> {
    let scheme = match ws.scheme_str()? {
        "ws" => "http",
        "wss" => "https",
        _ => return None,
    };
    Uri::builder()
        .scheme(scheme)
        .authority(ws.authority()?.clone())
        .path_and_query(crate::schema::DESCRIPTION_PATH)
        .build()
        .ok()
}

/// How to fetch a description.
#[derive(Debug, Clone)]
pub(crate) struct Fetch {
    pub(crate) uri: Uri,
    pub(crate) timeout: Duration,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl Fetch {
    /// Fetches and reads the description; the error says why it is unavailable.
    pub(crate) async fn run(&self) -> Result<Description, String> {
        match tokio::time::timeout(self.timeout, self.get()).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "GET {} took longer than {:?}",
                self.uri, self.timeout
            )),
        }
    }

    async fn get(&self) -> Result<Description, String> {
        let uri = &self.uri;
        let host = uri.host().ok_or_else(|| format!("{uri} has no host"))?;
        let https = uri.scheme_str() == Some("https");
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tcp = TcpStream::connect((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|e| format!("cannot connect to {uri}: {e}"))?;
        let body = if https {
            self.get_tls(tcp, host).await?
        } else {
            request(tcp, uri).await?
        };
        Description::from_json(&body)
            .map_err(|e| format!("{uri} did not answer a schema description: {e}"))
    }

    #[cfg(feature = "tls")]
    async fn get_tls(&self, tcp: TcpStream, host: &str) -> Result<Bytes, String> {
        let config = self.tls.clone().unwrap_or_else(|| {
            let roots =
                rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            std::sync::Arc::new(
                rustls::ClientConfig::builder()
                    .with_root_certificates(roots)
                    .with_no_client_auth(),
            )
        });
        let name = rustls_pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
            .map_err(|e| format!("{host} is not a server name: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {host} failed: {e}"))?;
        request(tls, &self.uri).await
    }

    #[cfg(not(feature = "tls"))]
    async fn get_tls(&self, _tcp: TcpStream, _host: &str) -> Result<Bytes, String> {
        Err("https needs the `tls` feature".to_owned())
    }
}

/// One `GET` on an open stream: the body of a 200 answer.
async fn request<S>(stream: S, uri: &Uri) -> Result<Bytes, String>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let failed = |e: hyper::Error| format!("GET {uri} failed: {e}");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(failed)?;
    let connection = tokio::spawn(connection);
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
    let request = http::Request::get(uri.path())
        .header(http::header::HOST, authority)
        .header(http::header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("GET {uri}: {e}"))?;
    let response = sender.send_request(request).await.map_err(failed)?;
    let status = response.status();
    if status == http::StatusCode::NOT_FOUND {
        connection.abort();
        return Err(format!(
            "the server does not publish its schema ({uri} answered 404)"
        ));
    }
    if !status.is_success() {
        connection.abort();
        return Err(format!("{uri} answered {status}"));
    }
    let body = Limited::new(response.into_body(), MAX_DESCRIPTION_BYTES)
        .collect()
        .await
        .map_err(|e| format!("reading {uri}: {e}"))?
        .to_bytes();
    connection.abort();
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::description_uri;

    #[test]
    fn the_description_lives_beside_the_socket() {
        let uri = |s: &str| description_uri(&s.parse().unwrap()).map(|u| u.to_string());
        assert_eq!(
            uri("ws://127.0.0.1:3000/ws?token=x").as_deref(),
            Some("http://127.0.0.1:3000/schema")
        );
        assert_eq!(
            uri("wss://chat.example/app/ws").as_deref(),
            Some("https://chat.example/schema")
        );
        assert_eq!(
            uri("ws://[::1]:9000/").as_deref(),
            Some("http://[::1]:9000/schema")
        );
    }
}
