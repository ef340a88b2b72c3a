//! How the fake writes its answers: v2 JSON or XML by `Accept`, v1 XML, the three error shapes.
//!
//! Owns the fake's serialisation. Rule kept: the same shapes the reference records for the real
//! service (v1 `<Response code status/>`, `<errors><error .../></errors>`, `{"errors":[...]}`).

use std::fmt::Write as _;

use axum::http::header::{ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use quick_xml::escape::escape;
use serde_json::{Value, json};

/// The representation a request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wire {
    /// v2 route, `Accept: application/json`.
    Json,
    /// v2 route without JSON in `Accept`, or a Plex Media Server route.
    Xml,
    /// v1 route (`/api/...` without `v2`): always XML, v1 error shape.
    V1,
}

impl Wire {
    /// The representation of the route at `path`, given the request's `Accept`.
    pub(super) fn of(path: &str, headers: &HeaderMap) -> Self {
        if path.starts_with("/api/") && !path.starts_with("/api/v2/") {
            Self::V1
        } else {
            Self::negotiated(headers)
        }
    }

    /// JSON when `Accept` asks for it, else XML (v2 routes and the servers' own routes).
    pub(super) fn negotiated(headers: &HeaderMap) -> Self {
        let json = headers
            .get(ACCEPT)
            .and_then(|a| a.to_str().ok())
            .is_some_and(|a| a.contains("application/json"));
        if json { Self::Json } else { Self::Xml }
    }
}

/// A success answer: JSON as is, or the same value as XML under `root` (arrays become a
/// `MediaContainer` of `item` elements).
pub(super) fn ok(
    status: StatusCode,
    wire: Wire,
    root: &str,
    item: &str,
    value: &Value,
) -> Response {
    if wire == Wire::Json {
        return (
            status,
            [(CONTENT_TYPE, "application/json")],
            value.to_string(),
        )
            .into_response();
    }
    let mut out = String::from(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    match value {
        Value::Array(items) => {
            _ = write!(out, r#"<MediaContainer size="{}">"#, items.len());
            for element in items {
                element_xml(item, element, &mut out);
            }
            out.push_str("</MediaContainer>");
        }
        other => element_xml(root, other, &mut out),
    }
    xml(status, out)
}

/// An XML answer written by hand.
pub(super) fn xml(status: StatusCode, body: String) -> Response {
    (status, [(CONTENT_TYPE, "application/xml")], body).into_response()
}

/// An error in the shape the route's family uses.
pub(super) fn error(status: StatusCode, wire: Wire, code: i64, message: &str) -> Response {
    let status_number = status.as_u16();
    match wire {
        Wire::Json => (
            status,
            [(CONTENT_TYPE, "application/json")],
            json!({"errors": [{"code": code, "message": message, "status": status_number}]})
                .to_string(),
        )
            .into_response(),
        Wire::Xml => xml(
            status,
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><errors><error code="{code}" message="{}" status="{status_number}"/></errors>"#,
                escape(message)
            ),
        ),
        Wire::V1 => v1_response(status, code, message),
    }
}

/// The v1 `<Response code status/>` answer (also how `/api/users/validate` answers).
pub(super) fn v1_response(status: StatusCode, code: i64, text: &str) -> Response {
    xml(
        status,
        format!(r#"<Response code="{code}" status="{}"/>"#, escape(text)),
    )
}

/// A 404 in the route family's shape (v1 routes use `<errors><error>Not found</error></errors>`).
pub(super) fn not_found(wire: Wire) -> Response {
    match wire {
        Wire::V1 => xml(
            StatusCode::NOT_FOUND,
            "<errors><error>Not found</error></errors>".to_owned(),
        ),
        other => error(
            StatusCode::NOT_FOUND,
            other,
            super::codes::NOT_FOUND,
            "The requested resource or endpoint could not be found",
        ),
    }
}

/// The 410 plex.tv gives for a retired route.
pub(super) fn gone() -> Response {
    v1_response(
        StatusCode::GONE,
        410,
        "This endpoint was deprecated and removed",
    )
}

/// A 429 with plex.tv's rate-limit body and, when set, `Retry-After`.
pub(super) fn rate_limited(wire: Wire, retry_after_secs: Option<u64>) -> Response {
    let mut response = error(
        StatusCode::TOO_MANY_REQUESTS,
        wire,
        super::codes::RATE_LIMITED,
        "API rate limit exceeded",
    );
    if let Some(seconds) = retry_after_secs {
        response
            .headers_mut()
            .insert(RETRY_AFTER, seconds.to_string().parse().expect("digits"));
    }
    response
}

fn element_xml(name: &str, value: &Value, out: &mut String) {
    let Value::Object(fields) = value else {
        _ = write!(out, "<{name}>{}</{name}>", escape(scalar(value)));
        return;
    };
    out.push('<');
    out.push_str(name);
    let mut children = Vec::new();
    for (key, field) in fields {
        match field {
            Value::Null => {}
            Value::Object(_) | Value::Array(_) => children.push((key, field)),
            scalar_value => {
                _ = write!(out, r#" {key}="{}""#, escape(scalar(scalar_value)));
            }
        }
    }
    if children.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    for (key, child) in children {
        if let Value::Array(items) = child {
            let singular = key.strip_suffix('s').unwrap_or(key);
            _ = write!(out, "<{key}>");
            for element in items {
                element_xml(singular, element, out);
            }
            _ = write!(out, "</{key}>");
        } else {
            element_xml(key, child, out);
        }
    }
    _ = write!(out, "</{name}>");
}

fn scalar(value: &Value) -> String {
    match value {
        Value::Bool(b) => if *b { "1" } else { "0" }.to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
