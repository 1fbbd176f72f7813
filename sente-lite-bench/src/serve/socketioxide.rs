//! The socketioxide peer (socket.io protocol in Rust, served by axum), with
//! socketioxide's default settings: `echo` is acknowledged with its payload,
//! `join` puts the socket in the bench room (acknowledged), `publish` emits a
//! `tick` with the same data to everyone in the room.

use axum::serve::ListenerExt as _;
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Data, SocketRef};

use crate::events::ROOM;

/// Serves until the process is killed.
pub(crate) async fn serve(addr: &str) -> std::io::Result<()> {
    let (layer, io) = SocketIo::new_layer();
    io.ns("/", async |socket: SocketRef| {
        socket.on(
            "echo",
            async |ack: AckSender, Data(payload): Data<String>| {
                let _ = ack.send(&payload);
            },
        );
        socket.on("join", async |socket: SocketRef, ack: AckSender| {
            socket.join(ROOM);
            let _ = ack.send(&());
        });
        socket.on(
            "publish",
            async |socket: SocketRef, Data(tick): Data<serde_json::Value>| {
                let _ = socket.within(ROOM).emit("tick", &tick).await;
            },
        );
    });
    let app = axum::Router::new().layer(layer);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    super::announce(listener.local_addr()?);
    // As the other servers: no Nagle delay on small writes.
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    axum::serve(listener, app).await
}
