//! The process-wide event registry: every `#[event]` type linked into the program.
//!
//! `#[event]` submits one [`EventRecord`] per type (through the `inventory`
//! crate). The registry can be listed, checked for clashing ids or keys, and
//! condensed into a [`schema_hash`] that two peers compare at handshake.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::EventKey;
use crate::event::{FNV64_OFFSET, fnv1a_64};

/// One registered event, as `#[event]` recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRecord {
    /// The event id, `namespace/name`.
    pub id: &'static str,
    /// The id's [`EventKey`].
    pub key: EventKey,
    /// The Rust type's name as written at its definition.
    pub type_name: &'static str,
    /// The reply type as written in `reply = ...`, or `None` for a one-way event.
    pub reply_type: Option<&'static str>,
    /// `module_path!()` where the type is defined.
    pub module_path: &'static str,
}

impl EventRecord {
    /// Whether sente-lite itself declares this event (`telemetry/batch`), as
    /// opposed to the application. Library events are routed like any other
    /// but are left out of the [`schema_hash`].
    pub fn is_library(&self) -> bool {
        self.module_path == "sente_lite" || self.module_path.starts_with("sente_lite::")
    }

    /// `module::path::TypeName`, as used in error messages.
    pub fn qualified_name(&self) -> String {
        format!("{}::{}", self.module_path, self.type_name)
    }
}

inventory::collect!(EventRecord);

/// Two events that cannot live in one program or one router.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClashError {
    /// Two types declare the same event id.
    #[error(
        "event id `{id}` is declared twice: by `{first}` and by `{second}`; give one of them another id"
    )]
    SameId {
        /// The id both declare.
        id: &'static str,
        /// The first type, with its module path.
        first: String,
        /// The second type, with its module path.
        second: String,
    },
    /// Two different ids hash to the same [`EventKey`].
    #[error(
        "event ids `{first_id}` (`{first}`) and `{second_id}` (`{second}`) share the key {key}; rename one of them"
    )]
    SameKey {
        /// The shared key.
        key: EventKey,
        /// The first id.
        first_id: &'static str,
        /// The first type, with its module path.
        first: String,
        /// The second id.
        second_id: &'static str,
        /// The second type, with its module path.
        second: String,
    },
}

/// Checks a set of records for a repeated id or a key collision.
pub(crate) fn find_clash<'a>(
    records: impl IntoIterator<Item = &'a EventRecord>,
) -> Result<(), ClashError> {
    let mut seen: HashMap<EventKey, &EventRecord> = HashMap::new();
    for rec in records {
        if let Some(prev) = seen.insert(rec.key, rec) {
            if prev == rec {
                continue;
            }
            return Err(if prev.id == rec.id {
                ClashError::SameId {
                    id: rec.id,
                    first: prev.qualified_name(),
                    second: rec.qualified_name(),
                }
            } else {
                ClashError::SameKey {
                    key: rec.key,
                    first_id: prev.id,
                    first: prev.qualified_name(),
                    second_id: rec.id,
                    second: rec.qualified_name(),
                }
            });
        }
    }
    Ok(())
}

/// Every event registered in this program, sorted by id.
pub fn events() -> &'static [EventRecord] {
    static EVENTS: OnceLock<Vec<EventRecord>> = OnceLock::new();
    EVENTS.get_or_init(|| {
        let mut all: Vec<EventRecord> = inventory::iter::<EventRecord>().copied().collect();
        all.sort_by(|a, b| {
            (a.id, a.module_path, a.type_name).cmp(&(b.id, b.module_path, b.type_name))
        });
        all.dedup();
        all
    })
}

/// Looks up a registered event by id.
pub fn by_id(id: &str) -> Option<&'static EventRecord> {
    events().iter().find(|r| r.id == id)
}

/// Checks the whole registry: no id declared by two types, no two ids sharing a key.
///
/// Servers and clients run this when they are built; call it yourself at start-up
/// to fail early.
pub fn check() -> Result<(), ClashError> {
    find_clash(events())
}

/// A stable 64-bit hash of the schema: every registered application event's
/// id, whether it is a request, and its reply type's name (last path segment).
/// Events of sente-lite itself ([`EventRecord::is_library`]) are left out, so a
/// peer written in another language computes the same hash from the
/// application's events alone.
///
/// Computed as 64-bit FNV-1a over the lines `id \t kind \t reply \n`, sorted by
/// id, where kind is `event` or `request` and reply is the reply type as written,
/// without paths or spaces (`Vec<crate::User>` is `Vec<User>`), empty for events. Two
/// peers built from the same event definitions get the same hash, whatever the
/// platform or build. It is sent in the handshake as 16 lowercase hex digits.
pub fn schema_hash() -> u64 {
    schema_hash_of(events().iter().filter(|r| !r.is_library()))
}

/// The [`schema_hash`] of a given set of records.
pub fn schema_hash_of<'a>(records: impl IntoIterator<Item = &'a EventRecord>) -> u64 {
    let mut lines: Vec<(&str, &str, String)> = records
        .into_iter()
        .map(|r| {
            let reply = r.reply_type.map_or_else(String::new, bare_type_name);
            let kind = if r.reply_type.is_some() {
                "request"
            } else {
                "event"
            };
            (r.id, kind, reply)
        })
        .collect();
    lines.sort_unstable();
    lines.dedup();
    let mut hash = FNV64_OFFSET;
    for (id, kind, reply) in lines {
        for part in [id, "\t", kind, "\t", &reply, "\n"] {
            hash = fnv1a_64(hash, part.as_bytes());
        }
    }
    hash
}

/// A type as written, without paths or spaces: `Vec<crate::api::User>` is `Vec<User>`.
fn bare_type_name(written: &str) -> String {
    let mut out = String::with_capacity(written.len());
    let mut word = String::new();
    let mut chars = written.chars().filter(|c| !c.is_whitespace()).peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
        } else if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            word.clear();
        } else {
            out.push_str(&word);
            word.clear();
            out.push(c);
        }
    }
    out.push_str(&word);
    out
}

/// [`schema_hash`] as the 16 lowercase hex digits sent in the handshake.
pub fn schema_hash_hex() -> String {
    format!("{:016x}", schema_hash())
}

#[cfg(test)]
mod tests {
    use super::bare_type_name;

    #[test]
    fn reply_types_hash_without_their_paths() {
        assert_eq!(bare_type_name("User"), "User");
        assert_eq!(bare_type_name("crate::api::User"), "User");
        assert_eq!(bare_type_name("Vec < crate::User >"), "Vec<User>");
        assert_eq!(
            bare_type_name("std::collections::HashMap<String, ::api::User>"),
            "HashMap<String,User>"
        );
        assert_eq!(bare_type_name("()"), "()");
    }
}
