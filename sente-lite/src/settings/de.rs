//! How the file's words and units become values of the configuration types:
//! durations in milliseconds, `0` for "none", codec and policy words, and the
//! tables whose keys belong to two types (`[server]`, `[[server.channels]]`).

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, Visitor};

use super::{Rotation, ServerSettings, TlsFiles};
use crate::Codec;
use crate::engine::ChannelOptions;
use crate::server::{HostPolicy, OriginPolicy, ServerConfig};

/// A duration written in whole milliseconds (`ping_interval_ms = 25000`).
pub(crate) mod millis {
    use super::{Deserialize, Deserializer, Duration};

    /// Reads a number of milliseconds.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// A bound where `0` means "none" (`rate_per_sec = 0` turns the limit off).
pub(crate) mod zero_is_none {
    use super::{Deserialize, Deserializer};

    /// Reads a number, `None` for zero.
    pub(crate) fn deserialize<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de> + Default + PartialEq,
    {
        let value = T::deserialize(d)?;
        Ok((value != T::default()).then_some(value))
    }
}

/// A codec's name: `"json"` or `"postcard"`.
pub(crate) fn codec<'de, D: Deserializer<'de>>(d: D) -> Result<Codec, D::Error> {
    match String::deserialize(d)?.as_str() {
        "json" => Ok(Codec::Json),
        "postcard" => Ok(Codec::Postcard),
        other => Err(de::Error::custom(format!(
            "`{other}` is not a codec: allowed \"json\" or \"postcard\""
        ))),
    }
}

/// A policy word, or a list of names.
#[derive(Deserialize)]
#[serde(untagged)]
enum WordOrList {
    Word(String),
    List(Vec<String>),
}

/// `"same-host"`, `"any"`, or a list of origins.
pub(crate) fn origins<'de, D: Deserializer<'de>>(d: D) -> Result<OriginPolicy, D::Error> {
    match WordOrList::deserialize(d)? {
        WordOrList::Word(w) if w == "same-host" => Ok(OriginPolicy::SameHost),
        WordOrList::Word(w) if w == "any" => Ok(OriginPolicy::Any),
        WordOrList::Word(w) => Err(de::Error::custom(format!(
            "`{w}` is not allowed: \"same-host\", \"any\" or a list of origins"
        ))),
        WordOrList::List(list) => Ok(OriginPolicy::AllowList(list)),
    }
}

/// `"auto"`, `"loopback"`, `"any"`, or a list of host names.
pub(crate) fn hosts<'de, D: Deserializer<'de>>(d: D) -> Result<HostPolicy, D::Error> {
    match WordOrList::deserialize(d)? {
        WordOrList::Word(w) if w == "auto" => Ok(HostPolicy::Auto),
        WordOrList::Word(w) if w == "loopback" => Ok(HostPolicy::Loopback),
        WordOrList::Word(w) if w == "any" => Ok(HostPolicy::Any),
        WordOrList::Word(w) => Err(de::Error::custom(format!(
            "`{w}` is not allowed: \"auto\", \"loopback\", \"any\" or a list of host names"
        ))),
        WordOrList::List(list) => Ok(HostPolicy::AllowList(list)),
    }
}

impl<'de> Deserialize<'de> for Rotation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match String::deserialize(d)?.as_str() {
            "hourly" => Ok(Rotation::Hourly),
            "daily" => Ok(Rotation::Daily),
            "never" => Ok(Rotation::Never),
            other => Err(de::Error::custom(format!(
                "`{other}` is not allowed: \"hourly\", \"daily\" or \"never\""
            ))),
        }
    }
}

/// `[[server.channels]]`: tables of a `pattern` and its [`ChannelOptions`],
/// in the file's order.
pub(crate) fn channels<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<(String, ChannelOptions)>, D::Error> {
    let tables = Vec::<ChannelTable>::deserialize(d)?;
    Ok(tables.into_iter().map(|t| (t.pattern, t.options)).collect())
}

/// One `[[server.channels]]` table.
struct ChannelTable {
    pattern: String,
    options: ChannelOptions,
}

/// The key of a channel table that is not an option.
#[derive(Default)]
struct Pattern(Option<String>);

impl<'de> OuterKeys<'de> for Pattern {
    const KEYS: &'static [&'static str] = &["pattern"];

    fn read<A: MapAccess<'de>>(&mut self, _key: &str, map: &mut A) -> Result<(), A::Error> {
        self.0 = Some(map.next_value()?);
        Ok(())
    }
}

impl<'de> Deserialize<'de> for ChannelTable {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (pattern, options) = d.deserialize_map(SplitTable::<Pattern, ChannelOptions>::new(
            "a table of a channel pattern and its options",
        ))?;
        let pattern = pattern
            .0
            .ok_or_else(|| de::Error::missing_field("pattern"))?;
        Ok(Self { pattern, options })
    }
}

/// The keys of `[server]` that are not [`ServerConfig`]'s.
#[derive(Default)]
struct ServerOnly {
    addr: Option<String>,
    tls: Option<TlsFiles>,
}

impl<'de> OuterKeys<'de> for ServerOnly {
    const KEYS: &'static [&'static str] = &["addr", "tls"];

    fn read<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        if key == "addr" {
            self.addr = Some(map.next_value()?);
        } else {
            self.tls = Some(map.next_value()?);
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for ServerSettings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (own, config) = d.deserialize_map(SplitTable::<ServerOnly, ServerConfig>::new(
            "a table of server settings",
        ))?;
        let defaults = ServerSettings::default();
        Ok(Self {
            addr: own.addr.unwrap_or(defaults.addr),
            config,
            tls: own.tls,
        })
    }
}

/// Keys of a table read by the type holding the table, beside the keys of
/// the type `T` it reads the rest of the table into.
trait OuterKeys<'de>: Default {
    /// The keys, in the order an unknown key's error lists them (before `T`'s).
    const KEYS: &'static [&'static str];

    /// Reads the value of `key`, one of [`OuterKeys::KEYS`].
    fn read<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error>;
}

/// Reads a table into `O` (its keys) and `T` (every other key).
struct SplitTable<O, T> {
    expecting: &'static str,
    types: PhantomData<(O, T)>,
}

impl<O, T> SplitTable<O, T> {
    fn new(expecting: &'static str) -> Self {
        Self {
            expecting,
            types: PhantomData,
        }
    }
}

impl<'de, O: OuterKeys<'de>, T: Deserialize<'de>> Visitor<'de> for SplitTable<O, T> {
    type Value = (O, T);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let mut outer = O::default();
        let inner = T::deserialize(de::value::MapAccessDeserializer::new(Rest {
            map,
            outer: &mut outer,
            inner_keys: field_names::<T>(),
        }))?;
        Ok((outer, inner))
    }
}

/// A table's entries without the outer type's keys, which it reads on the way.
struct Rest<'o, A, O> {
    map: A,
    outer: &'o mut O,
    inner_keys: &'static [&'static str],
}

/// Which type a key of a split table belongs to.
enum Owner {
    Outer(String),
    Inner(String),
}

/// Reads a key of a split table, and refuses one that neither type has (so
/// that the error names the key).
struct KeySeed<'k> {
    outer_keys: &'static [&'static str],
    inner_keys: &'k [&'static str],
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Owner;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Owner, D::Error> {
        let key = String::deserialize(d)?;
        if self.outer_keys.contains(&key.as_str()) {
            Ok(Owner::Outer(key))
        } else if self.inner_keys.contains(&key.as_str()) {
            Ok(Owner::Inner(key))
        } else {
            let expected: Vec<String> = self
                .outer_keys
                .iter()
                .chain(self.inner_keys)
                .map(|k| format!("`{k}`"))
                .collect();
            Err(de::Error::custom(format!(
                "unknown field `{key}`, expected one of {}",
                expected.join(", ")
            )))
        }
    }
}

impl<'de, A: MapAccess<'de>, O: OuterKeys<'de>> MapAccess<'de> for Rest<'_, A, O> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        loop {
            let owner = self.map.next_key_seed(KeySeed {
                outer_keys: O::KEYS,
                inner_keys: self.inner_keys,
            })?;
            match owner {
                None => return Ok(None),
                Some(Owner::Outer(key)) => self.outer.read(&key, &mut self.map)?,
                Some(Owner::Inner(key)) => {
                    return seed
                        .deserialize(IntoDeserializer::<A::Error>::into_deserializer(key))
                        .map(Some);
                }
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

/// The field names (as written in the file) of the struct `T` reads.
fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    /// A deserializer that only notes the fields a struct asks for.
    struct Probe<'a>(&'a mut &'static [&'static str]);

    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("only the field names are read"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _probed = T::deserialize(Probe(&mut fields));
    fields
}
