//! TypeScript declarations of the registered events, for the JavaScript client
//! (feature `typescript`).
//!
//! With the feature on, `#[event]` also records how to describe the event's
//! payload type and, for a request, its reply type in TypeScript. The
//! descriptions come from [`ts_rs::TS`]: derive it (`#[derive(ts_rs::TS)]`) on the
//! event types and on the types they contain. [`bindings`] walks every
//! registered event and yields one file: a declaration per type, then the
//! `Events` map keyed by event id that the JavaScript client's typings consume,
//! so that `client.request("user/get", { id: 1 })` is a `Promise<User>`.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//!
//! /// Ask for a user.
//! #[sente_lite::event("doc.ts/get-user", reply = User)]
//! #[derive(Serialize, Deserialize, ts_rs::TS)]
//! struct GetUser {
//!     id: u32,
//! }
//!
//! /// A user.
//! #[derive(Serialize, Deserialize, ts_rs::TS, schemars::JsonSchema)]
//! struct User {
//!     id: u32,
//!     name: String,
//! }
//!
//! let bindings = sente_lite::typescript::bindings_where(|id| id.starts_with("doc.ts/"));
//! assert!(bindings.errors().is_empty());
//! let text = bindings.to_typescript();
//! assert!(text.contains("export type User = { id: number, name: string, };"));
//! assert!(text.contains(r#""doc.ts/get-user": { kind: "request"; payload: GetUser; reply: User };"#));
//! ```
//!
//! Types that do not implement `TS` still compile: their events are written with
//! `unknown` and reported by [`Bindings::errors`], so an export command can refuse
//! them. Integers of 64 bits and more are declared as `number`, as the JSON
//! encoding sends them (JavaScript numbers are exact up to 2^53).

use std::any::type_name;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use ts_rs::{TS, TypeVisitor};

use crate::typescript_probe::{self as probe, Described, Probe, TsType};

/// The file [`Bindings::write_to`] writes into its directory.
pub const FILE_NAME: &str = "events.d.ts";

pub use crate::schema::EventKind;

/// One event as it appears in the `Events` map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBinding {
    /// The event id, `namespace/name`.
    pub id: &'static str,
    /// The Rust type, with its module path.
    pub rust_type: String,
    /// One-way or request.
    pub kind: EventKind,
    /// The payload's TypeScript type, or `None` when the Rust type does not implement `TS`.
    pub payload: Option<String>,
    /// The reply's TypeScript type; `None` for a one-way event, or when the reply
    /// type does not implement `TS`.
    pub reply: Option<String>,
}

/// Why the bindings are incomplete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindingError {
    /// An event's payload or reply type does not implement `ts_rs::TS`; it is
    /// written as `unknown`.
    #[error(
        "the {role} type of event `{id}` (`{rust_type}`) does not implement `ts_rs::TS`: add `#[derive(ts_rs::TS)]` to it"
    )]
    Undescribed {
        /// The event id.
        id: &'static str,
        /// The event's Rust type, with its module path.
        rust_type: String,
        /// `"payload"` or `"reply"`.
        role: &'static str,
    },
    /// A typed channel's parameter type does not implement `ts_rs::TS`; it
    /// is written as `unknown`.
    #[error(
        "parameter `{param}` of channel `{pattern}` (`{rust_type}`) has a type that does not implement `ts_rs::TS`: add `#[derive(ts_rs::TS)]` to it"
    )]
    UndescribedParam {
        /// The channel's name pattern.
        pattern: &'static str,
        /// The channel's Rust type, with its module path.
        rust_type: String,
        /// The parameter.
        param: &'static str,
    },
    /// Two Rust types have the same TypeScript name; one file cannot declare both.
    #[error(
        "TypeScript type `{name}` is declared by both `{first}` and `{second}`: rename one with `#[ts(rename = \"...\")]`"
    )]
    NameClash {
        /// The TypeScript name.
        name: String,
        /// The first Rust type.
        first: String,
        /// The second Rust type.
        second: String,
    },
}

/// The TypeScript declarations of a set of events: see the [module docs](self).
#[derive(Debug)]
pub struct Bindings {
    declarations: Declarations,
    events: Vec<EventBinding>,
    channels: Vec<ChannelBinding>,
    errors: Vec<BindingError>,
}

/// One typed channel as it appears in the `Channels` map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelBinding {
    /// The name pattern, `room/{name}`.
    pub pattern: &'static str,
    /// The Rust type, with its module path.
    pub rust_type: String,
    /// Each parameter's name and TypeScript type (`unknown` when its type
    /// does not implement `TS`, reported by [`Bindings::errors`]).
    pub params: Vec<(&'static str, TsType)>,
    /// The ids of the events the channel carries, in the order declared.
    pub events: &'static [&'static str],
}

impl ChannelBinding {
    /// The TypeScript template literal type of the channel's names:
    /// `` `room/${string}` ``, with `${number}` for a numeric parameter.
    pub fn name_template(&self) -> String {
        let mut out = String::from("`");
        for (i, segment) in self.pattern.split('/').enumerate() {
            if i > 0 {
                out.push('/');
            }
            let param = segment
                .strip_prefix('{')
                .and_then(|s| s.strip_suffix('}'))
                .and_then(|name| self.params.iter().find(|(p, _)| *p == name));
            match param {
                Some((_, ty)) if ty == "number" => out.push_str("${number}"),
                Some(_) => out.push_str("${string}"),
                None => {
                    for c in segment.chars() {
                        if matches!(c, '`' | '\\' | '$') {
                            out.push('\\');
                        }
                        out.push(c);
                    }
                }
            }
        }
        out.push('`');
        out
    }
}

/// The bindings of every registered event.
pub fn bindings() -> Bindings {
    bindings_where(|_| true)
}

/// The bindings of the registered events whose id passes `keep`.
pub fn bindings_where(keep: impl Fn(&str) -> bool) -> Bindings {
    let mut records: Vec<&probe::TypeRecord> = inventory::iter::<probe::TypeRecord>()
        .filter(|r| keep(r.id))
        .collect();
    records.sort_by_key(|r| (r.id, r.module_path, r.type_name));
    records.dedup_by_key(|r| (r.id, r.module_path, r.type_name));

    let mut declarations = Declarations::default();
    let mut events = Vec::with_capacity(records.len());
    let mut errors = Vec::new();
    for record in records {
        let rust_type = format!("{}::{}", record.module_path, record.type_name);
        let payload = (record.payload)(&mut declarations);
        if payload.is_none() {
            errors.push(BindingError::Undescribed {
                id: record.id,
                rust_type: rust_type.clone(),
                role: "payload",
            });
        }
        let (kind, reply) = match record.reply {
            None => (EventKind::Event, None),
            Some(describe) => {
                let reply = describe(&mut declarations);
                if reply.is_none() {
                    errors.push(BindingError::Undescribed {
                        id: record.id,
                        rust_type: rust_type.clone(),
                        role: "reply",
                    });
                }
                (EventKind::Request, reply)
            }
        };
        events.push(EventBinding {
            id: record.id,
            rust_type,
            kind,
            payload,
            reply,
        });
    }
    let channels = channel_bindings(&mut declarations, &mut errors);
    errors.extend(declarations.clashes.iter().cloned());
    Bindings {
        declarations,
        events,
        channels,
        errors,
    }
}

/// The registered typed channels, sorted by pattern, their parameters described.
fn channel_bindings(
    declarations: &mut Declarations,
    errors: &mut Vec<BindingError>,
) -> Vec<ChannelBinding> {
    let mut records: Vec<&probe::ChannelTypeRecord> =
        inventory::iter::<probe::ChannelTypeRecord>().collect();
    records.sort_by_key(|r| (r.pattern, r.module_path, r.type_name));
    records.dedup_by_key(|r| (r.pattern, r.module_path, r.type_name));
    records
        .into_iter()
        .map(|record| {
            let rust_type = format!("{}::{}", record.module_path, record.type_name);
            let params = record
                .params
                .iter()
                .map(|(name, describe)| {
                    let ty = describe(declarations).unwrap_or_else(|| {
                        errors.push(BindingError::UndescribedParam {
                            pattern: record.pattern,
                            rust_type: rust_type.clone(),
                            param: name,
                        });
                        "unknown".to_owned()
                    });
                    (*name, ty)
                })
                .collect();
            ChannelBinding {
                pattern: record.pattern,
                rust_type,
                params,
                events: record.events,
            }
        })
        .collect()
}

impl Bindings {
    /// The events, sorted by id.
    pub fn events(&self) -> &[EventBinding] {
        &self.events
    }

    /// The typed channels, sorted by pattern.
    pub fn channels(&self) -> &[ChannelBinding] {
        &self.channels
    }

    /// The TypeScript names of the declared types, sorted.
    pub fn type_names(&self) -> impl Iterator<Item = &str> {
        self.declarations.by_name.keys().map(String::as_str)
    }

    /// What keeps the bindings from being complete: types without `TS`, name clashes.
    pub fn errors(&self) -> &[BindingError] {
        &self.errors
    }

    /// The whole file: every type's declaration, then the `Events` map.
    pub fn to_typescript(&self) -> String {
        let mut out = String::from(
            "// Generated by sente-lite from the Rust event types: do not edit by hand.\n\
             // Regenerate it with the program that wrote it.\n",
        );
        for declaration in self.declarations.by_name.values() {
            out.push('\n');
            out.push_str(&declaration.text);
            out.push('\n');
        }
        out.push_str(
            "\n/**\n * Every event, by id: whether it is a one-way `event` or a `request`, the\n \
             * type of its `payload` and, for a request, of its `reply`.\n */\n\
             export type Events = {\n",
        );
        for event in &self.events {
            let payload = event.payload.as_deref().unwrap_or("unknown");
            let _ = writeln!(out, "  /** `{}` */", event.rust_type);
            let _ = match event.kind {
                EventKind::Event => writeln!(
                    out,
                    "  \"{}\": {{ kind: \"event\"; payload: {payload} }};",
                    event.id
                ),
                EventKind::Request => writeln!(
                    out,
                    "  \"{}\": {{ kind: \"request\"; payload: {payload}; reply: {} }};",
                    event.id,
                    event.reply.as_deref().unwrap_or("unknown")
                ),
            };
        }
        out.push_str("};\n");
        out.push_str(
            "\n/**\n * Every typed channel, by name pattern: its parameters, the template of\n \
             * its names, and the ids of the events published on it.\n */\n\
             export type Channels = {\n",
        );
        for channel in &self.channels {
            let params: Vec<String> = channel
                .params
                .iter()
                .map(|(name, ty)| format!("{name}: {ty}"))
                .collect();
            let events: Vec<String> = channel
                .events
                .iter()
                .map(|id| format!("\"{id}\""))
                .collect();
            let _ = writeln!(out, "  /** `{}` */", channel.rust_type);
            let _ = writeln!(
                out,
                "  \"{}\": {{ params: {{ {} }}; name: {}; events: {} }};",
                channel.pattern,
                params.join("; "),
                channel.name_template(),
                if events.is_empty() {
                    "never".to_owned()
                } else {
                    events.join(" | ")
                },
            );
        }
        out.push_str("};\n");
        out
    }

    /// Writes [`Bindings::to_typescript`] to `dir/events.d.ts` ([`FILE_NAME`]),
    /// creating `dir` when needed, and returns the file's path.
    pub fn write_to(&self, dir: impl AsRef<Path>) -> io::Result<PathBuf> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir)?;
        let path = dir.join(FILE_NAME);
        std::fs::write(&path, self.to_typescript())?;
        Ok(path)
    }
}

/// One declared type.
#[derive(Debug, Clone)]
struct Declaration {
    /// The Rust type (without generic arguments), to tell clashes from repeats.
    rust_type: &'static str,
    /// Its doc comment and `export type ...` declaration.
    text: String,
}

/// The declarations gathered so far: each type an event uses, and each type
/// those use in turn.
pub struct Declarations {
    config: ts_rs::Config,
    by_name: BTreeMap<String, Declaration>,
    seen: HashSet<&'static str>,
    clashes: Vec<BindingError>,
}

impl Default for Declarations {
    fn default() -> Self {
        Self {
            // serde_json writes 64-bit integers as JSON numbers, and `JSON.parse`
            // reads them as `number`.
            config: ts_rs::Config::new().with_large_int("number"),
            by_name: BTreeMap::new(),
            seen: HashSet::new(),
            clashes: Vec::new(),
        }
    }
}

impl std::fmt::Debug for Declarations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Declarations")
            .field("types", &self.by_name.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Declarations {
    /// Declares `T` and what it uses; returns how TypeScript names `T`.
    fn describe<T: TS + 'static + ?Sized>(&mut self) -> String {
        self.visit::<T>();
        T::name(&self.config)
    }
}

impl TypeVisitor for Declarations {
    fn visit<T: TS + 'static + ?Sized>(&mut self) {
        if T::output_path().is_some() {
            let rust_type = type_name::<T::WithoutGenerics>();
            if self.seen.insert(rust_type) {
                let name = T::ident(&self.config);
                let mut text = T::docs().unwrap_or_default();
                text.push_str("export ");
                text.push_str(&T::decl(&self.config));
                match self.by_name.get(&name) {
                    Some(first) => self.clashes.push(BindingError::NameClash {
                        name,
                        first: first.rust_type.to_owned(),
                        second: rust_type.to_owned(),
                    }),
                    None => {
                        self.by_name.insert(name, Declaration { rust_type, text });
                    }
                }
                T::visit_dependencies(self);
            }
        } else {
            T::visit_dependencies(self);
        }
        T::visit_generics(self);
    }
}

impl<T: TS + 'static + ?Sized> Described for &Probe<T> {
    fn describe(&self, out: &mut Declarations) -> Option<TsType> {
        Some(out.describe::<T>())
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    /// A point.
    #[derive(Serialize, Deserialize, ts_rs::TS, schemars::JsonSchema)]
    struct Point {
        x: i64,
        y: i64,
    }

    /// A shape, tagged.
    #[derive(Serialize, Deserialize, ts_rs::TS, schemars::JsonSchema)]
    #[serde(tag = "kind", rename_all = "lowercase")]
    enum Shape {
        Dot { at: Point },
        Line { from: Point, to: Point },
    }

    /// Draws a shape.
    #[crate::event("ts.test/draw", reply = Vec<Shape>)]
    #[derive(Serialize, Deserialize, ts_rs::TS)]
    struct Draw {
        shape: Shape,
    }

    /// Clears the canvas (one-way, unit).
    #[crate::event("ts.test/clear")]
    #[derive(Serialize, Deserialize, ts_rs::TS)]
    struct Clear;

    /// A one-way event without `TS`.
    #[crate::event("ts.test/opaque")]
    #[derive(Serialize, Deserialize)]
    struct Opaque {
        bytes: Vec<u8>,
    }

    /// A request whose reply has no `TS`.
    #[crate::event("ts.test/opaque-reply", reply = NotTs)]
    #[derive(Serialize, Deserialize, ts_rs::TS)]
    struct OpaqueReply;

    #[derive(Serialize, Deserialize, schemars::JsonSchema)]
    struct NotTs;

    fn ours() -> Bindings {
        bindings_where(|id| id.starts_with("ts.test/"))
    }

    #[test]
    fn events_and_their_types_are_declared() {
        let bindings = ours();
        let ids: Vec<&str> = bindings.events().iter().map(|e| e.id).collect();
        assert_eq!(
            ids,
            [
                "ts.test/clear",
                "ts.test/draw",
                "ts.test/opaque",
                "ts.test/opaque-reply"
            ]
        );
        let names: Vec<&str> = bindings.type_names().collect();
        assert_eq!(names, ["Clear", "Draw", "OpaqueReply", "Point", "Shape"]);
        let draw = &bindings.events()[1];
        assert_eq!(draw.kind, EventKind::Request);
        assert_eq!(draw.payload.as_deref(), Some("Draw"));
        assert_eq!(draw.reply.as_deref(), Some("Array<Shape>"));
        let text = bindings.to_typescript();
        assert!(
            text.contains("export type Point = { x: number, y: number, };"),
            "{text}"
        );
        assert!(text.contains("/**\n * A point.\n */\n"), "{text}");
        assert!(
            text.contains(r#""ts.test/clear": { kind: "event"; payload: Clear };"#),
            "{text}"
        );
        assert!(
            text.contains(r#""ts.test/opaque": { kind: "event"; payload: unknown };"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#""ts.test/opaque-reply": { kind: "request"; payload: OpaqueReply; reply: unknown };"#
            ),
            "{text}"
        );
    }

    #[test]
    fn types_without_ts_are_reported() {
        let errors: Vec<String> = ours().errors().iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("the payload type of event `ts.test/opaque`"));
        assert!(errors[1].starts_with("the reply type of event `ts.test/opaque-reply`"));
    }

    #[test]
    fn writes_one_file() {
        let dir = std::env::temp_dir().join(format!("sente-lite-ts-{}", std::process::id()));
        let path = ours().write_to(&dir).unwrap();
        assert_eq!(path, dir.join(FILE_NAME));
        let written = std::fs::read_to_string(&path).unwrap();
        assert_eq!(written, ours().to_typescript());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
