//! A JSON reader for event frames on the server's hot path.
//!
//! `serde_json` finds the end of a string eight bytes at a time: for a 16 KiB
//! payload that loop is about 37,000 instructions, most of what decoding a
//! request costs. This reader finds a string's end with `memchr` (which picks
//! AVX2 at run time where the CPU has it) and looks for control characters in
//! a loop the compiler vectorizes: about a tenth of the work.
//!
//! It reads the structure itself (arrays, objects, strings without escapes,
//! `true`, `false`, `null`) and hands every token whose meaning takes care to
//! `serde_json`, one token at a time: numbers, and strings with escapes. So a
//! value it reads means exactly what `serde_json` makes of the same text.
//!
//! It takes strict JSON only and gives up on anything else: a syntax error, a
//! type the payload does not fit, and the shapes it leaves to `serde_json`
//! (byte strings, map keys other than strings, `RawValue`s, nesting deeper than
//! [`MAX_DEPTH`]). Giving up is remembered even when a `Deserialize` impl
//! swallows the error, and [`Reader::finish`] then says no: the caller falls
//! back to the general decoder, which reads the frame again and names what is
//! wrong. A frame is never read differently for taking the fast path.

use serde::de::{
    self, DeserializeSeed, EnumAccess, IgnoredAny, MapAccess, SeqAccess, VariantAccess, Visitor,
};
use serde_json::Error;
use serde_json::de::StrRead;

type Result<T> = std::result::Result<T, Error>;

/// Nesting deeper than this is left to `serde_json` (whose own limit is 128).
const MAX_DEPTH: u32 = 100;

/// How `serde_json` begins the names of the newtypes it reads in a way of its
/// own (`RawValue`, and `Number` with arbitrary precision): left to it.
const PRIVATE_TOKEN: &str = "$serde_json::private::";

/// A deserializer over one JSON text; see the module docs.
pub(super) struct Reader<'de> {
    text: &'de str,
    pos: usize,
    depth: u32,
    gave_up: bool,
}

/// A string as it was found in the text.
enum Str<'de> {
    /// No escapes: the characters between the quotes.
    Plain(&'de str),
    /// With escapes: the whole token, quotes included, for `serde_json`.
    Escaped(&'de str),
}

impl<'de> Reader<'de> {
    /// A reader at the start of `text`.
    #[cfg(test)]
    pub(super) fn new(text: &'de str) -> Self {
        Self {
            text,
            pos: 0,
            depth: 0,
            gave_up: false,
        }
    }

    /// A reader inside the array that opens `text`, after its first element:
    /// at `pos`, where a comma or the closing bracket comes next (see
    /// [`Reader::rest_of_array`]).
    pub(super) fn inside_array(text: &'de str, pos: usize) -> Self {
        Self {
            text,
            pos,
            depth: 1,
            gave_up: false,
        }
    }

    /// Reads the rest of the array a reader made by [`Reader::inside_array`]
    /// is in, for `visitor`: the elements after the first, then the bracket.
    pub(super) fn rest_of_array<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value> {
        self.elements(visitor, false)
    }

    /// Whether the value read so far is the whole text (trailing whitespace
    /// aside) and the reader never gave up on any part of it.
    pub(super) fn finish(mut self) -> bool {
        self.peek();
        !self.gave_up && self.pos == self.text.len()
    }

    /// The next byte after whitespace, which is skipped.
    fn peek(&mut self) -> Option<u8> {
        let bytes = self.text.as_bytes();
        while let Some(&b) = bytes.get(self.pos) {
            if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                return Some(b);
            }
            self.pos += 1;
        }
        None
    }

    /// Leaves the text to the general decoder.
    fn give_up<T>(&mut self) -> Result<T> {
        self.gave_up = true;
        Err(de::Error::custom("left to the general decoder"))
    }

    /// Remembers a failure, whoever made it, before passing it on.
    fn checked<T>(&mut self, result: Result<T>) -> Result<T> {
        if result.is_err() {
            self.gave_up = true;
        }
        result
    }

    /// Steps into an array or object (at its opening bracket).
    fn enter(&mut self) -> Result<()> {
        self.pos += 1;
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.give_up();
        }
        Ok(())
    }

    /// Steps out of an array or object: `close` must come next.
    fn leave(&mut self, close: u8) -> Result<()> {
        self.depth -= 1;
        if self.peek() != Some(close) {
            return self.give_up();
        }
        self.pos += 1;
        Ok(())
    }

    /// Consumes `word` (`null`, `true`, `false`), which must come next.
    fn literal(&mut self, word: &str) -> Result<()> {
        if !self.text.as_bytes()[self.pos..].starts_with(word.as_bytes()) {
            return self.give_up();
        }
        self.pos += word.len();
        Ok(())
    }

    /// Reads the string that starts at the current byte (a quote).
    fn string(&mut self) -> Result<Str<'de>> {
        let bytes = self.text.as_bytes();
        let start = self.pos + 1;
        let mut at = start;
        let mut escaped = false;
        let end = loop {
            let Some(found) = bytes
                .get(at..)
                .and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
            else {
                return self.give_up();
            };
            let found = at + found;
            if bytes[found] == b'"' {
                break found;
            }
            // The escaped byte cannot end the string; `serde_json` checks
            // what it is.
            escaped = true;
            at = found + 2;
        };
        if has_control(&bytes[start..end]) {
            return self.give_up();
        }
        self.pos = end + 1;
        // Quotes are ASCII, so both ends are character boundaries.
        Ok(if escaped {
            Str::Escaped(&self.text[start - 1..end + 1])
        } else {
            Str::Plain(&self.text[start..end])
        })
    }

    /// The number token that starts at the current byte.
    fn number(&mut self) -> &'de str {
        let start = self.pos;
        let len = self.text.as_bytes()[start..]
            .iter()
            .position(|b| !matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
            .unwrap_or(self.text.len() - start);
        self.pos += len;
        &self.text[start..start + len]
    }

    /// Has `serde_json` read `token`, which must be one whole value.
    fn delegate<T>(
        &mut self,
        token: &'de str,
        read: impl FnOnce(&mut serde_json::Deserializer<StrRead<'de>>) -> Result<T>,
    ) -> Result<T> {
        let mut de = serde_json::Deserializer::from_str(token);
        let result = read(&mut de).and_then(|value| de.end().map(|()| value));
        self.checked(result)
    }

    /// Reads a string value for `visitor`: borrowed when it has no escapes,
    /// `serde_json`'s reading when it has. A failure is remembered.
    fn str_value<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value> {
        if self.peek() != Some(b'"') {
            return self.give_up();
        }
        match self.string()? {
            Str::Plain(s) => {
                let result = visitor.visit_borrowed_str(s);
                self.checked(result)
            }
            Str::Escaped(token) => {
                self.delegate(token, |de| de::Deserializer::deserialize_str(de, visitor))
            }
        }
    }

    /// Reads an array for `visitor`.
    fn array<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value> {
        self.enter()?;
        self.elements(visitor, true)
    }

    /// Reads an array's elements for `visitor` (from its first, or from
    /// after it), then its closing bracket.
    fn elements<V: Visitor<'de>>(&mut self, visitor: V, first: bool) -> Result<V::Value> {
        let value = visitor.visit_seq(Elements {
            reader: self,
            first,
        })?;
        self.leave(b']')?;
        Ok(value)
    }

    /// Reads an object for `visitor`.
    fn object<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value> {
        self.enter()?;
        let value = visitor.visit_map(Entries {
            reader: self,
            first: true,
        })?;
        self.leave(b'}')?;
        Ok(value)
    }

    /// Skips one value, checking it as strictly as `serde_json` does.
    fn skip(&mut self) -> Result<()> {
        match self.peek() {
            Some(b'n') => self.literal("null"),
            Some(b't') => self.literal("true"),
            Some(b'f') => self.literal("false"),
            Some(b'"') => match self.string()? {
                Str::Plain(_) => Ok(()),
                Str::Escaped(token) => self
                    .delegate(token, |de| {
                        de::Deserializer::deserialize_ignored_any(de, IgnoredAny)
                    })
                    .map(drop),
            },
            Some(b'-' | b'0'..=b'9') => {
                let token = self.number();
                if plain_u64(token).is_some() {
                    return Ok(());
                }
                self.delegate(token, |de| {
                    de::Deserializer::deserialize_ignored_any(de, IgnoredAny)
                })
                .map(drop)
            }
            Some(b'[') => self.array(IgnoredAny).map(drop),
            Some(b'{') => self.object(IgnoredAny).map(drop),
            _ => self.give_up(),
        }
    }
}

/// Whether `bytes` holds a control character (below U+0020), which JSON does
/// not allow unescaped in a string. The lowest byte is found without a branch
/// per byte, so the compiler turns the loop into vector minimums; a string
/// has no control character far more often than it has one.
fn has_control(bytes: &[u8]) -> bool {
    bytes.iter().fold(u8::MAX, |low, &b| low.min(b)) < 0x20
}

/// A token of plain digits that `serde_json` reads as a `u64` (no sign,
/// fraction or exponent, no leading zero, at most 19 digits, which always
/// fit): its value. Every number method of `serde_json` but the 128-bit ones
/// visits such a token with `visit_u64`, so the reader does too, without a
/// `serde_json` reader for it (request ids, counters, coordinates).
fn plain_u64(token: &str) -> Option<u64> {
    let digits = token.as_bytes();
    let fits = matches!(digits.len(), 1..=19) && (digits[0] != b'0' || digits.len() == 1);
    if !fits || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0')))
}

/// A number method: a plain `u64` token is visited as one (see
/// [`plain_u64`]); any other token goes to `serde_json`'s method of the same
/// name. `wide` methods (128 bits) always go to `serde_json`.
macro_rules! numbers {
    ($($method:ident)*; wide $($wide:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
                match self.peek() {
                    Some(b'-' | b'0'..=b'9') => {
                        let token = self.number();
                        if let Some(n) = plain_u64(token) {
                            let result = visitor.visit_u64(n);
                            return self.checked(result);
                        }
                        self.delegate(token, |de| de::Deserializer::$method(de, visitor))
                    }
                    _ => self.give_up(),
                }
            }
        )*
        $(
            fn $wide<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
                match self.peek() {
                    Some(b'-' | b'0'..=b'9') => {
                        let token = self.number();
                        self.delegate(token, |de| de::Deserializer::$wide(de, visitor))
                    }
                    _ => self.give_up(),
                }
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for &mut Reader<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let result = match self.peek() {
            Some(b'n') => self.literal("null").and_then(|()| visitor.visit_unit()),
            Some(b't') => self.literal("true").and_then(|()| visitor.visit_bool(true)),
            Some(b'f') => self
                .literal("false")
                .and_then(|()| visitor.visit_bool(false)),
            Some(b'"') => match self.string()? {
                Str::Plain(s) => visitor.visit_borrowed_str(s),
                Str::Escaped(token) => {
                    return self
                        .delegate(token, |de| de::Deserializer::deserialize_any(de, visitor));
                }
            },
            Some(b'-' | b'0'..=b'9') => {
                let token = self.number();
                match plain_u64(token) {
                    Some(n) => visitor.visit_u64(n),
                    None => {
                        return self
                            .delegate(token, |de| de::Deserializer::deserialize_any(de, visitor));
                    }
                }
            }
            Some(b'[') => self.array(visitor),
            Some(b'{') => self.object(visitor),
            _ => return self.give_up(),
        };
        self.checked(result)
    }

    numbers! {
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_f32 deserialize_f64;
        wide deserialize_i128 deserialize_u128
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let result = match self.peek() {
            Some(b't') => self.literal("true").and_then(|()| visitor.visit_bool(true)),
            Some(b'f') => self
                .literal("false")
                .and_then(|()| visitor.visit_bool(false)),
            _ => return self.give_up(),
        };
        self.checked(result)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.str_value(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.str_value(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.str_value(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.str_value(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
        self.give_up()
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
        self.give_up()
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let result = if self.peek() == Some(b'n') {
            self.literal("null").and_then(|()| visitor.visit_none())
        } else {
            visitor.visit_some(&mut *self)
        };
        self.checked(result)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.peek() != Some(b'n') {
            return self.give_up();
        }
        let result = self.literal("null").and_then(|()| visitor.visit_unit());
        self.checked(result)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        if name.starts_with(PRIVATE_TOKEN) {
            return self.give_up();
        }
        let result = visitor.visit_newtype_struct(&mut *self);
        self.checked(result)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.peek() != Some(b'[') {
            return self.give_up();
        }
        let result = self.array(visitor);
        self.checked(result)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.peek() != Some(b'{') {
            return self.give_up();
        }
        let result = self.object(visitor);
        self.checked(result)
    }

    /// A struct is an object or, as `serde_json` also takes it, an array.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        let result = match self.peek() {
            Some(b'{') => self.object(visitor),
            Some(b'[') => self.array(visitor),
            _ => return self.give_up(),
        };
        self.checked(result)
    }

    /// `"Variant"` for a unit variant, `{"Variant": value}` for the others.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        let result = match self.peek() {
            Some(b'"') => visitor.visit_enum(UnitVariant(&mut *self)),
            Some(b'{') => self.enter().and_then(|()| {
                let value = visitor.visit_enum(Variant(&mut *self))?;
                self.leave(b'}')?;
                Ok(value)
            }),
            _ => return self.give_up(),
        };
        self.checked(result)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let result = self.skip().and_then(|()| visitor.visit_unit());
        self.checked(result)
    }
}

/// The elements of an array.
struct Elements<'a, 'de> {
    reader: &'a mut Reader<'de>,
    first: bool,
}

impl<'de> SeqAccess<'de> for Elements<'_, 'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        match self.reader.peek() {
            Some(b']') => return Ok(None),
            Some(b',') if !self.first => {
                self.reader.pos += 1;
                if self.reader.peek() == Some(b']') {
                    return self.reader.give_up();
                }
            }
            _ if self.first => {}
            _ => return self.reader.give_up(),
        }
        self.first = false;
        seed.deserialize(&mut *self.reader).map(Some)
    }
}

/// The entries of an object.
struct Entries<'a, 'de> {
    reader: &'a mut Reader<'de>,
    first: bool,
}

impl<'de> MapAccess<'de> for Entries<'_, 'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        match self.reader.peek() {
            Some(b'}') => return Ok(None),
            Some(b',') if !self.first => {
                self.reader.pos += 1;
                if self.reader.peek() != Some(b'"') {
                    return self.reader.give_up();
                }
            }
            Some(b'"') if self.first => {}
            _ => return self.reader.give_up(),
        }
        self.first = false;
        seed.deserialize(Key(&mut *self.reader)).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        if self.reader.peek() != Some(b':') {
            return self.reader.give_up();
        }
        self.reader.pos += 1;
        seed.deserialize(&mut *self.reader)
    }
}

/// An object's key: a string, read for the methods that take one as it is.
/// Keys read as numbers, booleans and the rest are left to `serde_json`.
struct Key<'a, 'de>(&'a mut Reader<'de>);

/// A key method that reads the key as a string.
macro_rules! key_as_str {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
            self.0.str_value(visitor)
        }
    )*};
}

/// A key method `serde_json` reads in a way of its own: left to it.
macro_rules! key_left {
    ($($method:ident($($arg:ty),*))*) => {$(
        fn $method<V: Visitor<'de>>(self, $(_: $arg,)* _visitor: V) -> Result<V::Value> {
            self.0.give_up()
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Key<'_, 'de> {
    type Error = Error;

    key_as_str! {
        deserialize_any deserialize_str deserialize_string deserialize_identifier
        deserialize_char deserialize_ignored_any
    }

    key_left! {
        deserialize_bool() deserialize_i8() deserialize_i16() deserialize_i32()
        deserialize_i64() deserialize_i128() deserialize_u8() deserialize_u16()
        deserialize_u32() deserialize_u64() deserialize_u128() deserialize_f32()
        deserialize_f64() deserialize_bytes() deserialize_byte_buf() deserialize_option()
        deserialize_unit() deserialize_unit_struct(&'static str)
        deserialize_newtype_struct(&'static str) deserialize_seq()
        deserialize_tuple(usize) deserialize_tuple_struct(&'static str, usize)
        deserialize_map() deserialize_struct(&'static str, &'static [&'static str])
        deserialize_enum(&'static str, &'static [&'static str])
    }
}

/// An enum written as its variant's name: a unit variant.
struct UnitVariant<'a, 'de>(&'a mut Reader<'de>);

impl<'de> EnumAccess<'de> for UnitVariant<'_, 'de> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self)> {
        let variant = seed.deserialize(&mut *self.0)?;
        Ok((variant, self))
    }
}

/// As `serde_json`: a variant named by a string alone has no value.
impl<'de> VariantAccess<'de> for UnitVariant<'_, 'de> {
    type Error = Error;

    fn unit_variant(self) -> Result<()> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, _seed: T) -> Result<T::Value> {
        self.0.give_up()
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value> {
        self.0.give_up()
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value> {
        self.0.give_up()
    }
}

/// An enum written as `{"Variant": value}` (inside the braces).
struct Variant<'a, 'de>(&'a mut Reader<'de>);

impl<'de> EnumAccess<'de> for Variant<'_, 'de> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self)> {
        if self.0.peek() != Some(b'"') {
            return self.0.give_up();
        }
        let variant = seed.deserialize(&mut *self.0)?;
        if self.0.peek() != Some(b':') {
            return self.0.give_up();
        }
        self.0.pos += 1;
        Ok((variant, self))
    }
}

/// As `serde_json`: a unit variant's value is `null`, a struct variant's an
/// object or an array.
impl<'de> VariantAccess<'de> for Variant<'_, 'de> {
    type Error = Error;

    fn unit_variant(self) -> Result<()> {
        de::Deserialize::deserialize(&mut *self.0)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value> {
        seed.deserialize(&mut *self.0)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value> {
        de::Deserializer::deserialize_seq(&mut *self.0, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        de::Deserializer::deserialize_struct(&mut *self.0, "", fields, visitor)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fmt::Debug;

    use proptest::prelude::*;
    use serde::de::DeserializeOwned;
    use serde::{Deserialize, Serialize};

    use super::Reader;

    /// What the reader makes of `text` as a whole `T`, or `None` when it
    /// leaves the text to `serde_json`.
    fn fast<T: DeserializeOwned>(text: &str) -> Option<T> {
        let mut reader = Reader::new(text);
        let value = T::deserialize(&mut reader).ok()?;
        reader.finish().then_some(value)
    }

    /// The reader takes only what `serde_json` takes, and reads it the same.
    fn agrees<T: DeserializeOwned + PartialEq + Debug>(text: &str) -> Result<(), TestCaseError> {
        if let Some(value) = fast::<T>(text) {
            match serde_json::from_str::<T>(text) {
                Ok(general) => prop_assert_eq!(value, general, "{:?}", text),
                Err(e) => prop_assert!(false, "only the fast reader takes {text:?} ({e})"),
            }
        }
        Ok(())
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Shape {
        Dot,
        Circle(f32),
        Rect { w: u32, h: u32 },
        Path(Vec<(i16, i16)>),
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "kind")]
    enum Tagged {
        Text { body: String },
        Count { n: u64 },
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Doc {
        text: String,
        n: i64,
        small: u8,
        x: f64,
        flag: bool,
        maybe: Option<String>,
        shapes: Vec<Shape>,
        tagged: Tagged,
        map: BTreeMap<String, i32>,
        pair: (char, u32),
        nothing: (),
    }

    fn shape() -> impl Strategy<Value = Shape> {
        prop_oneof![
            Just(Shape::Dot),
            proptest::num::f32::NORMAL.prop_map(Shape::Circle),
            (any::<u32>(), any::<u32>()).prop_map(|(w, h)| Shape::Rect { w, h }),
            proptest::collection::vec(any::<(i16, i16)>(), 0..3).prop_map(Shape::Path),
        ]
    }

    fn doc() -> impl Strategy<Value = Doc> {
        (
            (
                any::<String>(),
                any::<i64>(),
                any::<u8>(),
                proptest::num::f64::NORMAL,
            ),
            (any::<bool>(), any::<Option<String>>()),
            proptest::collection::vec(shape(), 0..4),
            prop_oneof![
                any::<String>().prop_map(|body| Tagged::Text { body }),
                any::<u64>().prop_map(|n| Tagged::Count { n }),
            ],
            proptest::collection::btree_map(any::<String>(), any::<i32>(), 0..4),
            any::<(char, u32)>(),
        )
            .prop_map(
                |((text, n, small, x), (flag, maybe), shapes, tagged, map, pair)| Doc {
                    text,
                    n,
                    small,
                    x,
                    flag,
                    maybe,
                    shapes,
                    tagged,
                    map,
                    pair,
                    nothing: (),
                },
            )
    }

    fn value() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            proptest::num::f64::NORMAL.prop_map(Value::from),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(any::<String>(), inner, 0..6)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    /// `text` changed at `at`: a character cut out, one put in, or the rest cut.
    fn mangle(text: &str, how: u8, at: prop::sample::Index, put: char) -> String {
        let mut at = at.index(text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let mut out = text.to_owned();
        match how % 3 {
            0 => {
                if at < out.len() {
                    out.remove(at);
                }
            }
            1 => out.insert(at, put),
            _ => out.truncate(at),
        }
        out
    }

    /// Characters that change what JSON means.
    fn put() -> impl Strategy<Value = char> {
        prop_oneof![
            prop::sample::select(vec![
                '"', '\\', ',', ':', '[', ']', '{', '}', ' ', '\n', '0', '-', '.', 'e', 'u', 'n',
                '\u{1}', '\u{1f}',
            ]),
            any::<char>(),
        ]
    }

    proptest! {
        #[test]
        fn typed_values_read_as_serde_json_reads_them(value in doc(), pretty in any::<bool>()) {
            let text = if pretty {
                serde_json::to_string_pretty(&value).unwrap()
            } else {
                serde_json::to_string(&value).unwrap()
            };
            prop_assert_eq!(fast::<Doc>(&text), Some(serde_json::from_str::<Doc>(&text).unwrap()));
        }

        #[test]
        fn any_value_reads_as_serde_json_reads_it(value in value(), pretty in any::<bool>()) {
            let text = if pretty {
                serde_json::to_string_pretty(&value).unwrap()
            } else {
                serde_json::to_string(&value).unwrap()
            };
            prop_assert_eq!(fast::<serde_json::Value>(&text), Some(value));
        }

        #[test]
        fn broken_typed_values_are_taken_only_as_serde_json_takes_them(
            value in doc(), how in any::<u8>(), at in any::<prop::sample::Index>(), put in put(),
        ) {
            let text = mangle(&serde_json::to_string(&value).unwrap(), how, at, put);
            agrees::<Doc>(&text)?;
        }

        #[test]
        fn broken_values_are_taken_only_as_serde_json_takes_them(
            value in value(), how in any::<u8>(), at in any::<prop::sample::Index>(), put in put(),
        ) {
            let text = mangle(&serde_json::to_string(&value).unwrap(), how, at, put);
            agrees::<serde_json::Value>(&text)?;
            agrees::<Vec<serde_json::Value>>(&text)?;
            agrees::<BTreeMap<String, serde_json::Value>>(&text)?;
        }
    }

    #[test]
    fn what_serde_json_refuses_is_refused() {
        let refused = [
            "[1,]",
            "[,1]",
            "[1 2]",
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{a:1}"#,
            "\"\u{1}\"",
            "\"\t\"",
            r#""\x""#,
            r#""\ud800""#,
            "01",
            "1.",
            "-",
            "+1",
            "nul",
            "truex",
            "[1]]",
            "\"abc",
            "[\"a\\\"]",
        ];
        for text in refused {
            assert!(
                serde_json::from_str::<serde_json::Value>(text).is_err(),
                "{text:?}"
            );
            assert_eq!(fast::<serde_json::Value>(text), None, "{text:?}");
        }
    }

    #[test]
    fn escapes_numbers_and_nesting_read_as_serde_json_reads_them() {
        let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        let taken = [
            r#""a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00""#,
            r#"{"k\u0041y": [1, -0, 1.5e3, -2E-2, 18446744073709551615, -9223372036854775808]}"#,
            " \n\t[ true , false , null , \"x\" ] \r\n",
            "1e400",
            &deep,
        ];
        for text in taken {
            let general = serde_json::from_str::<serde_json::Value>(text);
            assert_eq!(fast::<serde_json::Value>(text), general.ok(), "{text:?}");
        }
        // Plain digits are read by the reader itself, up to 19 of them; a
        // longer or signed token, a leading zero, a fraction, goes to
        // serde_json, in every number type.
        for text in [
            "0",
            "7",
            "9999999999999999999",
            "18446744073709551615",
            "18446744073709551616",
            "012",
            "-0",
            "1.0",
            "10e2",
        ] {
            let general = serde_json::from_str::<serde_json::Value>(text).ok();
            assert_eq!(fast::<serde_json::Value>(text), general, "{text:?}");
            let general = serde_json::from_str::<u64>(text).ok();
            assert_eq!(fast::<u64>(text), general, "{text:?}");
            let general = serde_json::from_str::<i64>(text).ok();
            assert_eq!(fast::<i64>(text), general, "{text:?}");
            let general = serde_json::from_str::<f64>(text).ok();
            assert_eq!(fast::<f64>(text), general, "{text:?}");
            let general = serde_json::from_str::<u128>(text).ok();
            assert_eq!(fast::<u128>(text), general, "{text:?}");
        }
        assert_eq!(
            super::plain_u64("9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        assert_eq!(super::plain_u64("18446744073709551615"), None);
        assert_eq!(super::plain_u64("012"), None);
        // Deeper than the reader goes: left to serde_json, which reads it.
        let deeper = format!("{}1{}", "[".repeat(101), "]".repeat(101));
        assert_eq!(fast::<serde_json::Value>(&deeper), None);
        assert!(serde_json::from_str::<serde_json::Value>(&deeper).is_ok());
        // Numbers out of a type's range, in any position, are refused.
        assert_eq!(fast::<u8>("256"), None);
        assert_eq!(fast::<(u8, u8)>("[1,-1]"), None);
        // An ignored number is checked as serde_json checks it, not parsed.
        #[derive(Debug, PartialEq, Deserialize)]
        struct One {
            a: u8,
        }
        assert_eq!(fast::<One>(r#"{"b":1e400,"a":1}"#), Some(One { a: 1 }));
        assert_eq!(fast::<One>(r#"{"b":1e,"a":1}"#), None);
    }

    #[test]
    fn a_swallowed_failure_still_leaves_the_text_to_serde_json() {
        /// A field that reads as zero when it does not fit.
        #[derive(Debug, PartialEq)]
        struct OrZero(u32);
        impl<'de> Deserialize<'de> for OrZero {
            fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
                Ok(Self(u32::deserialize(de).unwrap_or(0)))
            }
        }
        // The reader leaves map keys that are numbers to serde_json; the impl
        // swallows the error, and the reader still says no.
        assert_eq!(
            fast::<Vec<OrZero>>("[1,2]"),
            Some(vec![OrZero(1), OrZero(2)])
        );
        assert_eq!(fast::<Vec<OrZero>>(r#"[1,"x"]"#), None);
        assert_eq!(fast::<BTreeMap<u32, u32>>(r#"{"1":2}"#), None);
        assert_eq!(
            serde_json::from_str::<BTreeMap<u32, u32>>(r#"{"1":2}"#).unwrap(),
            BTreeMap::from([(1, 2)])
        );
    }
}
