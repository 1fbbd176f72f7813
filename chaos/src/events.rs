//! The events of the chaos harness, shared by its server and its native
//! client (the Node client writes the same ids and payloads).
//!
//! Every message a client sends carries its name and a sequence number of its
//! own (per kind, from 1), so that the server's records and the client's
//! ledger can be matched one by one.

use serde::{Deserialize, Serialize};

/// A one-way event; the server records it (`E client seq`).
#[sente_lite::event("chaos/event")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Note {
    /// The sending client.
    pub client: String,
    /// Its number among the client's events.
    pub seq: u64,
}

/// A request; the server records it (`R client seq`) and answers `seq`.
#[sente_lite::event("chaos/request", reply = u64)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ask {
    /// The asking client.
    pub client: String,
    /// Its number among the client's requests.
    pub seq: u64,
}

/// Publish [`Numbered`] `seq` on the client's channel `feed/<client>`; the
/// server records it (`P client seq`) and answers the publication's position
/// (epoch, offset).
#[sente_lite::event("chaos/publish", reply = (String, u64))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Publish {
    /// The publishing client.
    pub client: String,
    /// Its number among the client's publications.
    pub seq: u64,
}

/// What `chaos/publish` publishes on `feed/<from>`.
#[sente_lite::event("chaos/pub")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Numbered {
    /// The client that asked for the publication.
    pub from: String,
    /// Its number among that client's publications.
    pub seq: u64,
}

/// A client says which server run it reached: sent once before traffic
/// starts (`H client 0`) and once after it stopped (`F client 0`), each
/// answered with the run's id.
#[sente_lite::event("chaos/mark", reply = String)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Mark {
    /// The client.
    pub client: String,
    /// `true` after traffic stopped (`F`), `false` before it starts (`H`).
    pub last: bool,
}

/// The channel a client publishes on.
pub fn feed(client: &str) -> String {
    format!("feed/{client}")
}
