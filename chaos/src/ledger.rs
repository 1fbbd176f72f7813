//! A client's ledger: everything it sent and how each ended, as far as its
//! client API told it, and every publication it received, in order, with the
//! gaps it was told of. Each client process prints its ledger as one JSON
//! line, `ledger {...}`, when the orchestrator asks for it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A channel's position: its epoch and the offset of a publication in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The channel's generation.
    pub epoch: String,
    /// The publication's number within the epoch.
    pub offset: u64,
}

/// One thing that happened on a channel a client subscribed to, in the order
/// the client saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Arrival {
    /// Publication number `seq` of the channel's publisher arrived.
    Publication(u64),
    /// The client was told of a gap: a subscription restored with
    /// `recovered: false`, starting after `gap` (the server's answer).
    Gap {
        /// The position the restored subscription starts after.
        gap: Option<Position>,
    },
}

/// How a publication request ended for its publisher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishOutcome {
    /// `ok`, or the error code the client API gave (`closed`, `timeout`...).
    pub outcome: String,
    /// Where the publication landed, when the server answered `ok`.
    pub position: Option<Position>,
}

/// A one-way event the client API refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The event's number.
    pub seq: u64,
    /// The error the client API gave.
    pub code: String,
}

/// Everything one client process reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    /// The client's name (unique in a run).
    pub client: String,
    /// Which client it is: `native-json`, `native-postcard` or `node`.
    pub kind: String,
    /// The server run its `chaos/mark` reached before traffic started.
    pub first_run: String,
    /// The server run its `chaos/mark` reached after traffic stopped.
    pub last_run: String,
    /// How many times it connected again after a connection was lost.
    pub reconnects: u64,
    /// One-way events sent: numbered `1..=events_sent`.
    pub events_sent: u64,
    /// The events among them the client API refused.
    pub events_refused: Vec<Refusal>,
    /// How each request ended (index `seq - 1`): `ok`, `wrong-reply`, or the
    /// error code the client API gave (`closed`, `timeout`, a server's code).
    pub requests: Vec<String>,
    /// How each publication request ended (index `seq - 1`).
    pub publishes: Vec<PublishOutcome>,
    /// What arrived on each channel, by the name of its publisher.
    pub received: BTreeMap<String, Vec<Arrival>>,
    /// Subscriptions the server refused to restore (each reported by the
    /// client API; the client subscribed again).
    pub resubscribe_refused: u64,
}

impl Ledger {
    /// The line a client prints.
    pub fn to_line(&self) -> String {
        format!(
            "ledger {}",
            serde_json::to_string(self).expect("a ledger serializes")
        )
    }

    /// Parses a line printed with [`Ledger::to_line`].
    pub fn from_line(line: &str) -> Option<Result<Self, serde_json::Error>> {
        line.strip_prefix("ledger ").map(serde_json::from_str)
    }
}
