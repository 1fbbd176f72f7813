//! A server and a client of a crate that knows sente-lite only as `sl`.

use sente_lite_renamed_test::{Len, router};
use sl::{Client, Codec, Event, Server};

#[tokio::test]
async fn a_renamed_dependency_serves_and_answers() {
    assert_eq!(Len::ID, "renamed/len");
    let record = sl::registry::by_id("renamed/say").expect("registered");
    assert_eq!(record.module_path, "sente_lite_renamed_test");
    let server = Server::builder()
        .router(router())
        .bind("127.0.0.1:0")
        .await
        .expect("binds");
    for codec in [Codec::Json, Codec::Postcard] {
        let client = Client::builder(server.ws_url())
            .codec(codec)
            .connect()
            .await
            .expect("connects");
        let len = client
            .request(&Len {
                text: "héllo".into(),
            })
            .await
            .expect("answered");
        assert_eq!(len, 6, "{codec:?}");
        client.disconnect().await;
    }
}
