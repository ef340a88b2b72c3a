//! Reading provider payloads field by field, by JSON pointer.
//!
//! Owns the small readers the three providers share. Rules kept: a missing or ill-typed field is a
//! [`ParseError`] naming the pointer, never the value; a text field Usher reads carries no control
//! character (a NUL byte cannot be stored by PostgreSQL, and no id or email has one); a body nested
//! deeper than [`MAX_DEPTH`] is refused before anything else reads it.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::ParseError;
use crate::domain::{Currency, Money};

/// How deep a provider body may nest (objects and arrays). Real events nest about six levels.
pub const MAX_DEPTH: usize = 32;

/// How deep `body` nests, counting `{` and `[` outside strings; stops counting past `limit`.
fn depth(body: &[u8], limit: usize) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &byte in body {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
                if deepest > limit {
                    return deepest;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Refuses a body nested deeper than [`MAX_DEPTH`], without parsing it.
pub fn check_depth(body: &[u8]) -> Result<(), ParseError> {
    if depth(body, MAX_DEPTH) > MAX_DEPTH {
        return Err(ParseError::TooDeep(MAX_DEPTH));
    }
    Ok(())
}

/// Parses a body that must be a JSON object.
pub(super) fn object(body: &[u8]) -> Result<Value, ParseError> {
    check_depth(body)?;
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ParseError::NotJson(format!(
            "{:?} error at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        ))
    })?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(ParseError::NotJson("the top level is not an object".into()))
    }
}

/// A non-empty string without control characters, or `None` when absent, `null` or empty.
pub(super) fn string(value: &Value, pointer: &'static str) -> Result<Option<String>, ParseError> {
    match value.pointer(pointer) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s.chars().any(char::is_control) => Err(ParseError::Invalid {
            field: pointer,
            reason: "it contains a control character (such as a NUL byte)".into(),
        }),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ParseError::Field(pointer)),
    }
}

/// A string that must be there.
pub(super) fn required_string(value: &Value, pointer: &'static str) -> Result<String, ParseError> {
    string(value, pointer)?.ok_or(ParseError::Field(pointer))
}

/// The id of an expandable field: a plain id string, or an expanded object's `id`.
pub(super) fn id(value: &Value, pointer: &'static str) -> Result<Option<String>, ParseError> {
    match value.pointer(pointer) {
        Some(Value::Object(object)) => match object.get("id") {
            Some(Value::String(id)) if !id.is_empty() => Ok(Some(id.clone())),
            _ => Err(ParseError::Field(pointer)),
        },
        _ => string(value, pointer),
    }
}

/// An integer, or `None` when absent or `null`.
pub(super) fn int(value: &Value, pointer: &'static str) -> Result<Option<i64>, ParseError> {
    match value.pointer(pointer) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or(ParseError::Field(pointer)),
    }
}

/// An integer that must be there.
pub(super) fn required_int(value: &Value, pointer: &'static str) -> Result<i64, ParseError> {
    int(value, pointer)?.ok_or(ParseError::Field(pointer))
}

/// A boolean; absent or `null` reads as `false`.
pub(super) fn flag(value: &Value, pointer: &'static str) -> Result<bool, ParseError> {
    match value.pointer(pointer) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ParseError::Field(pointer)),
    }
}

/// Unix seconds as a UTC time, or `None` when absent or `null`.
pub(super) fn unix_time(
    value: &Value,
    pointer: &'static str,
) -> Result<Option<DateTime<Utc>>, ParseError> {
    int(value, pointer)?
        .map(|secs| {
            DateTime::from_timestamp(secs, 0).ok_or_else(|| ParseError::Invalid {
                field: pointer,
                reason: "not a representable unix time".into(),
            })
        })
        .transpose()
}

/// Unix seconds that must be there.
pub(super) fn required_unix_time(
    value: &Value,
    pointer: &'static str,
) -> Result<DateTime<Utc>, ParseError> {
    unix_time(value, pointer)?.ok_or(ParseError::Field(pointer))
}

/// An RFC 3339 time, or `None` when absent, `null` or empty.
pub(super) fn rfc3339(
    value: &Value,
    pointer: &'static str,
) -> Result<Option<DateTime<Utc>>, ParseError> {
    string(value, pointer)?
        .map(|text| {
            DateTime::parse_from_rfc3339(&text)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| ParseError::Invalid {
                    field: pointer,
                    reason: e.to_string(),
                })
        })
        .transpose()
}

/// An RFC 3339 time, or `None` when absent, empty or unreadable: for times Usher only orders
/// events by, where a bad value must not refuse the event.
pub(super) fn lenient_rfc3339(value: &Value, pointer: &'static str) -> Option<DateTime<Utc>> {
    rfc3339(value, pointer).ok().flatten()
}

/// A currency code in any case, or `None` when absent, `null` or empty.
pub(super) fn currency(
    value: &Value,
    pointer: &'static str,
) -> Result<Option<Currency>, ParseError> {
    string(value, pointer)?
        .map(|code| {
            Currency::parse(&code).map_err(|e| ParseError::Invalid {
                field: pointer,
                reason: e.to_string(),
            })
        })
        .transpose()
}

/// A currency code that must be there.
pub(super) fn required_currency(
    value: &Value,
    pointer: &'static str,
) -> Result<Currency, ParseError> {
    currency(value, pointer)?.ok_or(ParseError::Field(pointer))
}

/// A decimal amount (`"10.00"`, or a JSON number written the same way) in minor units of
/// `currency`, exactly: no floating point on the way.
pub(super) fn decimal_minor(
    value: &Value,
    pointer: &'static str,
    currency: Currency,
) -> Result<Option<i64>, ParseError> {
    let text = match value.pointer(pointer) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.is_empty() => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        // serde_json keeps the digits of a number as written when it is an integer; a fraction
        // is re-printed by ryu, which is exact for the short decimals prices are written with.
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err(ParseError::Field(pointer)),
    };
    Money::parse(&text, currency)
        .map(|money| Some(money.minor()))
        .map_err(|e| ParseError::Invalid {
            field: pointer,
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn expandable_ids_read_as_a_string_or_an_object_id() {
        let value = json!({"a": "cus_1", "b": {"id": "cus_2", "object": "customer"}, "c": null});
        assert_eq!(id(&value, "/a").unwrap().as_deref(), Some("cus_1"));
        assert_eq!(id(&value, "/b").unwrap().as_deref(), Some("cus_2"));
        assert_eq!(id(&value, "/c").unwrap(), None);
        assert_eq!(id(&value, "/d").unwrap(), None);
    }

    #[test]
    fn ill_typed_fields_name_the_pointer_not_the_value() {
        let value = json!({"amount": "secret-looking"});
        let err = required_int(&value, "/amount").unwrap_err();
        assert_eq!(err, ParseError::Field("/amount"));
        assert!(!err.to_string().contains("secret-looking"));
    }

    #[test]
    fn decimal_amounts_become_exact_minor_units() {
        let usd = Currency::parse("usd").unwrap();
        let value = json!({"s": "10.00", "n": 19.99, "i": 7, "bad": "1.005"});
        assert_eq!(decimal_minor(&value, "/s", usd).unwrap(), Some(1000));
        assert_eq!(decimal_minor(&value, "/n", usd).unwrap(), Some(1999));
        assert_eq!(decimal_minor(&value, "/i", usd).unwrap(), Some(700));
        assert!(decimal_minor(&value, "/bad", usd).is_err());
    }

    #[test]
    fn a_nul_byte_in_a_text_field_is_refused_by_name() {
        let value = json!({"email": "a\u{0}b@example.com"});
        let err = string(&value, "/email").unwrap_err();
        assert!(
            matches!(
                err,
                ParseError::Invalid {
                    field: "/email",
                    ..
                }
            ),
            "{err}"
        );
        assert!(!err.to_string().contains("example.com"), "{err}");
    }

    #[test]
    fn nesting_is_counted_outside_strings_and_refused_past_the_limit() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(check_depth(ok.as_bytes()), Ok(()));
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(
            check_depth(deep.as_bytes()),
            Err(ParseError::TooDeep(MAX_DEPTH))
        );
        let quoted = format!("{{\"a\":\"{}\\\"{}\"}}", "[".repeat(100), "{".repeat(100));
        assert_eq!(check_depth(quoted.as_bytes()), Ok(()));
        assert!(matches!(
            object(deep.as_bytes()),
            Err(ParseError::TooDeep(_))
        ));
    }

    #[test]
    fn a_body_that_is_not_an_object_is_refused_without_echoing_it() {
        let err = object(b"[\"whsec_abc\"]").unwrap_err();
        assert!(!err.to_string().contains("whsec"), "{err}");
        assert!(matches!(object(b"{nope"), Err(ParseError::NotJson(_))));
    }
}
