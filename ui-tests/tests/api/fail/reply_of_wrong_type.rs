// A request's answer is its declared reply type.
#[path = "../../common/events.rs"]
mod events;

use events::*;

async fn ask(client: sente_lite::Client) -> Result<(), sente_lite::RequestError> {
    let name: String = client.request(&GetUser { id: 1 }).await?;
    let _ = name;
    Ok(())
}

fn main() {}
