//! Who may connect and who may join a channel: the authentication hook's
//! view of an upgrade request, its refusals, and channel authorisation.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use ::http::{HeaderMap, StatusCode, Uri};

use crate::ErrorReply;
use crate::protocol::{ConnId, UserId};

/// What the authentication hook sees of an upgrade request.
#[derive(Debug, Clone)]
pub struct HandshakeRequest {
    /// The request's URI (path and query).
    pub uri: Uri,
    /// The request's headers (cookies, authorization, origin, ...).
    pub headers: HeaderMap,
    /// The peer's address, when known.
    pub remote_addr: Option<SocketAddr>,
}

impl HandshakeRequest {
    /// The first value of query parameter `name`, percent-decoded.
    pub fn query(&self, name: &str) -> Option<String> {
        let query = self.uri.query()?;
        query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key) == name).then(|| percent_decode(value))
        })
    }

    /// The value of cookie `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(::http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                (key == name).then(|| value.to_owned())
            })
    }
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An upgrade refused by the authentication hook: the HTTP status and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The HTTP status, typically 401 or 403.
    pub status: StatusCode,
    /// A short explanation, sent as the response body.
    pub message: String,
}

impl Rejection {
    /// 401 Unauthorized with `message`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message: message.into(),
        }
    }

    /// 403 Forbidden with `message`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
pub(crate) type AuthHook =
    Arc<dyn Fn(HandshakeRequest) -> BoxFuture<Result<Option<UserId>, Rejection>> + Send + Sync>;

/// What a channel's authorisation hook sees.
#[derive(Debug, Clone)]
pub struct ChannelAccess {
    /// The connection asking.
    pub conn_id: ConnId,
    /// Its user, if authenticated.
    pub user_id: Option<UserId>,
    /// The channel it asks for.
    pub channel: String,
}

pub(crate) type ChannelAuth =
    Arc<dyn Fn(ChannelAccess) -> BoxFuture<Result<(), ErrorReply>> + Send + Sync>;

/// A channel authorisation that lets every connection in.
pub async fn allow_all(_access: ChannelAccess) -> Result<(), ErrorReply> {
    Ok(())
}
