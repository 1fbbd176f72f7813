//! The event the recovery tests publish, numbered by each test, and how they
//! read it back.

// Each test file uses the part of this it needs.
#![allow(dead_code)]

use sente_lite::Server;
use serde::{Deserialize, Serialize};

use crate::support::Frame;

#[sente_lite::event("feed/item")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Item {
    pub(crate) n: u64,
}

/// Publishes item `n` on `channel`.
pub(crate) fn publish(server: &Server, channel: &str, n: u64) {
    server
        .broadcast(channel, &Item { n })
        .expect("the item encodes");
}

/// The offsets and items of `frames`, which must all be publications.
pub(crate) fn items(frames: &[Frame<Item>]) -> Vec<(u64, u64)> {
    frames
        .iter()
        .map(|frame| match frame {
            Frame::Pub {
                position: Some(position),
                event,
                ..
            } => (position.offset, event.n),
            other => panic!("expected a publication, got {other:?}"),
        })
        .collect()
}
