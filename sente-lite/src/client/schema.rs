//! The client's side of the schema hash: comparing the server's with its own
//! at each handshake and, when they differ, naming the events that differ.

use std::fmt;
use std::sync::{Arc, Mutex, Weak};

use super::shared::{Shared, lock};
use crate::schema::{Description, Difference};

/// Called once per server schema that differs from this program's.
pub(crate) type SchemaCallback = Arc<dyn Fn(&SchemaMismatch) + Send + Sync>;

/// The server's schema hash differs from this program's: some event is
/// declared on one side only, or with another shape (see [`crate::schema`]).
///
/// Reported to [`ClientBuilder::on_schema_mismatch`](super::ClientBuilder::on_schema_mismatch)
/// and kept in [`Client::schema_mismatch`](super::Client::schema_mismatch). The
/// connection goes on: an event the server does not know is answered
/// `bad-event`, but an event both know under different shapes may fail to
/// decode on either side, or decode into something else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaMismatch {
    /// This program's schema hash, 16 lowercase hex digits.
    pub ours: String,
    /// The server's, from its handshake.
    pub theirs: String,
    /// The events that differ, by id, from the server's published description
    /// ([`Difference::OnlyOurs`]: this client declares it and the server does
    /// not); or why the description could not be had (the server does not
    /// publish it, or it could not be fetched).
    pub differences: Result<Vec<Difference>, String>,
}

impl fmt::Display for SchemaMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the server's schema ({}) differs from this client's ({})",
            self.theirs, self.ours
        )?;
        match &self.differences {
            Ok(differences) if differences.is_empty() => {
                f.write_str(", but its description shows no difference")
            }
            Ok(differences) => {
                f.write_str(": ")?;
                for (i, difference) in differences.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{difference}")?;
                }
                Ok(())
            }
            Err(why) => write!(f, " (which events: unknown, {why})"),
        }
    }
}

/// What the client knows of the server's schema.
#[derive(Default)]
pub(crate) struct SchemaCheck {
    /// The server hash last checked: the same hash is checked once.
    checked: Option<String>,
    /// The mismatch with it, once its description was fetched (or failed to be).
    mismatch: Option<Arc<SchemaMismatch>>,
}

impl SchemaCheck {
    pub(crate) fn mismatch(check: &Mutex<Self>) -> Option<Arc<SchemaMismatch>> {
        lock(check).mismatch.clone()
    }
}

/// Compares the server's hash from a handshake with this program's; on a new
/// difference, fetches the server's description in the background and reports.
pub(crate) fn check_handshake(shared: &Arc<Shared>, theirs: &str) {
    let ours = crate::schema::schema_hash_hex();
    {
        let mut check = lock(&shared.schema);
        if check.checked.as_deref() == Some(theirs) {
            return;
        }
        check.checked = Some(theirs.to_owned());
        check.mismatch = None;
    }
    if theirs == ours {
        return;
    }
    let fetch = shared.describe.clone();
    let weak: Weak<Shared> = Arc::downgrade(shared);
    let theirs = theirs.to_owned();
    tokio::spawn(async move {
        let differences = match &fetch {
            Some(fetch) => fetch.run().await.map(|description| {
                let hash = format!("{:016x}", description.hash());
                if hash != theirs {
                    // Another server behind the same address, or one mid-upgrade:
                    // the differences are those of the description read.
                    tracing::warn!(
                        target: "sente_lite",
                        "the server's description hashes to {hash}, not its handshake's {theirs}"
                    );
                }
                Description::of_this_program().differences(&description)
            }),
            None => Err("the server's description has no url".to_owned()),
        };
        let mismatch = Arc::new(SchemaMismatch {
            ours: ours.to_owned(),
            theirs,
            differences,
        });
        let Some(shared) = weak.upgrade() else {
            return;
        };
        {
            let mut check = lock(&shared.schema);
            if check.checked.as_deref() != Some(mismatch.theirs.as_str()) {
                // Another server schema was seen meanwhile; it is reported instead.
                return;
            }
            check.mismatch = Some(Arc::clone(&mismatch));
        }
        tracing::warn!(target: "sente_lite", "{mismatch}");
        if let Some(callback) = &shared.settings.on_schema_mismatch {
            callback(&mismatch);
        }
    });
}
