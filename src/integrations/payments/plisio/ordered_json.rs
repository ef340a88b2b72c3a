//! JSON that keeps its key order, and the two compact serialisations Plisio's callback hash is
//! computed over.
//!
//! Owns parsing a callback without losing key order (`serde_json`'s `Value` sorts keys unless the
//! crate-wide `preserve_order` feature is on, which would change every other user of it) and
//! re-serialising it exactly as Python's `json.dumps(obj, separators=(',', ':'))` and as
//! JavaScript's `JSON.stringify(obj)` do. Rule kept: each serialisation is byte-identical to its
//! model, strings and floating-point numbers included; duplicate keys keep their first position
//! and their last value, as both `json.loads` and `JSON.parse` do.

use std::fmt::{self, Write as _};

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON value whose objects keep their keys in the order received.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Json {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

/// Whose compact serialisation to reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Style {
    /// Python `json.dumps(obj, separators=(',', ':'))`: `ensure_ascii`, so every character outside
    /// printable ASCII is a `\uXXXX` escape; floats as `repr` (`1.0`, `1e-05`, `1e+16`).
    Python,
    /// JavaScript `JSON.stringify(obj)`: UTF-8 as is, only `"`, `\` and control characters
    /// escaped; numbers as `Number.prototype.toString` (`1`, `0.00001`, `1e-7`, `1e+21`).
    JavaScript,
}

impl Json {
    /// The value under `key` of an object.
    pub(super) fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Self::Object(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// A string's text, or an integer's digits (some senders write ids as numbers); `None` for
    /// anything else and for the empty string.
    pub(super) fn text(&self) -> Option<String> {
        match self {
            Self::String(s) if !s.is_empty() => Some(s.clone()),
            Self::Int(i) => Some(i.to_string()),
            _ => None,
        }
    }

    /// The compact serialisation in `style`.
    pub(super) fn to_compact(&self, style: Style) -> String {
        let mut out = String::new();
        self.write(&mut out, style);
        out
    }

    fn write(&self, out: &mut String, style: Style) {
        match self {
            Self::Null => out.push_str("null"),
            Self::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Self::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Self::Float(f) => out.push_str(&format_float(*f, style)),
            Self::String(s) => write_string(out, s, style),
            Self::Array(items) => {
                out.push('[');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    item.write(out, style);
                }
                out.push(']');
            }
            Self::Object(entries) => {
                out.push('{');
                for (index, (key, value)) in entries.iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    write_string(out, key, style);
                    out.push(':');
                    value.write(out, style);
                }
                out.push('}');
            }
        }
    }
}

impl From<&serde_json::Value> for Json {
    fn from(value: &serde_json::Value) -> Self {
        match value {
            serde_json::Value::Null => Self::Null,
            serde_json::Value::Bool(b) => Self::Bool(*b),
            serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Self::Int(i.into()),
                (None, Some(u)) => Self::Int(u.into()),
                (None, None) => Self::Float(n.as_f64().unwrap_or_default()),
            },
            serde_json::Value::String(s) => Self::String(s.clone()),
            serde_json::Value::Array(items) => Self::Array(items.iter().map(Self::from).collect()),
            serde_json::Value::Object(map) => Self::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), Self::from(v)))
                    .collect(),
            ),
        }
    }
}

fn write_string(out: &mut String, text: &str, style: Style) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            // Python escapes everything outside printable ASCII (DEL included), as UTF-16 units.
            c if style == Style::Python && c > '~' => {
                let mut units = [0_u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A finite float as Python's `repr` or JavaScript's `Number.prototype.toString` writes it. Both
/// print the shortest digits that round-trip, as Rust's `{:e}` does; they differ in layout.
fn format_float(value: f64, style: Style) -> String {
    if value == 0.0 {
        return match (style, value.is_sign_negative()) {
            (Style::Python, true) => "-0.0".into(),
            (Style::Python, false) => "0.0".into(),
            (Style::JavaScript, _) => "0".into(),
        };
    }
    let scientific = format!("{:e}", value.abs());
    let (mantissa, exponent) = scientific
        .split_once('e')
        .expect("{:e} always writes an exponent");
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exponent: i32 = exponent.parse().expect("{:e} writes an integer exponent");
    let sign = if value < 0.0 { "-" } else { "" };
    let fixed_range = match style {
        Style::Python => -4..16,
        Style::JavaScript => -6..21,
    };
    let body = if fixed_range.contains(&exponent) {
        let fixed = fixed_notation(&digits, exponent);
        if style == Style::Python && !fixed.contains('.') {
            format!("{fixed}.0")
        } else {
            fixed
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let fraction = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let exp_sign = if exponent < 0 { "-" } else { "+" };
        let magnitude = exponent.unsigned_abs();
        match style {
            Style::Python => format!("{first}{fraction}e{exp_sign}{magnitude:02}"),
            Style::JavaScript => format!("{first}{fraction}e{exp_sign}{magnitude}"),
        }
    };
    format!("{sign}{body}")
}

/// `d.ddd × 10^exponent` written without an exponent.
fn fixed_notation(digits: &str, exponent: i32) -> String {
    if exponent < 0 {
        let zeros = "0".repeat(usize::try_from(-exponent - 1).expect("a small exponent"));
        return format!("0.{zeros}{digits}");
    }
    let point = usize::try_from(exponent).expect("a small exponent") + 1;
    if digits.len() <= point {
        format!("{digits:0<point$}")
    } else {
        format!("{}.{}", &digits[..point], &digits[point..])
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Int(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Int(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
        Ok(Json::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut entries: Vec<(String, Json)> = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Json>()? {
            match entries.iter_mut().find(|(k, _)| *k == key) {
                Some(entry) => entry.1 = value,
                None => entries.push((key, value)),
            }
        }
        Ok(Json::Object(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Json {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn key_order_is_kept_and_duplicates_keep_the_first_place_and_the_last_value() {
        let value = parse(r#"{"z": 1, "a": {"y": true, "b": null}, "z": 2, "m": [1, "x"]}"#);
        assert_eq!(
            value.to_compact(Style::Python),
            r#"{"z":2,"a":{"y":true,"b":null},"m":[1,"x"]}"#
        );
    }

    #[test]
    fn strings_are_escaped_like_python_or_like_javascript() {
        let value = parse(r#"{"s": "café ☕ 😀 \u007f \u0001 \" \\ / \n\t\b\f\r"}"#);
        assert_eq!(
            value.to_compact(Style::Python),
            r#"{"s":"caf\u00e9 \u2615 \ud83d\ude00 \u007f \u0001 \" \\ / \n\t\b\f\r"}"#
        );
        assert_eq!(
            value.to_compact(Style::JavaScript),
            "{\"s\":\"café ☕ 😀 \u{7f} \\u0001 \\\" \\\\ / \\n\\t\\b\\f\\r\"}"
        );
    }

    #[test]
    fn floats_are_written_like_python_repr_or_javascript() {
        let cases: &[(&str, &str, &str)] = &[
            ("1.0", "1.0", "1"),
            ("0.1", "0.1", "0.1"),
            ("-2.5", "-2.5", "-2.5"),
            ("0.00001", "1e-05", "0.00001"),
            ("0.0001", "0.0001", "0.0001"),
            ("0.0000001", "1e-07", "1e-7"),
            ("1e16", "1e+16", "10000000000000000"),
            ("1.5e21", "1.5e+21", "1.5e+21"),
            ("123456.789", "123456.789", "123456.789"),
            ("-0.0", "-0.0", "0"),
        ];
        for (input, python, javascript) in cases {
            let value = parse(input);
            assert_eq!(value.to_compact(Style::Python), *python, "{input}");
            assert_eq!(value.to_compact(Style::JavaScript), *javascript, "{input}");
        }
    }

    #[test]
    fn integers_keep_their_digits() {
        let value = parse("[0, -7, 18446744073709551615, 1700000000]");
        assert_eq!(
            value.to_compact(Style::Python),
            "[0,-7,18446744073709551615,1700000000]"
        );
    }
}
