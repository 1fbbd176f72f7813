// `join` takes a typed channel; a name is subscribed with `subscribe`.
async fn read(client: sente_lite::Client) {
    let _ = client.join("room/lobby").await;
}

fn main() {}
