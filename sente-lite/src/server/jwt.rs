//! JSON Web Token authentication (feature `jwt`): an authentication hook that
//! reads a token from the upgrade request, checks its signature and claims
//! with [`jsonwebtoken`], and names the connection's user after a claim.
//!
//! ```
//! use sente_lite::server::jwt::JwtAuth;
//!
//! # fn main() -> Result<(), sente_lite::server::jwt::jsonwebtoken::errors::Error> {
//! let auth = JwtAuth::hs256(b"a secret of the identity service")?
//!     .issuer("https://id.example")
//!     .audience("chat");
//! let builder = sente_lite::Server::builder().auth(auth.into_hook());
//! # Ok(())
//! # }
//! ```
//!
//! The token is taken from, in order: `Authorization: Bearer <token>`, the
//! query parameter `token` (what a browser can send: a WebSocket has no
//! headers there), then a cookie when one is named ([`JwtAuth::cookie`]). A
//! connection without a token is refused with 401 (or let in anonymously with
//! [`JwtAuth::allow_anonymous`]); a token that is expired, not yet valid,
//! badly signed or for another issuer or audience is refused with 401 and a
//! message that says which. With credentials that refresh on the client
//! (`ClientBuilder::credentials`, an async url function in JavaScript), a
//! rotated token is presented at the next reconnect.

use std::future::Future;
use std::sync::Arc;

pub use jsonwebtoken;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::{HandshakeRequest, Rejection};
use crate::protocol::UserId;

/// Checks JSON Web Tokens on upgrade requests. See the [module docs](self).
#[derive(Clone)]
pub struct JwtAuth {
    key: Arc<DecodingKey>,
    validation: Validation,
    user_claim: String,
    query_param: String,
    cookie: Option<String>,
    allow_anonymous: bool,
}

impl std::fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuth")
            .field("algorithms", &self.validation.algorithms)
            .field("user_claim", &self.user_claim)
            .field("query_param", &self.query_param)
            .field("cookie", &self.cookie)
            .field("allow_anonymous", &self.allow_anonymous)
            .finish_non_exhaustive()
    }
}

impl JwtAuth {
    /// Tokens signed with HMAC-SHA256 and `secret`, their `exp` required and
    /// checked (with 60 s of leeway, `jsonwebtoken`'s default). Fails when
    /// `jsonwebtoken` refuses the secret as a key.
    pub fn hs256(secret: impl AsRef<[u8]>) -> Result<Self, jsonwebtoken::errors::Error> {
        Ok(Self::new(
            DecodingKey::from_secret(secret.as_ref())?,
            Validation::new(Algorithm::HS256),
        ))
    }

    /// Tokens checked with `key` and `validation` (RSA or ECDSA public keys,
    /// leeway, required claims: see [`jsonwebtoken`]).
    pub fn new(key: DecodingKey, validation: Validation) -> Self {
        Self {
            key: Arc::new(key),
            validation,
            user_claim: "sub".into(),
            query_param: "token".into(),
            cookie: None,
            allow_anonymous: false,
        }
    }

    /// Only tokens whose `iss` is `issuer`.
    pub fn issuer(mut self, issuer: &str) -> Self {
        self.validation.set_issuer(&[issuer]);
        self
    }

    /// Only tokens whose `aud` names `audience`.
    pub fn audience(mut self, audience: &str) -> Self {
        self.validation.set_audience(&[audience]);
        self
    }

    /// The claim that names the user (default `sub`): a string, or a number
    /// written in decimal.
    pub fn user_claim(mut self, claim: impl Into<String>) -> Self {
        self.user_claim = claim.into();
        self
    }

    /// The query parameter that may carry the token (default `token`).
    pub fn query_param(mut self, name: impl Into<String>) -> Self {
        self.query_param = name.into();
        self
    }

    /// A cookie that may carry the token, after the header and the query.
    pub fn cookie(mut self, name: impl Into<String>) -> Self {
        self.cookie = Some(name.into());
        self
    }

    /// Lets a request without any token in as an anonymous connection (a
    /// token that is present must still be valid). Default off: 401.
    pub fn allow_anonymous(mut self, allow: bool) -> Self {
        self.allow_anonymous = allow;
        self
    }

    /// The token a request presents, if any.
    fn token_of(&self, request: &HandshakeRequest) -> Option<String> {
        let bearer = request
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then(|| token.trim().to_owned())
            });
        bearer
            .or_else(|| request.query(&self.query_param))
            .or_else(|| self.cookie.as_deref().and_then(|name| request.cookie(name)))
            .filter(|token| !token.is_empty())
    }

    /// The request's user, or why it is refused.
    pub fn authenticate(&self, request: &HandshakeRequest) -> Result<Option<UserId>, Rejection> {
        let Some(token) = self.token_of(request) else {
            return if self.allow_anonymous {
                Ok(None)
            } else {
                Err(Rejection::unauthorized("no token"))
            };
        };
        let claims = jsonwebtoken::decode::<serde_json::Map<String, Value>>(
            &token,
            &self.key,
            &self.validation,
        )
        .map_err(|error| Rejection::unauthorized(refusal(error.kind())))?
        .claims;
        match claims.get(&self.user_claim) {
            Some(Value::String(user)) if !user.is_empty() => Ok(Some(UserId(user.clone()))),
            Some(Value::Number(user)) => Ok(Some(UserId(user.to_string()))),
            _ => Err(Rejection::unauthorized(format!(
                "the token has no `{}` claim naming its user",
                self.user_claim
            ))),
        }
    }

    /// The hook for [`ServerBuilder::auth`](super::ServerBuilder::auth).
    pub fn into_hook(
        self,
    ) -> impl Fn(HandshakeRequest) -> std::future::Ready<Result<Option<UserId>, Rejection>>
    + Send
    + Sync
    + 'static {
        move |request| std::future::ready(self.authenticate(&request))
    }

    /// The hook, running `then` after a valid token: for checks of your own
    /// (a revoked session, a banned user) on the user it names.
    pub fn then<F, Fut>(
        self,
        then: F,
    ) -> impl Fn(HandshakeRequest) -> Verdict + Send + Sync + 'static
    where
        F: Fn(Option<UserId>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<UserId>, Rejection>> + Send + 'static,
    {
        let then = Arc::new(then);
        move |request| {
            let verdict = self.authenticate(&request);
            let then = Arc::clone(&then);
            Box::pin(async move { then(verdict?).await })
        }
    }
}

/// What the hook of [`JwtAuth::then`] answers: the connection's user, or why
/// it is refused, once the application's own checks ran.
pub type Verdict =
    std::pin::Pin<Box<dyn Future<Output = Result<Option<UserId>, Rejection>> + Send>>;

/// What a refused token is told: which check it failed.
fn refusal(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ExpiredSignature => "token expired",
        ErrorKind::ImmatureSignature => "token not valid yet",
        ErrorKind::InvalidSignature => "token signature invalid",
        ErrorKind::InvalidIssuer => "token from another issuer",
        ErrorKind::InvalidAudience => "token for another audience",
        ErrorKind::InvalidAlgorithm => "token signed with another algorithm",
        ErrorKind::MissingRequiredClaim(_) => "token lacks a required claim",
        _ => "token invalid",
    }
}
