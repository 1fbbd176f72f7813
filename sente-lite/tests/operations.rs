//! Server operations seen by real clients: every connection of a user closed
//! at once with a reason, and the others left alone.

mod support;

use std::time::Duration;

use sente_lite::protocol::CloseReason;
use sente_lite::{Client, ConnectionState, ReconnectPolicy, Server, UserId};

async fn client(server: &Server, user: &str) -> Client {
    Client::builder(format!("{}?user={user}", server.ws_url()))
        .reconnect(ReconnectPolicy::default().with_initial_delay(Duration::from_millis(20)))
        .connect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_user_closes_every_connection_of_the_user_with_its_reason() {
    let server = Server::builder()
        .auth(|request| async move { Ok(request.query("user").map(Into::into)) })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let (phone, laptop, bob) = (
        client(&server, "ada").await,
        client(&server, "ada").await,
        client(&server, "bob").await,
    );
    let before = [phone.conn_id(), laptop.conn_id(), bob.conn_id()];
    let reason = CloseReason {
        code: "policy".into(),
        message: "signed out everywhere".into(),
        reconnect_after_ms: Some(50),
    };
    assert_eq!(
        server.disconnect_user(&UserId::from("ada"), reason.clone()),
        2
    );
    assert_eq!(
        server.disconnect_user(&UserId::from("nobody"), reason.clone()),
        0
    );

    for (ada, was) in [(&phone, before[0]), (&laptop, before[1])] {
        support::until("told why", || ada.last_close().is_some()).await;
        assert_eq!(ada.last_close(), Some(reason.clone()));
        // Back after the server's `reconnect_after_ms`, as another connection.
        support::until("reconnected", || {
            ada.state() == ConnectionState::Open && ada.conn_id() != was
        })
        .await;
    }
    assert_eq!(bob.conn_id(), before[2], "bob stays");
    assert_eq!(bob.last_close(), None);
    assert_eq!(server.user_connections(&UserId::from("ada")).len(), 2);
}
