//! The process-wide event registry: every `#[event]` type linked into the program.
//!
//! `#[event]` submits one [`EventRecord`] per type (through the `inventory`
//! crate). The registry can be listed, checked for clashing ids or keys, and
//! condensed into a [`schema_hash`] that two peers compare at handshake.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::EventKey;

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

/// The schema hash of this program: 64-bit FNV-1a over the shapes of every
/// registered application event (see [`crate::schema`]). Events of sente-lite
/// itself ([`EventRecord::is_library`]) are left out, so a peer written in
/// another language computes the same hash from the application's events
/// alone.
pub fn schema_hash() -> u64 {
    crate::schema::Description::of_this_program().hash()
}

/// [`schema_hash`] as the 16 lowercase hex digits sent in the handshake.
pub fn schema_hash_hex() -> String {
    crate::schema::schema_hash_hex().to_owned()
}

/// An event's payload read from JSON by its Rust type and written again in
/// each encoding, as [`transcode`] makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcoded {
    /// The payload as JSON text, as this program writes it.
    pub json: bytes::Bytes,
    /// The payload as postcard bytes, `None` when the type cannot be written
    /// in postcard (a self-describing value, for example).
    pub postcard: Option<bytes::Bytes>,
}

/// How `#[event]` lets code that has no Rust value of the event (the HTTP
/// API) check and encode a payload written in JSON.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct TranscodeRecord {
    /// The event id.
    pub id: &'static str,
    /// Reads the JSON payload as the event's type and writes it again.
    pub transcode: fn(&str) -> Result<Transcoded, String>,
}

inventory::collect!(TranscodeRecord);

/// The payload `json` of the registered event `id`, read by its Rust type
/// (what does not fit, as a message with the path of the field) and written
/// in each encoding. `None` when no event `id` is registered here.
pub fn transcode(id: &str, json: &str) -> Option<Result<Transcoded, String>> {
    inventory::iter::<TranscodeRecord>()
        .find(|record| record.id == id)
        .map(|record| (record.transcode)(json))
}

/// Picks, at compile time, the transcoder of a type that `#[event]` made an
/// event, and a stand-in for one that is not (its bounds are missing: the
/// macro's own check reports that, once, and nothing else must). Method
/// lookup on `&&TranscodeProbe<T>` takes [`TranscodeEvent`] when `T: Event`
/// holds and falls back to [`TranscodeNothing`] otherwise.
#[doc(hidden)]
pub struct TranscodeProbe<T>(std::marker::PhantomData<T>);

impl<T> TranscodeProbe<T> {
    #[doc(hidden)]
    pub const fn new() -> Self {
        Self(std::marker::PhantomData)
    }
}

#[doc(hidden)]
pub trait TranscodeEvent {
    fn transcode(&self, json: &str) -> Result<Transcoded, String>;
}

impl<E: crate::Event> TranscodeEvent for &TranscodeProbe<E> {
    fn transcode(&self, json: &str) -> Result<Transcoded, String> {
        transcode_as::<E>(json)
    }
}

#[doc(hidden)]
pub trait TranscodeNothing {
    fn transcode(&self, json: &str) -> Result<Transcoded, String>;
}

impl<T> TranscodeNothing for TranscodeProbe<T> {
    fn transcode(&self, _json: &str) -> Result<Transcoded, String> {
        Err("not an event".into())
    }
}

/// [`TranscodeRecord::transcode`] for event type `E`.
fn transcode_as<E: crate::Event>(json: &str) -> Result<Transcoded, String> {
    let mut de = serde_json::Deserializer::from_str(json);
    let value: E = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.into_inner().to_string()
        } else {
            format!("{path}: {}", e.into_inner())
        }
    })?;
    de.end().map_err(|e| e.to_string())?;
    let json = crate::Codec::Json
        .encode_payload(E::ID, &value)
        .map_err(|e| e.to_string())?;
    let postcard = crate::Codec::Postcard.encode_payload(E::ID, &value).ok();
    Ok(Transcoded { json, postcard })
}
