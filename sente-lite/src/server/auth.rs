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
    /// The first value of query parameter `name`, decoded as a form
    /// (`%XX` escapes, `+` for a space).
    pub fn query(&self, name: &str) -> Option<String> {
        let query = self.uri.query()?;
        form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }

    /// The value of cookie `name` (the first, when the request sends it
    /// twice), without surrounding double quotes. Cookies that do not parse
    /// are skipped.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(::http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(cookie::Cookie::split_parse)
            .filter_map(Result::ok)
            .find(|cookie| cookie.name() == name)
            .map(|cookie| cookie.value_trimmed().to_owned())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, cookies: &[&str]) -> HandshakeRequest {
        let mut headers = HeaderMap::new();
        for cookie in cookies {
            headers.append(::http::header::COOKIE, cookie.parse().unwrap());
        }
        HandshakeRequest {
            uri: uri.parse().unwrap(),
            headers,
            remote_addr: None,
        }
    }

    #[test]
    fn query_parameters_are_decoded_as_a_form() {
        let req = request(
            "/ws?name=ada%20lovelace&token=a+b%26c&name=second&flag",
            &[],
        );
        assert_eq!(req.query("name").as_deref(), Some("ada lovelace"));
        assert_eq!(req.query("token").as_deref(), Some("a b&c"));
        assert_eq!(req.query("flag").as_deref(), Some(""));
        assert_eq!(req.query("missing"), None);
        assert_eq!(request("/ws", &[]).query("name"), None);
    }

    #[test]
    fn cookies_are_found_across_headers_and_unquoted() {
        let req = request(
            "/ws",
            &["theme=dark; session=\"abc\"", "other=1;  late = x "],
        );
        assert_eq!(req.cookie("session").as_deref(), Some("abc"));
        assert_eq!(req.cookie("theme").as_deref(), Some("dark"));
        assert_eq!(req.cookie("other").as_deref(), Some("1"));
        assert_eq!(req.cookie("late").as_deref(), Some("x"));
        assert_eq!(req.cookie("sess"), None);
        assert_eq!(
            request("/ws", &["not a cookie; a=1"])
                .cookie("a")
                .as_deref(),
            Some("1")
        );
    }
}
