//! The optional HTTP API, for other services (a backend job, an admin tool):
//! publish on a channel, send to a user, disconnect a user, read a channel's
//! presence, over plain HTTP with a bearer key. Off by default
//! ([`HttpApiConfig`]); docs/HTTP_API.md describes every request and answer.
//!
//! A payload is JSON, checked against the event's Rust type (an event
//! declared with `#[event]` in the server's program) and written again in each
//! encoding, so that every subscriber gets it as if a handler had sent it.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use serde::{Deserialize, Serialize};

use super::hub::Shared;
use crate::engine::{EngineError, OutgoingEvent};
use crate::protocol::{CloseReason, PresenceMember, StreamPosition, UserId};
use crate::stats::bump;

/// The API's paths start with this.
pub(crate) const PREFIX: &str = "/api/";

/// Settings of the HTTP API ([`super::ServerBuilder::http_api`], or the
/// `[server.http_api]` table of the settings file). Off unless given.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct HttpApiConfig {
    /// The keys a caller may present, as `Authorization: Bearer KEY`; each at
    /// least 16 bytes. Several, so that a key can be replaced without a
    /// pause: add the new one, move the callers, remove the old one.
    pub keys: Vec<String>,
    /// The largest request body, in bytes. Default 1 MiB; a larger one is
    /// answered 413.
    pub max_body_bytes: usize,
}

impl Default for HttpApiConfig {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            max_body_bytes: 1 << 20,
        }
    }
}

impl HttpApiConfig {
    /// The API, open to callers presenting `key`.
    pub fn with_key(key: impl Into<String>) -> Self {
        Self {
            keys: vec![key.into()],
            ..Self::default()
        }
    }

    /// What is wrong with these settings, if anything.
    pub(crate) fn problem(&self) -> Option<String> {
        if self.keys.is_empty() {
            return Some("the HTTP API needs at least one key".into());
        }
        if self.keys.iter().any(|k| k.len() < MIN_KEY_LEN) {
            return Some(format!(
                "an HTTP API key has fewer than {MIN_KEY_LEN} bytes: use a long random key"
            ));
        }
        if self.max_body_bytes == 0 {
            return Some("max_body_bytes must be at least 1".into());
        }
        None
    }
}

impl std::fmt::Debug for HttpApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpApiConfig")
            .field("keys", &format_args!("<{} redacted>", self.keys.len()))
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

/// The shortest key accepted.
pub(crate) const MIN_KEY_LEN: usize = 16;

/// An error answer: its status and `{"code", "message"}`.
struct Failure {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Failure {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
}

/// `POST /api/publish`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    channel: String,
    event: String,
    payload: Box<serde_json::value::RawValue>,
}

/// `POST /api/send`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendBody {
    user: String,
    event: String,
    payload: Box<serde_json::value::RawValue>,
}

/// `POST /api/disconnect`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DisconnectBody {
    user: String,
    #[serde(default = "policy")]
    code: String,
    message: String,
    #[serde(default)]
    reconnect_after_ms: Option<u32>,
}

fn policy() -> String {
    "policy".into()
}

#[derive(Serialize)]
struct Published {
    position: Option<StreamPosition>,
}

#[derive(Serialize)]
struct Sent {
    delivered_here: usize,
}

#[derive(Serialize)]
struct Disconnected {
    closed_here: usize,
}

#[derive(Serialize)]
struct Members {
    members: Vec<PresenceMember>,
}

/// Answers a request under [`PREFIX`] (when the API is off, such a path is
/// not found, as any other).
pub(crate) async fn handle<B>(
    request: Request<B>,
    shared: &Arc<Shared>,
    config: &HttpApiConfig,
) -> Response<Full<Bytes>>
where
    B: hyper::body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let answer = answer(request, shared, config).await;
    let counters = &shared.counters;
    match answer {
        Ok(body) => {
            bump(&counters.api_requests);
            json(StatusCode::OK, body)
        }
        Err(failure) => {
            bump(&counters.api_refused);
            if failure.status == StatusCode::UNAUTHORIZED {
                bump(&counters.api_unauthorized);
            }
            tracing::debug!(target: "sente_lite", code = failure.code, message = %failure.message, "HTTP API request refused");
            let mut response = json(
                failure.status,
                serde_json::json!({"code": failure.code, "message": failure.message}).to_string(),
            );
            if failure.status == StatusCode::UNAUTHORIZED {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
            }
            response
        }
    }
}

fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

async fn answer<B>(
    request: Request<B>,
    shared: &Arc<Shared>,
    config: &HttpApiConfig,
) -> Result<String, Failure>
where
    B: hyper::body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    authorize(&request, config)?;
    let name = &request.uri().path()[PREFIX.len()..];
    let method = request.method().clone();
    let expected = match name {
        "publish" | "send" | "disconnect" => Method::POST,
        "presence" => Method::GET,
        _ => {
            return Err(Failure::new(
                StatusCode::NOT_FOUND,
                "not-found",
                format!("no API request `{name}`: publish, send, disconnect or presence"),
            ));
        }
    };
    if method != expected {
        return Err(Failure::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            format!("`{name}` takes {expected}"),
        ));
    }
    let server = super::Server {
        shared: Arc::clone(shared),
    };
    match name {
        "presence" => {
            let channel = request
                .uri()
                .query()
                .and_then(|q| {
                    form_urlencoded::parse(q.as_bytes())
                        .find(|(k, _)| k == "channel")
                        .map(|(_, v)| v.into_owned())
                })
                .ok_or_else(|| Failure::bad("bad-request", "`presence` needs `?channel=NAME`"))?;
            check_channel(shared, &channel)?;
            let members = server
                .channel_presence(&channel)
                .await
                .map_err(|e| unavailable(&e))?;
            to_json(&Members { members })
        }
        "publish" => {
            let body: PublishBody = read_json(request, config).await?;
            check_channel(shared, &body.channel)?;
            let payloads = transcode(&body.event, body.payload.get())?;
            let options = shared.channel_options(&body.channel);
            let published = OutgoingEvent::with_payloads(
                &body.event,
                Some(&payloads.json),
                payloads.postcard.as_deref(),
                |event| shared.engine.publish(&body.channel, event, &options),
            )
            .await
            .map_err(|e| unavailable(&e))?;
            to_json(&Published {
                position: published.position,
            })
        }
        "send" => {
            let body: SendBody = read_json(request, config).await?;
            let payloads = transcode(&body.event, body.payload.get())?;
            let user = UserId(body.user);
            let delivered = OutgoingEvent::with_payloads(
                &body.event,
                Some(&payloads.json),
                payloads.postcard.as_deref(),
                |event| shared.engine.send_to_user(&user, event),
            )
            .await
            .map_err(|e| unavailable(&e))?;
            to_json(&Sent {
                delivered_here: delivered,
            })
        }
        _ => {
            let body: DisconnectBody = read_json(request, config).await?;
            if body.code.is_empty() || body.code.len() > 64 {
                return Err(Failure::bad(
                    "bad-request",
                    "`code` has 1 to 64 bytes (`policy` unless given)",
                ));
            }
            let reason = CloseReason {
                code: body.code.into(),
                message: body.message,
                reconnect_after_ms: body.reconnect_after_ms,
            };
            let closed = server.disconnect_user(&UserId(body.user), reason);
            to_json(&Disconnected {
                closed_here: closed,
            })
        }
    }
}

/// Checks `Authorization: Bearer KEY` against the configured keys, in time
/// that does not depend on where a wrong key differs.
fn authorize<B>(request: &Request<B>, config: &HttpApiConfig) -> Result<(), Failure> {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, key) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
        });
    let Some(presented) = presented else {
        return Err(Failure::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send `Authorization: Bearer KEY` with a key of the server's HTTP API",
        ));
    };
    // Every key is compared, whichever matches.
    let matched = config.keys.iter().fold(false, |found, key| {
        found | same_bytes(key.as_bytes(), presented.as_bytes())
    });
    if matched {
        Ok(())
    } else {
        Err(Failure::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the key is not one of the server's HTTP API keys",
        ))
    }
}

/// Compares two byte strings in time that depends on their lengths only.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| acc | std::hint::black_box(x ^ y));
    difference == 0
}

async fn read_json<T, B>(request: Request<B>, config: &HttpApiConfig) -> Result<T, Failure>
where
    T: serde::de::DeserializeOwned,
    B: hyper::body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let is_json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(Failure::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "the body is JSON: send `Content-Type: application/json`",
        ));
    }
    let body = Limited::new(request.into_body(), config.max_body_bytes)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Failure::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too-large",
                    format!("the body is over {} bytes", config.max_body_bytes),
                )
            } else {
                Failure::bad("bad-request", format!("the body could not be read: {e}"))
            }
        })?
        .to_bytes();
    let mut de = serde_json::Deserializer::from_slice(&body);
    let value = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| Failure::bad("bad-request", format!("{}: {}", e.path(), e.inner())))?;
    de.end()
        .map_err(|e| Failure::bad("bad-request", e.to_string()))?;
    Ok(value)
}

fn check_channel(shared: &Shared, channel: &str) -> Result<(), Failure> {
    let max = shared.config.limits.max_channel_name;
    if channel.is_empty() || channel.len() > max {
        return Err(Failure::bad(
            "bad-channel",
            format!("a channel name has 1 to {max} bytes"),
        ));
    }
    Ok(())
}

/// The payload of one-way event `event` checked against its type.
fn transcode(event: &str, payload: &str) -> Result<crate::registry::Transcoded, Failure> {
    let Some(record) = crate::registry::by_id(event) else {
        return Err(Failure::bad(
            "bad-event",
            format!("no event `{event}` is declared in the server's program"),
        ));
    };
    if record.reply_type.is_some() {
        return Err(Failure::bad(
            "bad-event",
            format!("`{event}` is a request: only one-way events are published and sent"),
        ));
    }
    match crate::registry::transcode(event, payload) {
        Some(Ok(payloads)) => Ok(payloads),
        Some(Err(why)) => Err(Failure::bad(
            "bad-payload",
            format!("the payload is not a `{event}`: {why}"),
        )),
        None => Err(Failure::bad(
            "bad-event",
            format!("`{event}` cannot be read from JSON in the server's program"),
        )),
    }
}

fn unavailable(e: &EngineError) -> Failure {
    match e {
        EngineError::Encode(e) => Failure::bad("bad-payload", e.to_string()),
        EngineError::Unavailable(why) => {
            Failure::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", why.clone())
        }
    }
}

fn to_json(value: &impl Serialize) -> Result<String, Failure> {
    serde_json::to_string(value)
        .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_by_content_and_length() {
        assert!(same_bytes(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!same_bytes(b"0123456789abcdef", b"0123456789abcdeF"));
        assert!(!same_bytes(b"0123456789abcdef", b"0123456789abcde"));
        assert!(same_bytes(b"", b""));
    }

    #[test]
    fn settings_name_what_is_wrong() {
        assert!(HttpApiConfig::default().problem().is_some());
        assert!(HttpApiConfig::with_key("short").problem().is_some());
        assert_eq!(HttpApiConfig::with_key("0123456789abcdef").problem(), None);
        let shown = format!("{:?}", HttpApiConfig::with_key("0123456789abcdef"));
        assert!(!shown.contains("0123"), "{shown}");
    }
}
