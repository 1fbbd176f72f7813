//! Credentials fetched before every connection attempt, and what the
//! application decides when the server refuses them.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::StatusCode;

/// What a connection attempt presents to the server beside the url and the
/// builder's fixed headers: more headers (`Authorization`, cookies) and more
/// query parameters (a token for servers that read it there).
///
/// Made by the callback given to
/// [`ClientBuilder::credentials`](super::ClientBuilder::credentials), which
/// runs before every attempt, so a token that expired is replaced on the next
/// reconnect.
///
/// ```
/// use sente_lite::client::Credentials;
///
/// let credentials = Credentials::bearer("eyJhbGciOi...").query("tenant", "acme & co");
/// assert_eq!(credentials.headers()[0].0, "authorization");
/// // Debug output names what is sent, never the values.
/// assert!(!format!("{credentials:?}").contains("eyJ"));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    headers: Vec<(String, String)>,
    query: Vec<(String, String)>,
}

/// Names only: the values are secrets.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |pairs: &[(String, String)]| -> Vec<String> {
            pairs.iter().map(|(name, _)| name.clone()).collect()
        };
        f.debug_struct("Credentials")
            .field("headers", &names(&self.headers))
            .field("query", &names(&self.query))
            .finish()
    }
}

impl Credentials {
    /// No credentials.
    pub fn new() -> Self {
        Self::default()
    }

    /// `Authorization: Bearer <token>`.
    pub fn bearer(token: impl fmt::Display) -> Self {
        Self::new().header("authorization", format!("Bearer {token}"))
    }

    /// One more header (added to the builder's headers, not replacing them).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// One more query parameter, percent-encoded onto the url's query.
    pub fn query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }

    /// The headers, in order.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The query parameters, in order.
    pub fn query_pairs(&self) -> &[(String, String)] {
        &self.query
    }

    /// `uri` with the query parameters appended.
    pub(crate) fn apply_query(&self, uri: &http::Uri) -> Result<http::Uri, http::uri::InvalidUri> {
        if self.query.is_empty() {
            return Ok(uri.clone());
        }
        let mut text = uri.to_string();
        let mut pairs = form_urlencoded::Serializer::new(String::new());
        for (name, value) in &self.query {
            pairs.append_pair(name, value);
        }
        text.push(if uri.query().is_some() { '&' } else { '?' });
        text.push_str(&pairs.finish());
        text.parse()
    }
}

/// The future a credentials callback returns.
pub(crate) type CredentialsFuture =
    Pin<Box<dyn Future<Output = Result<Credentials, String>> + Send + 'static>>;

/// The credentials callback, boxed.
pub(crate) type CredentialsSource = Arc<dyn Fn() -> CredentialsFuture + Send + Sync>;

/// The server refused a connection attempt's upgrade with an HTTP error:
/// what [`ClientBuilder::on_rejected`](super::ClientBuilder::on_rejected)
/// decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The HTTP status (401 and 403 for credentials the server refuses).
    pub status: StatusCode,
    /// The server's explanation (its one-line body).
    pub body: String,
    /// How many attempts failed in a row before this one (0 for the first).
    pub attempt: u32,
}

/// What the client does after a [`Rejection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterRejection {
    /// Try again after the reconnection policy's delay, with fresh credentials.
    Retry,
    /// Give up: the client enters `Failed` and keeps the error.
    Stop,
}

/// The rejection callback, boxed.
pub(crate) type RejectionCallback = Arc<dyn Fn(&Rejection) -> AfterRejection + Send + Sync>;
