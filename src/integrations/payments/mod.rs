//! Payment providers: Stripe, PayPal and Plisio (crypto invoices).
//!
//! Owns the providers' wire contracts: webhook and callback authentication, the typed events Usher
//! acts on, and the calls that start a payment (Checkout Session, PayPal subscription, Plisio
//! invoice). Nothing here knows about Usher's database or jobs: verifying and parsing are pure
//! functions, the clients return typed results and classified errors. Rules kept: every base URL
//! is configurable (tests point the clients at `usher::fakes`); API keys, client secrets, tokens
//! and webhook secrets appear in no URL that is logged, no log line, no `Debug` output and no
//! error; amounts are whole minor units (`i64`), never floats.

pub mod paypal;
pub mod plisio;
pub mod stripe;

mod json;

pub use json::{MAX_DEPTH, check_depth};

use std::time::Duration;

use url::Url;

/// How long one call to a provider may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A webhook or callback body that is not the JSON shape the provider documents.
///
/// The messages name the field, never a value: bodies carry customer data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The body is not JSON at all (or not a JSON object).
    #[error("the body is not a JSON object ({0})")]
    NotJson(String),
    /// A field Usher needs is missing or has another type.
    #[error("the field `{0}` is missing or has an unexpected type")]
    Field(&'static str),
    /// The body nests deeper than any provider event does.
    #[error("the body nests deeper than {0} levels")]
    TooDeep(usize),
    /// A field is present but its value cannot be read (an amount, a currency, a date).
    #[error("the field `{field}` has an invalid value: {reason}")]
    Invalid {
        /// The field, as a JSON pointer into the body.
        field: &'static str,
        /// Why the value was refused (never the value itself).
        reason: String,
    },
}

/// What a delivery that cannot be read is recorded under: its `id` and `type` (read leniently at
/// the given pointers), or, without a usable id, a digest of the body (so a replay of the same
/// body is still recognised) and `unknown`.
pub fn delivery_key(body: &[u8], id_pointer: &str, type_pointer: &str) -> (String, String) {
    use sha2::Digest as _;
    let value = check_depth(body)
        .ok()
        .and_then(|()| serde_json::from_slice::<serde_json::Value>(body).ok());
    let text = |pointer: &str| {
        value
            .as_ref()
            .and_then(|v| v.pointer(pointer))
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 200 && !s.chars().any(char::is_control))
            .map(str::to_owned)
    };
    let id = text(id_pointer)
        .unwrap_or_else(|| format!("sha256:{}", hex::encode(sha2::Sha256::digest(body))));
    (id, text(type_pointer).unwrap_or_else(|| "unknown".into()))
}

/// The one `reqwest::Client` setup every provider client uses: rustls, a request timeout.
fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| e.without_url().to_string())
}

/// `base` + `path`, keeping any path the base already has (`http://127.0.0.1:9/stripe/`).
fn endpoint(base: &Url, path: &str) -> Url {
    let mut base = base.clone();
    if !base.path().ends_with('/') {
        let with_slash = format!("{}/", base.path());
        base.set_path(&with_slash);
    }
    base.join(path.trim_start_matches('/'))
        .expect("a relative path joins onto an http base URL")
}

/// Replaces every occurrence of `secret` in a provider's message.
fn redact(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        text.to_owned()
    } else {
        text.replace(secret, "[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_keep_the_path_of_the_base_url() {
        let root = Url::parse("https://api.stripe.com").unwrap();
        assert_eq!(
            endpoint(&root, "/v1/checkout/sessions").as_str(),
            "https://api.stripe.com/v1/checkout/sessions"
        );
        let nested = Url::parse("http://127.0.0.1:9/stripe").unwrap();
        assert_eq!(
            endpoint(&nested, "v1/checkout/sessions").as_str(),
            "http://127.0.0.1:9/stripe/v1/checkout/sessions"
        );
    }

    #[test]
    fn a_delivery_is_keyed_by_its_id_or_by_a_digest_of_its_body() {
        let (id, kind) = delivery_key(br#"{"id":"evt_1","type":"invoice.paid"}"#, "/id", "/type");
        assert_eq!((id.as_str(), kind.as_str()), ("evt_1", "invoice.paid"));
        let (id, kind) = delivery_key(b"{\"id\":\"a\\u0000b\"}", "/id", "/type");
        assert!(id.starts_with("sha256:"), "{id}");
        assert_eq!(kind, "unknown");
        let garbage = delivery_key(b"not json", "/id", "/type").0;
        assert!(
            garbage.starts_with("sha256:") && garbage.len() == 7 + 64,
            "{garbage}"
        );
        assert_ne!(garbage, delivery_key(b"not json!", "/id", "/type").0);
    }

    #[test]
    fn redaction_removes_every_copy_of_the_secret() {
        assert_eq!(
            redact("key sk_test_1 is bad: sk_test_1", "sk_test_1"),
            "key [redacted] is bad: [redacted]"
        );
        assert_eq!(redact("nothing", ""), "nothing");
    }
}
