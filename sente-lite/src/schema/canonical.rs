//! The canonical JSON text of a shape, the form the schema hash is computed over.
//!
//! It is the JSON Canonicalization Scheme (RFC 8785) with one exception: the
//! value of a member named `properties`, in an object whose members are sorted,
//! keeps the order of its own members (a struct's fields, in the order the
//! binary encoding sends them); their values are sorted as usual.
//! So: no whitespace; object members sorted by their names' UTF-16 code units;
//! strings escaped as `JSON.stringify` escapes them; numbers written as
//! ECMAScript writes a double.

use std::fmt::Write as _;

use serde_json::{Number, Value};

/// `value` in canonical JSON (see the module docs and `docs/PROTOCOL.md`).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(value, false, &mut out);
    out
}

fn write_value(value: &Value, keep_order: bool, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, false, out);
            }
            out.push(']');
        }
        Value::Object(members) => {
            let mut members: Vec<(&String, &Value)> = members.iter().collect();
            if !keep_order {
                members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            }
            out.push('{');
            for (i, (name, member)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(name, out);
                out.push(':');
                // A `properties` map's values are schemas again: only a
                // `properties` member of a sorted object keeps its order.
                write_value(member, !keep_order && name == "properties", out);
            }
            out.push('}');
        }
    }
}

/// A string as `JSON.stringify` writes it: `"` and `\` escaped, control
/// characters as `\b \t \n \f \r` or `\u00xx` (lowercase hex), everything else
/// as it is.
fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A number as ECMAScript's `Number.prototype.toString` writes the nearest
/// double (RFC 8785 §3.2.2.3): integers below 10^21 in full, others in the
/// shortest form that reads back as the same double.
fn write_number(n: &Number, out: &mut String) {
    let Some(x) = n.as_f64().filter(|x| x.is_finite()) else {
        out.push_str("null");
        return;
    };
    if x == 0.0 {
        out.push('0');
        return;
    }
    if x < 0.0 {
        out.push('-');
    }
    // The shortest round-trip digits and exponent: `d.ddde±n`.
    let sci = format!("{:e}", x.abs());
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let k = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    // The decimal point sits after `n` digits.
    let n = exponent + 1;
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = n - 1;
        let _ = write!(out, "e{}{}", if e < 0 { '-' } else { '+' }, e.abs());
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::canonical_json;

    #[test]
    fn numbers_are_written_as_ecmascript_writes_them() {
        let cases = [
            (json!(0), "0"),
            (json!(-0.0), "0"),
            (json!(1), "1"),
            (json!(-32768), "-32768"),
            (json!(255), "255"),
            (json!(1.5), "1.5"),
            (json!(0.000001), "0.000001"),
            (json!(0.0000001), "1e-7"),
            (json!(1e21), "1e+21"),
            (json!(1e20), "100000000000000000000"),
            (json!(123.456), "123.456"),
            (json!(u64::MAX), "18446744073709552000"),
            (json!(i64::MIN), "-9223372036854776000"),
            (json!(1.7976931348623157e308), "1.7976931348623157e+308"),
            (json!(5e-324), "5e-324"),
        ];
        for (value, text) in cases {
            assert_eq!(canonical_json(&value), text, "{value}");
        }
    }

    #[test]
    fn members_are_sorted_except_properties() {
        let value: serde_json::Value = serde_json::from_str(
            r#"{"type":"object","properties":{"zeta":{"type":"string","format":"x"},"alpha":{"b":1,"a":2}},"required":["zeta"]}"#,
        )
        .unwrap();
        assert_eq!(
            canonical_json(&value),
            r#"{"properties":{"zeta":{"format":"x","type":"string"},"alpha":{"a":2,"b":1}},"required":["zeta"],"type":"object"}"#
        );
    }

    #[test]
    fn a_field_named_properties_has_its_schema_sorted() {
        let value: serde_json::Value = serde_json::from_str(
            r#"{"properties":{"properties":{"type":"object","properties":{"b":{},"a":{}}},"z":{}}}"#,
        )
        .unwrap();
        assert_eq!(
            canonical_json(&value),
            r#"{"properties":{"properties":{"properties":{"b":{},"a":{}},"type":"object"},"z":{}}}"#
        );
    }

    #[test]
    fn strings_are_escaped_as_json_stringify_does() {
        let value = json!({"\u{e000}": 1, "\u{1f600}": 2, "a\"\\\n\u{1}\u{7f}é": 3});
        // U+1F600 is the surrogate pair D83D DE00, which sorts before U+E000.
        assert_eq!(
            canonical_json(&value),
            "{\"a\\\"\\\\\\n\\u0001\u{7f}é\":3,\"\u{1f600}\":2,\"\u{e000}\":1}"
        );
    }
}
