//! The schema: the shapes of the application's events, described, hashed and
//! compared.
//!
//! `#[event]` records the shape of each event's payload and, for a request, of
//! its reply: a JSON Schema (draft 2020-12) made by [`schemars`], which follows
//! the serde attributes (`rename`, `rename_all`, `tag`, `content`, `untagged`,
//! `skip`, `default`, `flatten`, ...) so the shape is what goes on the wire.
//! `#[event]` derives [`JsonSchema`] on the event type
//! itself; the types it contains, and reply types, derive it as they derive
//! `Serialize`:
//!
//! ```
//! use serde::{Deserialize, Serialize};
//!
//! /// Ask for a user.
//! #[sente_lite::event("doc.schema/get", reply = Profile)]
//! #[derive(Serialize, Deserialize)]
//! struct GetProfile {
//!     id: u32,
//! }
//!
//! /// What `doc.schema/get` answers.
//! #[derive(Serialize, Deserialize, schemars::JsonSchema)]
//! struct Profile {
//!     name: String,
//!     #[serde(default)]
//!     bio: Option<String>,
//! }
//!
//! let ours = sente_lite::schema::Description::of_this_program();
//! let get = ours.event("doc.schema/get").expect("registered");
//! assert_eq!(get.payload.to_string(), r#"{"type":"object","properties":{"id":{"type":"integer","format":"uint32","minimum":0}},"required":["id"]}"#);
//! assert!(get.reply.is_some());
//! ```
//!
//! The [`Description`] of every application event (the library's own events are
//! left out) is condensed into the **schema hash** that the server sends in its
//! handshake and that a client compares with its own. The server publishes the
//! description at `GET /schema`, so a client in any language can recompute the
//! hash, and a client whose hash differs can name the events whose shapes
//! differ ([`Description::differences`]). `docs/PROTOCOL.md` ("Schema hash")
//! specifies the computation exactly.
//!
//! Only the wire shape counts: doc comments, titles, defaults and examples are
//! left out, and so are the Rust names of the types (except where a recursive
//! type is referred to by name in `$defs`). The order of a struct's fields
//! counts, as the binary encoding sends fields in order.

mod canonical;

use std::sync::OnceLock;

use schemars::generate::SchemaSettings;
use schemars::transform::RecursiveTransform;
use schemars::{JsonSchema, Schema};
use serde::{Deserialize, Serialize};

use crate::event::{FNV64_OFFSET, fnv1a_64};

pub use canonical::canonical_json;

/// The version of the [`Description`] format, its `version` field.
pub const DESCRIPTION_VERSION: u32 = 1;

/// The file [`Description::write_to`] writes into its directory, beside the
/// TypeScript declarations (`events.d.ts`).
pub const DESCRIPTION_FILE_NAME: &str = "events.schema.json";

/// The path where a server publishes its [`Description`] (unless
/// `ServerConfig::publish_schema` is off).
pub const DESCRIPTION_PATH: &str = "/schema";

/// The shapes of one event, as `#[event]` records them.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct ShapeRecord {
    /// The event id.
    pub id: &'static str,
    /// `module_path!()` where the type is defined.
    pub module_path: &'static str,
    /// The payload's shape.
    pub payload: fn() -> Schema,
    /// The reply's shape, for a request.
    pub reply: Option<fn() -> Schema>,
}

inventory::collect!(ShapeRecord);

impl ShapeRecord {
    fn is_library(&self) -> bool {
        self.module_path == "sente_lite" || self.module_path.starts_with("sente_lite::")
    }
}

/// The shape of `T`: its JSON Schema without annotations (titles, descriptions,
/// defaults, examples), with every type inlined except recursive ones.
pub fn shape_of<T: JsonSchema + ?Sized>() -> Schema {
    let mut settings = SchemaSettings::draft2020_12();
    settings.inline_subschemas = true;
    settings.meta_schema = None;
    settings
        .with_transform(RecursiveTransform(strip_annotations))
        .into_generator()
        .into_root_schema_for::<T>()
}

/// A reply type the schema hash can describe: every type with a JSON Schema.
///
/// It exists for its error message: `reply = User` on a `User` without
/// `JsonSchema` says what to derive.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "the reply type `{Self}` has no shape for the schema hash",
    label = "`{Self}` does not implement `JsonSchema`",
    note = "add `#[derive(sente_lite::schemars::JsonSchema)]` to `{Self}` and to the types its fields use, or implement `JsonSchema` by hand"
)]
pub trait ReplyShape {
    /// The reply's shape.
    fn reply_shape() -> Schema;
}

impl<T: JsonSchema + ?Sized> ReplyShape for T {
    fn reply_shape() -> Schema {
        shape_of::<T>()
    }
}

/// Keywords that say something about a value without constraining its shape.
const ANNOTATIONS: [&str; 8] = [
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$comment",
];

fn strip_annotations(schema: &mut Schema) {
    if let Some(object) = schema.as_object_mut() {
        for keyword in ANNOTATIONS {
            object.remove(keyword);
        }
    }
}

/// Whether an event is one-way or a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// A one-way event.
    Event,
    /// A request, answered by one reply.
    Request,
}

impl EventKind {
    /// `"event"` or `"request"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Event => "event",
            Self::Request => "request",
        }
    }
}

/// One event in a [`Description`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventShape {
    /// The event id.
    pub id: String,
    /// One-way or request.
    pub kind: EventKind,
    /// The payload's shape: a JSON Schema (draft 2020-12) document.
    pub payload: serde_json::Value,
    /// The reply's shape, for a request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<serde_json::Value>,
}

impl EventShape {
    /// The event's line in the schema hash:
    /// `id \t kind \t payload \t reply \n`, shapes in canonical JSON.
    fn hash_line(&self) -> String {
        let reply = self.reply.as_ref().map(canonical_json).unwrap_or_default();
        format!(
            "{}\t{}\t{}\t{}\n",
            self.id,
            self.kind.as_str(),
            canonical_json(&self.payload),
            reply
        )
    }
}

/// The shapes of a program's application events: what the server publishes at
/// `GET /schema`, and what the schema hash is computed from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Description {
    /// The format's version, [`DESCRIPTION_VERSION`].
    pub version: u32,
    /// The schema hash of `events`, 16 lowercase hex digits (as in the handshake).
    pub schema_hash: String,
    /// The events, sorted by id.
    pub events: Vec<EventShape>,
}

impl Description {
    /// The description of this program's application events (every `#[event]`
    /// linked in, except the library's own), built once.
    pub fn of_this_program() -> &'static Description {
        static OURS: OnceLock<Description> = OnceLock::new();
        OURS.get_or_init(|| {
            let mut events: Vec<EventShape> = inventory::iter::<ShapeRecord>()
                .filter(|record| !record.is_library())
                .map(|record| EventShape {
                    id: record.id.to_owned(),
                    kind: if record.reply.is_some() {
                        EventKind::Request
                    } else {
                        EventKind::Event
                    },
                    payload: (record.payload)().to_value(),
                    reply: record.reply.map(|reply| reply().to_value()),
                })
                .collect();
            events.sort_by(|a, b| a.id.cmp(&b.id));
            // The same event registered twice (a type linked in through two
            // paths) is one event; two types with one id are a clash that
            // `registry::check` reports.
            events.dedup_by(|a, b| a == b);
            Description::new(events)
        })
    }

    /// A description of these events, with its hash.
    pub fn new(mut events: Vec<EventShape>) -> Self {
        events.sort_by(|a, b| a.id.cmp(&b.id));
        let schema_hash = format!("{:016x}", hash_of(&events));
        Self {
            version: DESCRIPTION_VERSION,
            schema_hash,
            events,
        }
    }

    /// The schema hash of the events, computed from them (not read from
    /// `schema_hash`): 64-bit FNV-1a over each event's line, in id order.
    pub fn hash(&self) -> u64 {
        hash_of(&self.events)
    }

    /// The event with this id.
    pub fn event(&self, id: &str) -> Option<&EventShape> {
        self.events.iter().find(|event| event.id == id)
    }

    /// The description as JSON, as served at `GET /schema`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Writes [`Description::to_json`] to `dir/events.schema.json`
    /// ([`DESCRIPTION_FILE_NAME`]), creating `dir` when needed, and returns the
    /// file's path. The JavaScript client takes it as its `schema` option.
    pub fn write_to(
        &self,
        dir: impl AsRef<std::path::Path>,
    ) -> std::io::Result<std::path::PathBuf> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir)?;
        let path = dir.join(DESCRIPTION_FILE_NAME);
        std::fs::write(&path, self.to_json())?;
        Ok(path)
    }

    /// Reads a description from JSON.
    pub fn from_json(text: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(text)
    }

    /// The events on which `self` (ours) and `theirs` disagree, by id: declared
    /// on one side only, or with a different kind or shape.
    pub fn differences(&self, theirs: &Description) -> Vec<Difference> {
        let mut out = Vec::new();
        for ours in &self.events {
            match theirs.event(&ours.id) {
                None => out.push(Difference::OnlyOurs {
                    id: ours.id.clone(),
                }),
                Some(other) => {
                    let payload = canonical_json(&ours.payload) != canonical_json(&other.payload);
                    let reply = ours.kind != other.kind
                        || ours.reply.as_ref().map(canonical_json)
                            != other.reply.as_ref().map(canonical_json);
                    if payload || reply {
                        out.push(Difference::Shape {
                            id: ours.id.clone(),
                            payload,
                            reply,
                        });
                    }
                }
            }
        }
        for other in &theirs.events {
            if self.event(&other.id).is_none() {
                out.push(Difference::OnlyTheirs {
                    id: other.id.clone(),
                });
            }
        }
        out.sort_by(|a, b| a.id().cmp(b.id()));
        out
    }
}

fn hash_of(events: &[EventShape]) -> u64 {
    let mut lines: Vec<String> = events.iter().map(EventShape::hash_line).collect();
    lines.sort_unstable();
    lines
        .iter()
        .fold(FNV64_OFFSET, |hash, line| fnv1a_64(hash, line.as_bytes()))
}

/// An event on which two descriptions disagree.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Difference {
    /// Only our side declares the event.
    OnlyOurs {
        /// The event id.
        id: String,
    },
    /// Only their side declares the event.
    OnlyTheirs {
        /// The event id.
        id: String,
    },
    /// Both declare the event, with different shapes.
    Shape {
        /// The event id.
        id: String,
        /// Whether the payloads' shapes differ.
        payload: bool,
        /// Whether the replies differ: their shapes, or one side declares a
        /// request and the other a one-way event.
        reply: bool,
    },
}

impl Difference {
    /// The event id.
    pub fn id(&self) -> &str {
        match self {
            Self::OnlyOurs { id } | Self::OnlyTheirs { id } | Self::Shape { id, .. } => id,
        }
    }
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::OnlyOurs { id } => write!(f, "`{id}` is declared here only"),
            Self::OnlyTheirs { id } => write!(f, "`{id}` is declared by the peer only"),
            Self::Shape { id, payload, reply } => {
                let what = match (payload, reply) {
                    (true, true) => "payload and reply",
                    (true, false) => "payload",
                    _ => "reply",
                };
                write!(f, "`{id}` has another {what} shape")
            }
        }
    }
}

/// The [`Description`] hash of this program, as in the handshake: 16 lowercase
/// hex digits.
pub fn schema_hash_hex() -> &'static str {
    &Description::of_this_program().schema_hash
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A unit struct, as a payload.
    #[derive(schemars::JsonSchema)]
    struct Ping;

    #[test]
    fn the_protocol_example_hashes_as_documented() {
        let payload = shape_of::<Ping>().to_value();
        assert_eq!(payload, json!({"type": "null"}));
        let description = Description::new(vec![EventShape {
            id: "chat/ping".into(),
            kind: EventKind::Event,
            payload,
            reply: None,
        }]);
        assert_eq!(description.schema_hash, "716c4e9cac642e9a");
        assert_eq!(
            format!("{:016x}", Description::new(Vec::new()).hash()),
            "cbf29ce484222325"
        );
    }

    #[test]
    fn a_description_reads_back_and_names_its_differences() {
        let event = |id: &str, kind, payload| EventShape {
            id: id.into(),
            kind,
            payload,
            reply: (kind == EventKind::Request).then(|| json!({"type": "string"})),
        };
        let ours = Description::new(vec![
            event(
                "a/same",
                EventKind::Event,
                json!({"type": "array", "items": {}}),
            ),
            event("a/kind", EventKind::Event, json!({"type": "null"})),
            event("a/ours", EventKind::Event, json!({"type": "null"})),
        ]);
        let theirs = Description::new(vec![
            // The order of a schema's keywords does not count.
            event(
                "a/same",
                EventKind::Event,
                json!({"items": {}, "type": "array"}),
            ),
            event("a/kind", EventKind::Request, json!({"type": "null"})),
            event("a/theirs", EventKind::Event, json!({"type": "null"})),
        ]);
        let read = Description::from_json(theirs.to_json().as_bytes()).unwrap();
        assert_eq!(read, theirs);
        assert_eq!(
            ours.differences(&read),
            vec![
                Difference::Shape {
                    id: "a/kind".into(),
                    payload: false,
                    reply: true
                },
                Difference::OnlyOurs {
                    id: "a/ours".into()
                },
                Difference::OnlyTheirs {
                    id: "a/theirs".into()
                },
            ]
        );
    }
}
