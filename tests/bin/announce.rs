//! How a test server process says it is ready: `listening ADDR` on its own
//! line of standard output, which the test that started it waits for.

use tokio::io::AsyncWriteExt;

/// Prints `listening ADDR` (the server's bound address) and flushes it.
pub(crate) async fn listening(
    server: &sente_lite::Server,
) -> Result<(), Box<dyn std::error::Error>> {
    let addr = server.local_addr().ok_or("no local address")?;
    let mut out = tokio::io::stdout();
    out.write_all(format!("listening {addr}\n").as_bytes())
        .await?;
    out.flush().await?;
    Ok(())
}
