//! Opening one connection: TCP, the WebSocket upgrade asking for the codec's
//! subprotocol, and the server's `sl/handshake`.

use std::time::Duration;

use futures_util::StreamExt;
use http::header::SEC_WEBSOCKET_PROTOCOL;
use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use tokio::net::TcpStream;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tungstenite::Message;
use tungstenite::client::IntoClientRequest;

use super::ClientError;
use super::credentials::CredentialsSource;
use crate::protocol::{Control, Handshake, PROTOCOL_VERSION};
use crate::{Codec, Inbound};

/// The socket of an open client connection.
pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Where and how to connect, checked once when the client is built.
#[derive(Clone)]
pub(crate) struct Target {
    /// The url, query included (it may carry a token: never logged).
    uri: Uri,
    /// The url without its query, for logs and errors.
    pub(crate) display: String,
    headers: HeaderMap,
    pub(crate) codec: Codec,
    connect_timeout: Duration,
    handshake_timeout: Duration,
    /// Fetched before every attempt, when set.
    pub(crate) credentials: Option<CredentialsSource>,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The query and the headers may carry secrets.
        f.debug_struct("Target")
            .field("url", &self.display)
            .field("codec", &self.codec)
            .field("credentials", &self.credentials.is_some())
            .finish_non_exhaustive()
    }
}

impl Target {
    pub(crate) fn new(
        url: &str,
        headers: &[(String, String)],
        codec: Codec,
        connect_timeout: Duration,
        handshake_timeout: Duration,
    ) -> Result<Self, ClientError> {
        let uri: Uri = url.parse().map_err(|source| ClientError::InvalidUrl {
            url: url.to_owned(),
            source,
        })?;
        match uri.scheme_str() {
            Some("ws") => {}
            #[cfg(feature = "tls")]
            Some("wss") => {}
            other => {
                return Err(ClientError::UnsupportedScheme {
                    url: url.to_owned(),
                    scheme: other.unwrap_or_default().to_owned(),
                });
            }
        }
        let Some(authority) = uri.authority().filter(|a| !a.host().is_empty()) else {
            return Err(ClientError::MissingHost {
                url: url.to_owned(),
            });
        };
        let display = format!(
            "{}://{authority}{}",
            uri.scheme_str().unwrap_or("ws"),
            uri.path()
        );
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let invalid = || ClientError::InvalidHeader { name: name.clone() };
            let header = HeaderName::try_from(name.as_str()).map_err(|_| invalid())?;
            let value = HeaderValue::try_from(value.as_str()).map_err(|_| invalid())?;
            map.append(header, value);
        }
        Ok(Self {
            uri,
            display,
            headers: map,
            codec,
            connect_timeout,
            handshake_timeout,
            credentials: None,
            #[cfg(feature = "tls")]
            tls: None,
        })
    }

    /// The connection url.
    pub(crate) fn uri(&self) -> &Uri {
        &self.uri
    }

    /// Opens a connection and reads the server's handshake.
    pub(crate) async fn open(&self) -> Result<(Socket, Handshake), ClientError> {
        let credentials = match &self.credentials {
            Some(fetch) => Some(fetch().await.map_err(ClientError::Credentials)?),
            None => None,
        };
        let uri =
            match &credentials {
                Some(credentials) => credentials.apply_query(&self.uri).map_err(|source| {
                    ClientError::InvalidUrl {
                        url: self.display.clone(),
                        source,
                    }
                })?,
                None => self.uri.clone(),
            };
        // A fresh request per attempt: each upgrade needs its own key.
        let mut request = (&uri).into_client_request().map_err(ClientError::Upgrade)?;
        let headers = request.headers_mut();
        for (name, value) in &self.headers {
            headers.append(name, value.clone());
        }
        for (name, value) in credentials.iter().flat_map(|c| c.headers()) {
            let invalid = || ClientError::InvalidHeader { name: name.clone() };
            let header = HeaderName::try_from(name.as_str()).map_err(|_| invalid())?;
            let value = HeaderValue::try_from(value.as_str()).map_err(|_| invalid())?;
            headers.append(header, value);
        }
        let requested = self.codec.subprotocol();
        headers.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(requested));

        #[cfg(feature = "tls")]
        let upgrade = tokio_tungstenite::connect_async_tls_with_config(
            request,
            None,
            true,
            self.tls.clone().map(tokio_tungstenite::Connector::Rustls),
        );
        #[cfg(not(feature = "tls"))]
        let upgrade = tokio_tungstenite::connect_async_with_config(request, None, true);
        let (mut ws, response) = match tokio::time::timeout(self.connect_timeout, upgrade).await {
            Err(_) => {
                return Err(ClientError::ConnectTimeout {
                    url: self.display.clone(),
                    timeout: self.connect_timeout,
                });
            }
            Ok(Err(err)) => return Err(self.upgrade_error(err)),
            Ok(Ok(pair)) => pair,
        };
        let answered = response
            .headers()
            .get(SEC_WEBSOCKET_PROTOCOL)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned());
        if answered.as_deref() != Some(requested) {
            return Err(ClientError::SubprotocolRefused {
                requested,
                answered,
            });
        }
        match tokio::time::timeout(self.handshake_timeout, read_handshake(&mut ws)).await {
            Err(_) => Err(ClientError::HandshakeTimeout {
                timeout: self.handshake_timeout,
            }),
            Ok(Err(err)) => Err(err),
            Ok(Ok(handshake)) => Ok((ws, handshake)),
        }
    }

    fn upgrade_error(&self, err: tungstenite::Error) -> ClientError {
        use tungstenite::error::ProtocolError as WsProtocolError;
        match err {
            tungstenite::Error::Io(source) => ClientError::Connect {
                url: self.display.clone(),
                source,
            },
            tungstenite::Error::Http(response) => ClientError::Rejected {
                status: response.status(),
                body: response
                    .body()
                    .as_deref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default(),
            },
            tungstenite::Error::Protocol(WsProtocolError::SecWebSocketSubProtocolError(_)) => {
                ClientError::SubprotocolRefused {
                    requested: self.codec.subprotocol(),
                    answered: None,
                }
            }
            other => ClientError::Upgrade(other),
        }
    }
}

/// Reads frames until the first protocol frame, which must be `sl/handshake`.
async fn read_handshake(ws: &mut Socket) -> Result<Handshake, ClientError> {
    loop {
        let message = match ws.next().await {
            None => {
                return Err(ClientError::ClosedBeforeHandshake {
                    code: None,
                    reason: "connection lost".into(),
                });
            }
            Some(Err(err)) => {
                return Err(ClientError::ClosedBeforeHandshake {
                    code: None,
                    reason: err.to_string(),
                });
            }
            Some(Ok(message)) => message,
        };
        match &message {
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            Message::Close(frame) => {
                return Err(ClientError::ClosedBeforeHandshake {
                    code: frame.as_ref().map(|f| u16::from(f.code)),
                    reason: frame
                        .as_ref()
                        .map(|f| f.reason.to_string())
                        .unwrap_or_default(),
                });
            }
            Message::Text(_) | Message::Binary(_) => {}
        }
        return match Codec::decode(&message) {
            Ok(Inbound::Control(Control::Handshake(handshake)))
                if handshake.version == PROTOCOL_VERSION =>
            {
                Ok(handshake)
            }
            Ok(Inbound::Control(Control::Handshake(handshake))) => {
                Err(ClientError::UnsupportedVersion {
                    version: handshake.version,
                })
            }
            // A server that is going away may say so before anything else.
            Ok(Inbound::Control(Control::Close(reason))) => {
                Err(ClientError::ClosedBeforeHandshake {
                    code: None,
                    reason: reason.message,
                })
            }
            Ok(other) => Err(ClientError::NotAHandshake {
                got: frame_kind(&other),
            }),
            Err(err) => Err(ClientError::InvalidHandshake(err)),
        };
    }
}

fn frame_kind(inbound: &Inbound<'_>) -> &'static str {
    match inbound {
        Inbound::Event { .. } => "an event",
        Inbound::Request { .. } => "a request",
        Inbound::Reply { .. } => "a reply",
        Inbound::Publication { .. } => "a publication",
        Inbound::Control(Control::Ping(_)) => "`sl/ping`",
        Inbound::Control(Control::Pong(_)) => "`sl/pong`",
        Inbound::Control(Control::Error(_)) => "`sl/error`",
        Inbound::Control(_) => "a control frame",
    }
}
