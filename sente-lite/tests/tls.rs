//! `wss://`: a TLS server with a certificate made in the test, and a native
//! client that trusts it.

use std::sync::Arc;

use sente_lite::{Client, ClientError, Codec, Router, Server};
use serde::{Deserialize, Serialize};

#[sente_lite::event("tls/ping", reply = String)]
#[derive(Debug, Serialize, Deserialize)]
struct Ping(String);

#[sente_lite::handler]
async fn ping(req: Ping) -> String {
    format!("pong {}", req.0)
}

#[tokio::test]
async fn a_request_round_trips_over_wss() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = std::env::temp_dir().join(format!("sente-lite-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();

    let server = Server::builder()
        .router(Router::new().handler(ping))
        .tls_pem_files(&cert_path, &key_path)
        .unwrap()
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    assert!(server.ws_url().starts_with("wss://"));
    let url = format!("wss://localhost:{}/ws", server.local_addr().unwrap().port());

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let tls = Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    for codec in [Codec::Json, Codec::Postcard] {
        let client = Client::builder(url.clone())
            .codec(codec)
            .tls(Arc::clone(&tls))
            .connect()
            .await
            .unwrap();
        assert_eq!(
            client.request(&Ping("over tls".into())).await.unwrap(),
            "pong over tls"
        );
        client.disconnect().await;
    }

    // A client that does not trust the certificate cannot connect.
    let untrusting = Client::builder(url).connect().await;
    assert!(
        matches!(
            untrusting,
            Err(ClientError::Connect { .. }) | Err(ClientError::Upgrade(_))
        ),
        "{untrusting:?}"
    );

    // Plain ws:// to a TLS port fails too.
    let plain = format!("ws://127.0.0.1:{}/ws", server.local_addr().unwrap().port());
    assert!(Client::connect(plain).await.is_err());
    std::fs::remove_dir_all(dir).unwrap();
}
