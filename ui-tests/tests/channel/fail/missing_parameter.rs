// Joining a channel names every parameter of its pattern.
#[path = "../../common/events.rs"]
mod events;

use events::*;

#[sente_lite::channel("org/{org}/team/{team}", events(Said))]
pub struct Team {
    pub org: u32,
    pub team: String,
}

async fn read(client: sente_lite::Client) {
    let _ = client.join(Team { org: 7 }).await;
}

fn main() {}
