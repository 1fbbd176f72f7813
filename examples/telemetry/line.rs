//! What the pipeline writes: one JSON object per line, a record or a report
//! of losses, each numbered within its session.

use std::collections::BTreeMap;

use sente_lite::telemetry::{TelemetryEntry, TelemetryLevel, TelemetryLosses, TelemetryOrigin};
use serde::{Deserialize, Serialize};

/// One line of a session's file, as written and as the tail page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(crate) enum Line {
    /// A client's record.
    Record(RecordLine),
    /// Records of this session lost on the way, by cause.
    Losses(LossesLine),
}

impl Line {
    /// Its number within its session, from 1.
    pub(crate) fn seq(&self) -> u64 {
        match self {
            Line::Record(r) => r.seq,
            Line::Losses(l) => l.seq,
        }
    }

    pub(crate) fn set_seq(&mut self, seq: u64) {
        match self {
            Line::Record(r) => r.seq = seq,
            Line::Losses(l) => l.seq = seq,
        }
    }
}

/// A client's record, with who sent it and when the server got it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub(crate) struct RecordLine {
    pub(crate) seq: u64,
    /// The client's session, as it named it (escaped).
    pub(crate) session: String,
    pub(crate) conn_id: u64,
    /// Empty when anonymous.
    pub(crate) user: String,
    pub(crate) level: TelemetryLevel,
    pub(crate) source: String,
    pub(crate) message: String,
    pub(crate) fields: BTreeMap<String, String>,
    /// Fields the server left out past its limit.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) fields_dropped: u64,
    /// The client's clock.
    pub(crate) at_ms: u64,
    /// The server's clock.
    pub(crate) received_ms: u64,
}

impl RecordLine {
    pub(crate) fn new(
        origin: &TelemetryOrigin<'_>,
        entry: &TelemetryEntry<'_>,
        received_ms: u64,
    ) -> Self {
        Self {
            seq: 0,
            session: origin.session.to_owned(),
            conn_id: origin.conn_id.0,
            user: origin.user_id.to_owned(),
            level: entry.level(),
            source: entry.source().to_owned(),
            message: entry.message().to_owned(),
            fields: entry
                .fields()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            fields_dropped: u64::try_from(entry.fields_dropped()).unwrap_or(u64::MAX),
            at_ms: entry.at_ms(),
            received_ms,
        }
    }

    /// Bytes it holds in memory, about: what the queue's byte bound counts.
    pub(crate) fn weight(&self) -> usize {
        128 + self.session.len()
            + self.user.len()
            + self.source.len()
            + self.message.len()
            + self
                .fields
                .iter()
                .map(|(k, v)| 48 + k.len() + v.len())
                .sum::<usize>()
    }
}

/// Records of one session lost since its previous report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub(crate) struct LossesLine {
    pub(crate) seq: u64,
    pub(crate) session: String,
    /// The server's clock.
    pub(crate) at_ms: u64,
    /// Over the connection's budget.
    pub(crate) over_budget: u64,
    /// Past the records a batch may hold.
    pub(crate) over_batch_size: u64,
    /// Refused (anonymous, where a user is required).
    pub(crate) refused: u64,
    /// Lost by the client itself, its buffer full.
    pub(crate) dropped_by_client: u64,
    /// Dropped because the pipeline's queue to the disk was full.
    pub(crate) queue_full: u64,
}

impl LossesLine {
    pub(crate) fn add(&mut self, losses: &TelemetryLosses) {
        self.over_budget += losses.over_budget;
        self.over_batch_size += losses.over_batch_size;
        self.refused += losses.refused;
        self.dropped_by_client += losses.dropped_by_client;
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The name of a session's files: the session itself when it is 1 to 64 of
/// `A-Z a-z 0-9 _ -`, otherwise `x-` and a hash of it, so that no client can
/// name a path.
pub(crate) fn file_key(session: &str) -> String {
    let plain = (1..=64).contains(&session.len())
        && session
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain {
        return session.to_owned();
    }
    // FNV-1a, 64 bits.
    let hash = session.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    format!("x-{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_names_a_file_only_when_it_is_plain() {
        assert_eq!(file_key("9f86d081884c7d65"), "9f86d081884c7d65");
        assert_eq!(file_key("node-run_2"), "node-run_2");
        for hostile in ["../etc/passwd", "", "a/b", "a.b", &"x".repeat(65), "é"] {
            let key = file_key(hostile);
            assert!(
                key.starts_with("x-") && key.len() == 18,
                "{hostile:?} → {key}"
            );
        }
        assert_ne!(file_key("a/b"), file_key("a/c"));
    }
}
