// The authorisation of a typed channel receives the channel, parsed.
fn build() -> sente_lite::server::ServerBuilder {
    sente_lite::Server::builder().typed_channel(|name: String, _access| async move {
        let _ = name;
        Ok(())
    })
}

fn main() {}
