//! Events that the schema server and the schema test declare alike: their
//! shapes, computed in two processes, must agree.

use serde::{Deserialize, Serialize};

/// Declared the same on both sides.
#[sente_lite::event("shape/same")]
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Same {
    /// A number.
    pub(crate) n: u32,
    /// A kind, as an enum of variants.
    pub(crate) kind: Kind,
}

/// The variants of [`Same::kind`].
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    /// One variant.
    Plain,
    /// Another, with data.
    Tagged {
        /// Its text.
        text: String,
    },
}
