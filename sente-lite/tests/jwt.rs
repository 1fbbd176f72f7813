//! JSON Web Token authentication against a real server: the user named by
//! the token's claim, every kind of bad token refused with 401 and what is
//! wrong with it, and a native client whose token is refreshed on reconnect.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header, encode};
use sente_lite::client::Credentials;
use sente_lite::protocol::CloseReason;
use sente_lite::server::jwt::{JwtAuth, jsonwebtoken};
use sente_lite::{Client, ClientError, ConnectionState, ReconnectPolicy, Server};
use serde_json::json;

const SECRET: &[u8] = b"the identity service's secret";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token for `sub` signed with `secret`, expiring `ttl` seconds from now
/// (negative: expired), with `extra` claims.
fn token(secret: &[u8], sub: &str, ttl: i64, extra: serde_json::Value) -> String {
    let mut claims = json!({"sub": sub, "exp": now().saturating_add_signed(ttl), "iss": "https://id.example", "aud": "chat"});
    if let (Some(claims), Some(extra)) = (claims.as_object_mut(), extra.as_object()) {
        claims.extend(extra.clone());
    }
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret).unwrap(),
    )
    .unwrap()
}

async fn server(auth: JwtAuth) -> Server {
    Server::builder()
        .auth(auth.into_hook())
        .bind("127.0.0.1:0")
        .await
        .unwrap()
}

fn strict() -> JwtAuth {
    JwtAuth::hs256(SECRET)
        .unwrap()
        .issuer("https://id.example")
        .audience("chat")
        .cookie("session")
}

/// Connects once with `credentials`: the user, or the refusal's status and body.
async fn attempt(
    server: &Server,
    credentials: Credentials,
) -> Result<Option<String>, (u16, String)> {
    let client = Client::builder(server.ws_url())
        .credentials(move || {
            let credentials = credentials.clone();
            async move { Ok(credentials) }
        })
        .connect()
        .await;
    match client {
        Ok(client) => {
            let user = client.handshake().unwrap().user_id.map(|u| u.0);
            client.disconnect().await;
            Ok(user)
        }
        Err(ClientError::Rejected { status, body }) => {
            Err((status.as_u16(), body.trim().to_owned()))
        }
        Err(other) => panic!("{other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_names_the_user_wherever_it_is_sent() {
    let server = server(strict()).await;
    let good = token(SECRET, "ada", 60, json!({}));
    assert_eq!(
        attempt(&server, Credentials::bearer(&good)).await,
        Ok(Some("ada".into()))
    );
    assert_eq!(
        attempt(&server, Credentials::new().query("token", &good)).await,
        Ok(Some("ada".into()))
    );
    assert_eq!(
        attempt(
            &server,
            Credentials::new().header("cookie", format!("theme=dark; session={good}"))
        )
        .await,
        Ok(Some("ada".into()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused_saying_what_is_wrong() {
    let server = server(strict()).await;
    let cases = [
        (Credentials::new(), "no token"),
        (
            Credentials::bearer(token(SECRET, "ada", -600, json!({}))),
            "token expired",
        ),
        (
            Credentials::bearer(token(b"another secret", "ada", 60, json!({}))),
            "token signature invalid",
        ),
        (
            Credentials::bearer(token(
                SECRET,
                "ada",
                60,
                json!({"iss": "https://evil.example"}),
            )),
            "token from another issuer",
        ),
        (
            Credentials::bearer(token(SECRET, "ada", 60, json!({"aud": "billing"}))),
            "token for another audience",
        ),
        (Credentials::bearer("not.a.token"), "token invalid"),
        (
            Credentials::bearer(token(SECRET, "", 60, json!({}))),
            "the token has no `sub` claim naming its user",
        ),
    ];
    for (credentials, why) in cases {
        assert_eq!(
            attempt(&server, credentials).await,
            Err((401, why.to_owned())),
            "{why}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_connections_and_another_user_claim() {
    let server = server(
        JwtAuth::hs256(SECRET)
            .unwrap()
            .allow_anonymous(true)
            .user_claim("email"),
    )
    .await;
    assert_eq!(attempt(&server, Credentials::new()).await, Ok(None));
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_aud = false;
    let with_email = token(SECRET, "ada", 60, json!({"email": "ada@example.org"}));
    assert_eq!(
        attempt(&server, Credentials::bearer(&with_email)).await,
        Err((401, "token for another audience".into())),
        "aud is checked when present unless told otherwise"
    );
    let server = Server::builder()
        .auth(
            JwtAuth::new(
                jsonwebtoken::DecodingKey::from_secret(SECRET).unwrap(),
                validation,
            )
            .user_claim("email")
            .into_hook(),
        )
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    assert_eq!(
        attempt(&server, Credentials::bearer(&with_email)).await,
        Ok(Some("ada@example.org".into()))
    );
    // A bad token is refused even where anonymous connections are allowed.
    let anonymous_ok = self::server(JwtAuth::hs256(SECRET).unwrap().allow_anonymous(true)).await;
    assert_eq!(
        attempt(
            &anonymous_ok,
            Credentials::bearer(token(SECRET, "ada", -600, json!({})))
        )
        .await,
        Err((401, "token expired".into()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_token_is_replaced_on_reconnect() {
    let server = server(strict()).await;
    let issued = Arc::new(Mutex::new(0u32));
    let counter = Arc::clone(&issued);
    let client = Client::builder(server.ws_url())
        .reconnect(ReconnectPolicy::default().with_initial_delay(Duration::from_millis(20)))
        .credentials(move || {
            let counter = Arc::clone(&counter);
            async move {
                let n = {
                    let mut n = counter.lock().unwrap();
                    *n += 1;
                    *n
                };
                Ok(Credentials::bearer(token(
                    SECRET,
                    &format!("ada-{n}"),
                    60,
                    json!({}),
                )))
            }
        })
        .connect()
        .await
        .unwrap();
    assert_eq!(client.handshake().unwrap().user_id.unwrap().0, "ada-1");
    server.disconnect(
        client.conn_id().unwrap(),
        CloseReason {
            code: "policy".into(),
            message: "session renewed".into(),
            reconnect_after_ms: None,
        },
    );
    support::until("reconnected with the second token", || {
        client
            .handshake()
            .and_then(|h| h.user_id)
            .map(|u| u.0)
            .as_deref()
            == Some("ada-2")
    })
    .await;
    assert_eq!(client.state(), ConnectionState::Open);
    client.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn then_runs_checks_of_its_own_on_the_user() {
    let server = Server::builder()
        .auth(strict().then(|user| async move {
            match user {
                Some(user) if user.0 == "mallory" => {
                    Err(sente_lite::server::Rejection::forbidden("banned"))
                }
                other => Ok(other),
            }
        }))
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    assert_eq!(
        attempt(
            &server,
            Credentials::bearer(token(SECRET, "ada", 60, json!({})))
        )
        .await,
        Ok(Some("ada".into()))
    );
    assert_eq!(
        attempt(
            &server,
            Credentials::bearer(token(SECRET, "mallory", 60, json!({})))
        )
        .await,
        Err((403, "banned".into()))
    );
    assert_eq!(
        attempt(
            &server,
            Credentials::bearer(token(SECRET, "mallory", -600, json!({})))
        )
        .await,
        Err((401, "token expired".into()))
    );
}
