//! JSON encoding with fast escaping of long strings.
//!
//! `serde_json` escapes a string one byte at a time. For a frame that carries a
//! long string (a document, a base64 blob, a chat log) that loop is most of the
//! cost of encoding it: about 20 µs for 16 KiB, against 1 µs with SIMD. This
//! module runs `serde_json`'s own serializer, but hands every string of
//! [`LONG`] bytes or more to `json-escape-simd`, and writes a string of
//! [`QUOTE_FROM`] bytes or more that has nothing to escape between quotes as
//! it is (a chat message, a name, an id), each verbatim (as a `RawValue`).
//! Everything else, numbers, maps, enums and `RawValue`s included, is
//! `serde_json`'s own work, so the bytes are the same as
//! `serde_json::to_string` gives (a property test checks it).

use std::fmt::Display;

use serde::Serialize;
use serde::ser::{
    SerializeMap, SerializeSeq, SerializeStruct, SerializeStructVariant, SerializeTuple,
    SerializeTupleStruct, SerializeTupleVariant, Serializer,
};

/// Strings of this length or more are escaped by `json-escape-simd`; for a
/// shorter one its fixed cost (a buffer six times the string's length) is
/// more than it saves.
const LONG: usize = 128;

/// Strings shorter than this go through `serde_json` unchanged; from this
/// length to [`LONG`], one with nothing to escape is written between quotes
/// as it is. Below it, checking and quoting cost more than `serde_json`'s
/// escaping loop (callgrind, encoding a reply: 211 instructions more at 8
/// bytes when every string took that path; from 32 bytes on, 391 fewer at
/// 64 bytes and 744 fewer at 120).
const QUOTE_FROM: usize = 32;

/// The name `serde_json` gives the struct a `RawValue` serializes as; its one
/// field is raw JSON text and must reach `serde_json` untouched.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

/// `serde_json::to_string`, with long strings escaped fast.
pub(super) fn to_string<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    serde_json::to_string(&Fast(value))
}

/// A value serialized through [`Strings`].
struct Fast<'a, T: ?Sized>(&'a T);

impl<T: Serialize + ?Sized> Serialize for Fast<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(Strings(serializer))
    }
}

/// Wraps a serializer (or one of its compound states) so that every string in
/// the value, at any depth, takes the fast path when it is long.
struct Strings<S>(S);

impl<S: Serializer> Serializer for Strings<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Strings<S::SerializeSeq>;
    type SerializeTuple = Strings<S::SerializeTuple>;
    type SerializeTupleStruct = Strings<S::SerializeTupleStruct>;
    type SerializeTupleVariant = Strings<S::SerializeTupleVariant>;
    type SerializeMap = Strings<S::SerializeMap>;
    type SerializeStruct = StructFields<S::SerializeStruct>;
    type SerializeStructVariant = Strings<S::SerializeStructVariant>;

    fn serialize_bool(self, v: bool) -> Result<S::Ok, S::Error> {
        self.0.serialize_bool(v)
    }
    fn serialize_i8(self, v: i8) -> Result<S::Ok, S::Error> {
        self.0.serialize_i8(v)
    }
    fn serialize_i16(self, v: i16) -> Result<S::Ok, S::Error> {
        self.0.serialize_i16(v)
    }
    fn serialize_i32(self, v: i32) -> Result<S::Ok, S::Error> {
        self.0.serialize_i32(v)
    }
    fn serialize_i64(self, v: i64) -> Result<S::Ok, S::Error> {
        self.0.serialize_i64(v)
    }
    fn serialize_i128(self, v: i128) -> Result<S::Ok, S::Error> {
        self.0.serialize_i128(v)
    }
    fn serialize_u8(self, v: u8) -> Result<S::Ok, S::Error> {
        self.0.serialize_u8(v)
    }
    fn serialize_u16(self, v: u16) -> Result<S::Ok, S::Error> {
        self.0.serialize_u16(v)
    }
    fn serialize_u32(self, v: u32) -> Result<S::Ok, S::Error> {
        self.0.serialize_u32(v)
    }
    fn serialize_u64(self, v: u64) -> Result<S::Ok, S::Error> {
        self.0.serialize_u64(v)
    }
    fn serialize_u128(self, v: u128) -> Result<S::Ok, S::Error> {
        self.0.serialize_u128(v)
    }
    fn serialize_f32(self, v: f32) -> Result<S::Ok, S::Error> {
        self.0.serialize_f32(v)
    }
    fn serialize_f64(self, v: f64) -> Result<S::Ok, S::Error> {
        self.0.serialize_f64(v)
    }
    fn serialize_char(self, v: char) -> Result<S::Ok, S::Error> {
        self.0.serialize_char(v)
    }

    fn serialize_str(self, v: &str) -> Result<S::Ok, S::Error> {
        if v.len() < QUOTE_FROM {
            return self.0.serialize_str(v);
        }
        if v.len() < LONG {
            let mut buf = [0; LONG + 1];
            return match quoted_plain(v, &mut buf) {
                Some(quoted) => raw(self.0, quoted),
                None => self.0.serialize_str(v),
            };
        }
        raw(self.0, &json_escape_simd::escape(v))
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<S::Ok, S::Error> {
        self.0.serialize_bytes(v)
    }
    fn serialize_none(self) -> Result<S::Ok, S::Error> {
        self.0.serialize_none()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.0.serialize_some(&Fast(value))
    }
    fn serialize_unit(self) -> Result<S::Ok, S::Error> {
        self.0.serialize_unit()
    }
    fn serialize_unit_struct(self, name: &'static str) -> Result<S::Ok, S::Error> {
        self.0.serialize_unit_struct(name)
    }
    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<S::Ok, S::Error> {
        self.0.serialize_unit_variant(name, index, variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.0.serialize_newtype_struct(name, &Fast(value))
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.0
            .serialize_newtype_variant(name, index, variant, &Fast(value))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        self.0.serialize_seq(len).map(Strings)
    }
    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        self.0.serialize_tuple(len).map(Strings)
    }
    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        self.0.serialize_tuple_struct(name, len).map(Strings)
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        self.0
            .serialize_tuple_variant(name, index, variant, len)
            .map(Strings)
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        self.0.serialize_map(len).map(Strings)
    }
    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        let raw = name == RAW_VALUE_TOKEN;
        self.0
            .serialize_struct(name, len)
            .map(|inner| StructFields { inner, raw })
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        self.0
            .serialize_struct_variant(name, index, variant, len)
            .map(Strings)
    }
    fn collect_str<T: Display + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.0.collect_str(value)
    }
    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

/// Writes `json`, a JSON string by construction, verbatim, the way a
/// `RawValue` does (a struct named by the token whose one field is the
/// text), without `RawValue::from_string` parsing it again, which cost twice
/// the escaping.
fn raw<S: Serializer>(serializer: S, json: &str) -> Result<S::Ok, S::Error> {
    let mut raw = serializer.serialize_struct(RAW_VALUE_TOKEN, 1)?;
    raw.serialize_field(RAW_VALUE_TOKEN, json)?;
    raw.end()
}

/// `v` between quotes, in `buf`, when `v` (shorter than [`LONG`]) has no
/// byte that JSON escapes: then it is `serde_json`'s own output for `v`,
/// made without its table lookup and branch per byte. The bytes are checked
/// without a branch per byte, so the compiler turns the loop into vector
/// compares.
fn quoted_plain<'b>(v: &str, buf: &'b mut [u8; LONG + 1]) -> Option<&'b str> {
    let bytes = v.as_bytes();
    let plain = bytes.iter().fold(true, |plain, &b| {
        plain & (b >= 0x20) & (b != b'"') & (b != b'\\')
    });
    if !plain {
        return None;
    }
    let end = bytes.len() + 2;
    buf[0] = b'"';
    buf[1..end - 1].copy_from_slice(bytes);
    buf[end - 1] = b'"';
    std::str::from_utf8(&buf[..end]).ok()
}

/// Sequence-like states: each element or field goes through [`Fast`].
macro_rules! forward_elements {
    ($($trait:ident :: $method:ident),* $(,)?) => {$(
        impl<S: $trait> $trait for Strings<S> {
            type Ok = S::Ok;
            type Error = S::Error;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
                self.0.$method(&Fast(value))
            }
            fn end(self) -> Result<S::Ok, S::Error> {
                self.0.end()
            }
        }
    )*};
}

forward_elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
);

/// Map keys go to `serde_json` as they are: it writes them with its own rules
/// (numbers quoted, anything else refused), which a raw value would break.
impl<S: SerializeMap> SerializeMap for Strings<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), S::Error> {
        self.0.serialize_key(key)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        self.0.serialize_value(&Fast(value))
    }
    fn serialize_entry<K: Serialize + ?Sized, V: Serialize + ?Sized>(
        &mut self,
        key: &K,
        value: &V,
    ) -> Result<(), S::Error> {
        self.0.serialize_entry(key, &Fast(value))
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

/// A struct's fields; a `RawValue`'s field passes through untouched.
struct StructFields<S> {
    inner: S,
    raw: bool,
}

impl<S: SerializeStruct> SerializeStruct for StructFields<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), S::Error> {
        if self.raw {
            self.inner.serialize_field(key, value)
        } else {
            self.inner.serialize_field(key, &Fast(value))
        }
    }
    fn skip_field(&mut self, key: &'static str) -> Result<(), S::Error> {
        self.inner.skip_field(key)
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.inner.end()
    }
}

impl<S: SerializeStructVariant> SerializeStructVariant for Strings<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), S::Error> {
        self.0.serialize_field(key, &Fast(value))
    }
    fn skip_field(&mut self, key: &'static str) -> Result<(), S::Error> {
        self.0.skip_field(key)
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use proptest::prelude::*;
    use serde::Serialize;
    use serde_json::Value;
    use serde_json::value::RawValue;

    use super::{LONG, to_string};

    /// Strings of every kind: short and long, ASCII, escapes, control
    /// characters, multi-byte characters and the separators JavaScript minds.
    fn text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            4 => "[a-zA-Z0-9 ]{0,40}",
            1 => Just("\"".to_owned()),
            1 => Just("\\".to_owned()),
            1 => Just("/".to_owned()),
            1 => proptest::char::range('\u{0}', '\u{1f}').prop_map(String::from),
            1 => Just("\u{7f}é漢\u{2028}\u{2029}😀".to_owned()),
            1 => any::<char>().prop_map(String::from),
        ];
        proptest::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            proptest::num::f64::ANY.prop_map(Value::from),
            text().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(text(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    #[derive(Serialize)]
    enum Shape {
        Unit,
        Newtype(String),
        Tuple(String, u8),
        Struct { name: String, raw: Box<RawValue> },
    }

    #[derive(Serialize)]
    struct Typed {
        raw: Box<RawValue>,
        by_number: BTreeMap<u32, String>,
        by_bool: HashMap<bool, String>,
        long_key: BTreeMap<String, u8>,
        shapes: Vec<Shape>,
        chars: Vec<char>,
        bytes: Vec<u8>,
        maybe: Option<String>,
        nothing: Option<String>,
        unit: (),
        newtype: Wrapper,
        #[serde(flatten)]
        extra: BTreeMap<String, String>,
    }

    #[derive(Serialize)]
    struct Wrapper(String);

    proptest! {
        #[test]
        fn same_bytes_as_serde_json_for_any_value(v in value()) {
            prop_assert_eq!(to_string(&v).unwrap(), serde_json::to_string(&v).unwrap());
        }

        #[test]
        fn same_bytes_as_serde_json_for_typed_values(s in text(), t in text()) {
            let long = format!("{s}{}{t}", "x".repeat(LONG));
            let raw_text = serde_json::to_string(&serde_json::json!({ "s": long, "n": [1, 2.5] })).unwrap();
            let typed = Typed {
                raw: RawValue::from_string(format!(" {raw_text} ")).unwrap(),
                by_number: [(7, long.clone())].into(),
                by_bool: [(true, s.clone())].into(),
                long_key: [(long.clone(), 1)].into(),
                shapes: vec![
                    Shape::Unit,
                    Shape::Newtype(long.clone()),
                    Shape::Tuple(t.clone(), 2),
                    Shape::Struct { name: long.clone(), raw: RawValue::from_string(raw_text.clone()).unwrap() },
                ],
                chars: s.chars().take(5).collect(),
                bytes: long.bytes().take(3).collect(),
                maybe: Some(long.clone()),
                nothing: None,
                unit: (),
                newtype: Wrapper(long.clone()),
                extra: [(s.clone(), long.clone())].into(),
            };
            prop_assert_eq!(to_string(&typed).unwrap(), serde_json::to_string(&typed).unwrap());
            let frame = ("sl/ok", 7u64, &typed);
            prop_assert_eq!(to_string(&frame).unwrap(), serde_json::to_string(&frame).unwrap());
        }
    }

    #[test]
    fn every_path_writes_serde_json_s_bytes_at_its_edges() {
        use super::QUOTE_FROM;
        // Each length on both sides of both thresholds, with nothing to
        // escape, with an escape or a control character at either end, and
        // with characters of several bytes.
        for len in [QUOTE_FROM - 1, QUOTE_FROM, LONG - 1, LONG] {
            let plain = "a".repeat(len);
            let cases = [
                plain.clone(),
                format!("\"{}", &plain[1..]),
                format!("{}\\", &plain[1..]),
                format!("\n{}", &plain[1..]),
                format!("{}\u{1f}", &plain[1..]),
                format!("{}\u{7f}/", &plain[2..]),
                format!("é{}", &plain[2..]),
                format!("{}漢", &plain[3..]),
                format!("{}\u{2028}", &plain[3..]),
            ];
            for text in cases {
                assert_eq!(text.len(), len, "{text:?}");
                let frame = ("sl/ok", 7u64, &text);
                assert_eq!(
                    to_string(&frame).unwrap(),
                    serde_json::to_string(&frame).unwrap()
                );
            }
        }
    }

    #[test]
    fn errors_stay_errors() {
        let bad_key: HashMap<Vec<u8>, u8> = [(vec![1], 1)].into();
        assert!(to_string(&bad_key).is_err());
        assert!(serde_json::to_string(&bad_key).is_err());
    }
}
