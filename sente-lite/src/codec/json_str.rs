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
//!
//! A long string is not copied into `serde_json`'s buffer: a one-byte
//! [`PLACE`] stands for it there, and the text is put together at the end in
//! a `String` of the exact length. `serde_json`'s buffer grows by doubling,
//! so a 16 KiB string written into it was copied a second time when the
//! frame's closing `]` no longer fit, and left a buffer twice the frame.

use std::cell::RefCell;
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

/// Stands for a long string in what `serde_json` writes: a control
/// character, which `serde_json` escapes in every string and key, and which
/// JSON has nowhere else (a `RawValue` is JSON too), so each one in the
/// output is a place this module made.
const PLACE: char = '\u{1}';

/// The long strings of one encoding, escaped and quoted, in the order of
/// their places.
type Long = RefCell<Vec<String>>;

/// `serde_json::to_string`, with long strings escaped fast.
pub(super) fn to_string<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    let long = Long::default();
    let written = serde_json::to_string(&Fast(value, &long))?;
    let long = long.into_inner();
    if long.is_empty() {
        return Ok(written);
    }
    match splice(&written, &long) {
        Some(text) => Ok(text),
        // Not reached: every place is one this module made. Should it ever
        // be, `serde_json` alone still gives the right bytes.
        None => serde_json::to_string(value),
    }
}

/// `written` with each [`PLACE`] replaced by the next of `long`, in a
/// `String` of the exact length; `None` if the places and the strings
/// differ in number.
fn splice(written: &str, long: &[String]) -> Option<String> {
    let places = written.matches(PLACE).count();
    if places != long.len() {
        return None;
    }
    let len =
        written.len() - places * PLACE.len_utf8() + long.iter().map(String::len).sum::<usize>();
    let mut text = String::with_capacity(len);
    let mut parts = written.split(PLACE);
    text.push_str(parts.next().unwrap_or_default());
    for (string, part) in long.iter().zip(parts) {
        text.push_str(string);
        text.push_str(part);
    }
    Some(text)
}

/// A value serialized through [`Strings`], its long strings set aside in
/// the [`Long`].
struct Fast<'a, T: ?Sized>(&'a T, &'a Long);

impl<T: Serialize + ?Sized> Serialize for Fast<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(Strings(serializer, self.1))
    }
}

/// Wraps a serializer (or one of its compound states) so that every string in
/// the value, at any depth, takes the fast path when it is long.
struct Strings<'a, S>(S, &'a Long);

impl<'a, S: Serializer> Serializer for Strings<'a, S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Strings<'a, S::SerializeSeq>;
    type SerializeTuple = Strings<'a, S::SerializeTuple>;
    type SerializeTupleStruct = Strings<'a, S::SerializeTupleStruct>;
    type SerializeTupleVariant = Strings<'a, S::SerializeTupleVariant>;
    type SerializeMap = Strings<'a, S::SerializeMap>;
    type SerializeStruct = StructFields<'a, S::SerializeStruct>;
    type SerializeStructVariant = Strings<'a, S::SerializeStructVariant>;

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
        // `escape` allocates six times the string's length (room for the
        // worst case): cut to what it wrote (in place), so a value of many
        // long strings holds about its own size until they are spliced.
        let mut escaped = json_escape_simd::escape(v);
        escaped.shrink_to_fit();
        self.1.borrow_mut().push(escaped);
        raw(self.0, PLACE.encode_utf8(&mut [0; 4]))
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<S::Ok, S::Error> {
        self.0.serialize_bytes(v)
    }
    fn serialize_none(self) -> Result<S::Ok, S::Error> {
        self.0.serialize_none()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.0.serialize_some(&Fast(value, self.1))
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
        self.0.serialize_newtype_struct(name, &Fast(value, self.1))
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.0
            .serialize_newtype_variant(name, index, variant, &Fast(value, self.1))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        self.0
            .serialize_seq(len)
            .map(|inner| Strings(inner, self.1))
    }
    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        self.0
            .serialize_tuple(len)
            .map(|inner| Strings(inner, self.1))
    }
    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        self.0
            .serialize_tuple_struct(name, len)
            .map(|inner| Strings(inner, self.1))
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
            .map(|inner| Strings(inner, self.1))
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        self.0
            .serialize_map(len)
            .map(|inner| Strings(inner, self.1))
    }
    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        let raw = name == RAW_VALUE_TOKEN;
        self.0
            .serialize_struct(name, len)
            .map(|inner| StructFields {
                inner,
                raw,
                long: self.1,
            })
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
            .map(|inner| Strings(inner, self.1))
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
        impl<S: $trait> $trait for Strings<'_, S> {
            type Ok = S::Ok;
            type Error = S::Error;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
                self.0.$method(&Fast(value, self.1))
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
impl<S: SerializeMap> SerializeMap for Strings<'_, S> {
    type Ok = S::Ok;
    type Error = S::Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), S::Error> {
        self.0.serialize_key(key)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        self.0.serialize_value(&Fast(value, self.1))
    }
    fn serialize_entry<K: Serialize + ?Sized, V: Serialize + ?Sized>(
        &mut self,
        key: &K,
        value: &V,
    ) -> Result<(), S::Error> {
        self.0.serialize_entry(key, &Fast(value, self.1))
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

/// A struct's fields; a `RawValue`'s field passes through untouched.
struct StructFields<'a, S> {
    inner: S,
    raw: bool,
    long: &'a Long,
}

impl<S: SerializeStruct> SerializeStruct for StructFields<'_, S> {
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
            self.inner.serialize_field(key, &Fast(value, self.long))
        }
    }
    fn skip_field(&mut self, key: &'static str) -> Result<(), S::Error> {
        self.inner.skip_field(key)
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.inner.end()
    }
}

impl<S: SerializeStructVariant> SerializeStructVariant for Strings<'_, S> {
    type Ok = S::Ok;
    type Error = S::Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), S::Error> {
        self.0.serialize_field(key, &Fast(value, self.1))
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
    fn a_frame_with_long_strings_is_its_exact_length() {
        let a = "a\"".repeat(LONG);
        let b = "b".repeat(16 << 10);
        let frame = ("sl/ok", 7u64, (&a, [&b, &a]));
        let text = to_string(&frame).unwrap();
        assert_eq!(text, serde_json::to_string(&frame).unwrap());
        assert_eq!(text.capacity(), text.len());
    }

    #[test]
    fn long_strings_set_aside_hold_their_length_only() {
        use super::{Fast, Long};
        let value = vec!["é\"x".repeat(LONG); 50];
        let long = Long::default();
        serde_json::to_string(&Fast(&value, &long)).unwrap();
        let long = long.into_inner();
        assert_eq!(long.len(), 50);
        for escaped in &long {
            assert_eq!(escaped.capacity(), escaped.len());
            assert_eq!(escaped, &serde_json::to_string(&value[0]).unwrap());
        }
    }

    /// Encodes its own string as JSON while it is itself being encoded, as
    /// a `Serialize` that embeds a document may.
    struct Nested(String);

    impl Serialize for Nested {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let inner = to_string(&(&self.0, 1)).map_err(serde::ser::Error::custom)?;
            (&self.0, inner).serialize(serializer)
        }
    }

    #[test]
    fn an_encoding_inside_an_encoding_keeps_its_long_strings() {
        let long = "x".repeat(LONG * 2);
        let value = ("outer", &long, Nested(format!("{long}y")), &long);
        assert_eq!(
            to_string(&value).unwrap(),
            serde_json::to_string(&value).unwrap()
        );
    }

    #[test]
    fn places_and_strings_must_match_in_number() {
        use super::splice;
        let long = ["\"a\"".to_owned(), "\"b\"".to_owned()];
        assert_eq!(
            splice("[\u{1},1,\u{1}]", &long).as_deref(),
            Some(r#"["a",1,"b"]"#)
        );
        assert_eq!(splice("[\u{1}]", &long), None);
        assert_eq!(splice("[\u{1},\u{1},\u{1}]", &long), None);
    }

    #[test]
    fn errors_stay_errors() {
        let bad_key: HashMap<Vec<u8>, u8> = [(vec![1], 1)].into();
        assert!(to_string(&bad_key).is_err());
        assert!(serde_json::to_string(&bad_key).is_err());
    }
}
