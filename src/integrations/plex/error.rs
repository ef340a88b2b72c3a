//! Errors from plex.tv and Plex Media Servers, classified for the job layer.
//!
//! Owns the mapping from an HTTP status plus one of the three error body shapes plex.tv uses (v1
//! XML `<Response code status/>`, XML `<errors><error .../></errors>`, v2 JSON `{"errors":[...]}`)
//! to [`PlexError`], and the retry rule per variant. Rule kept: no error text ever carries a token;
//! every message built from a response body is scrubbed of the token that was sent.

use std::time::Duration;

use quick_xml::events::{BytesStart, Event};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// A failed call to plex.tv or to a Plex Media Server.
#[derive(Debug, thiserror::Error)]
pub enum PlexError {
    /// 401 (or 422 "Invalid token"): the token is invalid or revoked. Park the owner's work and
    /// alert an admin; never retry with the same token.
    #[error("plex.tv refused the token (401): relink the owner account")]
    Unauthorized,
    /// 404: the server, share or route is unknown.
    #[error("{endpoint}: not found (404)")]
    NotFound {
        /// Which call was made, as `METHOD /route/template`.
        endpoint: &'static str,
    },
    /// 410: Plex retired the endpoint. Usher needs an update; never retried.
    #[error("{endpoint} was retired by Plex (410): update Usher")]
    Gone {
        /// Which call was made, as `METHOD /route/template`.
        endpoint: &'static str,
    },
    /// 400/422 (or another 4xx): plex.tv refused the request. The caller re-reads the shares and
    /// decides by state; `message` is for display only.
    #[error("plex.tv rejected the request ({status}, code {code:?}): {message}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The plex error code from the body, when it had one.
        code: Option<i64>,
        /// The plex error message from the body (never matched on).
        message: String,
    },
    /// 429: slow down; wait `retry_after` when plex.tv said how long.
    #[error("plex.tv rate limit hit (429), retry after {retry_after:?}")]
    RateLimited {
        /// The parsed `Retry-After` header.
        retry_after: Option<Duration>,
    },
    /// 5xx: plex.tv or the server failed; retry with backoff.
    #[error("plex server error ({status})")]
    Server {
        /// The HTTP status.
        status: u16,
    },
    /// Network failure or timeout; retry with backoff.
    #[error("could not reach plex ({endpoint})")]
    Transport {
        /// Which call was made, as `METHOD /route/template`.
        endpoint: &'static str,
        /// The underlying error, with its URL stripped.
        #[source]
        source: reqwest::Error,
    },
    /// A success response whose body did not have the expected shape.
    #[error("unexpected response from {endpoint}: {detail}")]
    Decode {
        /// Which call was made, as `METHOD /route/template`.
        endpoint: &'static str,
        /// What did not match (scrubbed of the token).
        detail: String,
    },
    /// The client could not be built from its configuration.
    #[error("invalid plex client configuration: {detail}")]
    Config {
        /// What was wrong.
        detail: String,
    },
}

/// What the job layer should do after a [`PlexError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Retrying cannot help: park, alert or decide from fresh state.
    Never,
    /// Retry later: after the given delay when plex said so, else with the caller's backoff.
    After(Option<Duration>),
}

impl PlexError {
    /// Whether and when the failed call may be retried.
    pub fn retry(&self) -> Retry {
        match self {
            Self::RateLimited { retry_after } => Retry::After(*retry_after),
            Self::Server { .. } | Self::Transport { .. } => Retry::After(None),
            Self::Unauthorized
            | Self::NotFound { .. }
            | Self::Gone { .. }
            | Self::Rejected { .. }
            | Self::Decode { .. }
            | Self::Config { .. } => Retry::Never,
        }
    }

    /// Classifies a non-success response.
    pub(crate) fn from_response(
        endpoint: &'static str,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        token: Option<&str>,
    ) -> Self {
        let parsed = ErrorBody::parse(body);
        match status.as_u16() {
            401 => Self::Unauthorized,
            404 => Self::NotFound { endpoint },
            410 => Self::Gone { endpoint },
            429 => Self::RateLimited {
                retry_after: parse_retry_after(headers),
            },
            // python-plexapi: a 422 that says "Invalid token" is an authentication failure.
            422 if parsed
                .message
                .as_deref()
                .is_some_and(|m| m.contains("Invalid token")) =>
            {
                Self::Unauthorized
            }
            code @ 400..=499 => Self::Rejected {
                status: code,
                code: parsed.code,
                message: redact(&parsed.message.unwrap_or_default(), token),
            },
            code @ 500..=599 => Self::Server { status: code },
            code => Self::Decode {
                endpoint,
                detail: format!("unexpected HTTP status {code}"),
            },
        }
    }
}

/// Replaces every occurrence of the token in `text`.
pub(crate) fn redact(text: &str, token: Option<&str>) -> String {
    match token {
        Some(token) if !token.is_empty() => text.replace(token, "[redacted]"),
        _ => text.to_owned(),
    }
}

/// `Retry-After` as delta-seconds or an HTTP date (a date in the past means "now").
fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// The code and message of a plex error body, whichever of the three shapes it came in.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ErrorBody {
    pub(crate) code: Option<i64>,
    pub(crate) message: Option<String>,
}

impl ErrorBody {
    /// Parses v2 JSON, v2 XML or v1 XML; anything else yields an empty body.
    pub(crate) fn parse(body: &[u8]) -> Self {
        let trimmed = body.trim_ascii_start();
        if trimmed.first() == Some(&b'{') {
            Self::parse_json(trimmed)
        } else if trimmed.first() == Some(&b'<') {
            Self::parse_xml(trimmed)
        } else {
            Self::default()
        }
    }

    fn parse_json(body: &[u8]) -> Self {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
            return Self::default();
        };
        let Some(first) = value.get("errors").and_then(|e| e.get(0)) else {
            return Self::default();
        };
        Self {
            code: first.get("code").and_then(json_int),
            message: first
                .get("message")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned),
        }
    }

    fn parse_xml(body: &[u8]) -> Self {
        let mut reader = quick_xml::Reader::from_reader(body);
        let mut in_error = false;
        loop {
            match reader.read_event() {
                Ok(Event::Empty(e) | Event::Start(e)) if e.name().as_ref() == b"Response" => {
                    return Self::from_attrs(&e, b"status");
                }
                Ok(Event::Empty(e)) if e.name().as_ref() == b"error" => {
                    return Self::from_attrs(&e, b"message");
                }
                Ok(Event::Start(e)) if e.name().as_ref() == b"error" => {
                    let found = Self::from_attrs(&e, b"message");
                    if found.message.is_some() {
                        return found;
                    }
                    in_error = true;
                }
                Ok(Event::Text(text)) if in_error => {
                    return Self {
                        code: None,
                        message: text.unescape().ok().map(|t| t.trim().to_owned()),
                    };
                }
                Ok(Event::Eof) | Err(_) => return Self::default(),
                Ok(_) => {}
            }
        }
    }

    fn from_attrs(element: &BytesStart<'_>, message_attr: &[u8]) -> Self {
        let mut found = Self::default();
        for attr in element.attributes().flatten() {
            let Ok(value) = attr.unescape_value() else {
                continue;
            };
            if attr.key.as_ref() == b"code" {
                found.code = value.trim().parse().ok();
            } else if attr.key.as_ref() == message_attr {
                found.message = Some(value.into_owned());
            }
        }
        found
    }
}

fn json_int(value: &serde_json::Value) -> Option<i64> {
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_response_shape_gives_code_and_status_text() {
        let body = br#"<Response code="410" status="This endpoint was deprecated and removed"/>"#;
        assert_eq!(
            ErrorBody::parse(body),
            ErrorBody {
                code: Some(410),
                message: Some("This endpoint was deprecated and removed".into())
            }
        );
    }

    #[test]
    fn v1_errors_shape_gives_the_text_of_the_error() {
        let body = b"<errors><error>Not found</error></errors>";
        assert_eq!(
            ErrorBody::parse(body),
            ErrorBody {
                code: None,
                message: Some("Not found".into())
            }
        );
    }

    #[test]
    fn v2_xml_shape_gives_code_and_message_attributes() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<errors><error code="1001" message="User could not be authenticated" status="401"/></errors>"#;
        assert_eq!(
            ErrorBody::parse(body),
            ErrorBody {
                code: Some(1001),
                message: Some("User could not be authenticated".into())
            }
        );
    }

    #[test]
    fn v2_json_shape_gives_code_and_message() {
        let body =
            br#"{"errors":[{"code":1003,"message":"API rate limit exceeded","status":429}]}"#;
        assert_eq!(
            ErrorBody::parse(body),
            ErrorBody {
                code: Some(1003),
                message: Some("API rate limit exceeded".into())
            }
        );
    }

    #[test]
    fn an_html_page_gives_an_empty_error_body() {
        assert_eq!(
            ErrorBody::parse(b"<html><body>404</body></html>"),
            ErrorBody::default()
        );
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(parse_retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(parse_retry_after(&headers), Some(Duration::ZERO));
    }

    #[test]
    fn a_422_saying_invalid_token_is_unauthorized() {
        let err = PlexError::from_response(
            "GET /api/v2/user",
            StatusCode::UNPROCESSABLE_ENTITY,
            &HeaderMap::new(),
            br#"{"errors":[{"code":1000,"message":"Invalid token"}]}"#,
            None,
        );
        assert!(matches!(err, PlexError::Unauthorized));
    }

    #[test]
    fn rejected_messages_are_scrubbed_of_the_token() {
        let err = PlexError::from_response(
            "POST /api/v2/shared_servers",
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            br#"{"errors":[{"code":1,"message":"bad token abc123"}]}"#,
            Some("abc123"),
        );
        assert!(!err.to_string().contains("abc123"));
        assert_eq!(err.retry(), Retry::Never);
    }
}
