//! Plisio: crypto invoices and their signed JSON callbacks.
//!
//! Owns `GET /api/v1/invoices/new` and the `verify_hash` of callbacks in JSON mode (the invoice's
//! `callback_url` carries `json=true`): HMAC-SHA1, hex, keyed with the shop's secret key, over the
//! callback without `verify_hash`, re-serialised compactly in the received key order. Rules kept:
//! the hash is checked in constant time before any field is read; the secret key travels only in
//! the query string of the invoice call, whose URL is never logged nor kept in an error.

mod ordered_json;

use std::fmt;

use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha1::Sha1;
use url::Url;

use self::ordered_json::{Json, Style};
use super::{ParseError, endpoint, http_client, redact};
use crate::domain::{Currency, Money};

/// A Plisio invoice's or callback's `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlisioStatus {
    /// Created, nothing paid yet.
    New,
    /// Seen on chain, waiting for confirmations.
    Pending,
    /// Paid.
    Completed,
    /// Paid a different amount (overpaid): treat as paid.
    Mismatch,
    /// Not paid in time.
    Expired,
    /// Cancelled.
    Cancelled,
    /// Cancelled as a duplicate of another invoice.
    CancelledDuplicate,
    /// Failed.
    Error,
    /// A value this version of Usher does not know.
    Unrecognised(String),
}

impl PlisioStatus {
    /// Reads a status as Plisio writes it (`cancelled duplicate` has a space).
    pub fn parse(text: &str) -> Self {
        match text {
            "new" => Self::New,
            "pending" => Self::Pending,
            "completed" => Self::Completed,
            "mismatch" => Self::Mismatch,
            "expired" => Self::Expired,
            "cancelled" => Self::Cancelled,
            "cancelled duplicate" => Self::CancelledDuplicate,
            "error" => Self::Error,
            other => Self::Unrecognised(other.to_owned()),
        }
    }

    /// The status as Plisio writes it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::New => "new",
            Self::Pending => "pending",
            Self::Completed => "completed",
            Self::Mismatch => "mismatch",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
            Self::CancelledDuplicate => "cancelled duplicate",
            Self::Error => "error",
            Self::Unrecognised(other) => other,
        }
    }

    /// `completed` and `mismatch` (overpaid) count as paid.
    pub fn is_paid(&self) -> bool {
        matches!(self, Self::Completed | Self::Mismatch)
    }
}

/// A verified callback. Handle it idempotently on (`txn_id`, `status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlisioCallback {
    /// Plisio's invoice id.
    pub txn_id: String,
    /// The `order_number` Usher gave the invoice.
    pub order_number: String,
    /// Where the invoice is.
    pub status: PlisioStatus,
    /// The crypto amount, as Plisio wrote it (e.g. `0.00012345`).
    pub amount: Option<String>,
    /// The crypto currency id (e.g. `BTC`, `USDT_TRX`).
    pub currency: Option<String>,
    /// The fiat currency the invoice was priced in.
    pub source_currency: Option<Currency>,
    /// The fiat price, in minor units of `source_currency`.
    pub source_amount_minor: Option<i64>,
    /// What remains to be paid, in the crypto currency (`pending_amount`).
    pub pending_amount: Option<String>,
}

/// Money that came in for an invoice that expired before it was paid in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaidInPart {
    /// What came in, in the crypto currency, written as Plisio writes amounts.
    pub paid: String,
    /// The crypto currency (`currency`, e.g. `BTC`).
    pub currency: String,
    /// Its worth in minor units of the invoice's fiat `source_currency`, rounded down: the fiat
    /// price times the share of the crypto amount that came in.
    pub worth_minor: Option<i64>,
}

impl PlisioCallback {
    /// For an `expired` invoice, what was paid before it expired: `amount` (the invoice's crypto
    /// amount) minus `pending_amount` (what remained to be paid), when that is more than nothing.
    /// Computed exactly on the decimals as written; `None` when nothing came in or the fields are
    /// not there.
    pub fn paid_before_expiry(&self) -> Option<PaidInPart> {
        if self.status != PlisioStatus::Expired {
            return None;
        }
        let amount = decimal(self.amount.as_deref()?)?;
        let pending = decimal(self.pending_amount.as_deref()?)?;
        let scale = amount.1.max(pending.1);
        let (amount, pending) = (rescale(amount, scale)?, rescale(pending, scale)?);
        let paid = amount.checked_sub(pending).filter(|p| *p > 0)?;
        let worth_minor = self.source_amount_minor.and_then(|price| {
            let worth = i128::from(price).checked_mul(paid)? / amount.max(1);
            i64::try_from(worth).ok()
        });
        Some(PaidInPart {
            paid: write_decimal(paid, scale),
            currency: self.currency.clone()?,
            worth_minor,
        })
    }
}

/// A plain decimal (`0.00012345`) as (digits, decimals); `None` for anything else.
fn decimal(text: &str) -> Option<(i128, u32)> {
    let (whole, fraction) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || fraction.len() > 18 {
        return None;
    }
    let value: i128 = format!("{whole}{fraction}").parse().ok()?;
    Some((value, u32::try_from(fraction.len()).ok()?))
}

fn rescale((value, scale): (i128, u32), to: u32) -> Option<i128> {
    value.checked_mul(10_i128.checked_pow(to - scale)?)
}

fn write_decimal(value: i128, scale: u32) -> String {
    let digits = format!(
        "{value:0>width$}",
        width = usize::try_from(scale).unwrap_or(0) + 1
    );
    let split = digits.len() - usize::try_from(scale).unwrap_or(0);
    if scale == 0 {
        digits
    } else {
        format!("{}.{}", &digits[..split], &digits[split..])
    }
}

/// Why a callback was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// The configured secret key is empty: nothing can be verified.
    #[error("no Plisio secret key is configured")]
    NoSecret,
    /// The body is not a JSON object (form-encoded callbacks are not accepted: set `json=true`).
    #[error("the callback body is not a JSON object")]
    NotJson,
    /// No `verify_hash` string in the body.
    #[error("the callback has no verify_hash")]
    MissingHash,
    /// `verify_hash` matches neither serialisation of the body.
    #[error("the callback's verify_hash does not match")]
    HashMismatch,
    /// The hash matched but a field Usher needs is missing or unreadable.
    #[error("the verified callback is unusable: {0}")]
    Parse(#[from] ParseError),
}

/// Verifies a JSON callback and reads it.
///
/// The hash is recomputed over the body without `verify_hash`, serialised compactly in the
/// received key order. Plisio's two official samples serialise differently, so a match against
/// either is accepted: the Python SDK uses `json.dumps(obj, separators=(',', ':'))`, which escapes
/// every non-ASCII character (`é` → `\u00e9`, `ensure_ascii`), and the Node sample uses
/// `JSON.stringify`, which leaves UTF-8 as is. For ASCII-only callbacks the two are identical.
pub fn verify_callback(raw_json: &[u8], secret_key: &str) -> Result<PlisioCallback, CallbackError> {
    if secret_key.trim().is_empty() {
        return Err(CallbackError::NoSecret);
    }
    let Ok(Json::Object(mut entries)) = serde_json::from_slice::<Json>(raw_json) else {
        return Err(CallbackError::NotJson);
    };
    let position = entries
        .iter()
        .position(|(key, _)| key == "verify_hash")
        .ok_or(CallbackError::MissingHash)?;
    let Json::String(hash) = entries.remove(position).1 else {
        return Err(CallbackError::MissingHash);
    };
    let hash = hex::decode(hash).map_err(|_| CallbackError::HashMismatch)?;
    let callback = Json::Object(entries);
    let python = callback.to_compact(Style::Python);
    let javascript = callback.to_compact(Style::JavaScript);
    let matches = |serialised: &str| {
        hmac_sha1(secret_key, serialised)
            .verify_slice(&hash)
            .is_ok()
    };
    // Both are always computed and compared, so timing does not tell which style matched.
    let (by_python, by_javascript) = (matches(&python), matches(&javascript));
    if !(by_python || by_javascript) {
        return Err(CallbackError::HashMismatch);
    }
    read_callback(&callback).map_err(CallbackError::Parse)
}

fn read_callback(callback: &Json) -> Result<PlisioCallback, ParseError> {
    let text = |key: &'static str| callback.get(key).and_then(Json::text);
    let required =
        |key: &'static str, pointer: &'static str| text(key).ok_or(ParseError::Field(pointer));
    let source_currency = text("source_currency")
        .map(|code| {
            Currency::parse(&code).map_err(|e| ParseError::Invalid {
                field: "/source_currency",
                reason: e.to_string(),
            })
        })
        .transpose()?;
    let source_amount_minor = match (text("source_amount"), source_currency) {
        (Some(amount), Some(currency)) => Some(
            Money::parse(&amount, currency)
                .map_err(|e| ParseError::Invalid {
                    field: "/source_amount",
                    reason: e.to_string(),
                })?
                .minor(),
        ),
        _ => None,
    };
    Ok(PlisioCallback {
        txn_id: required("txn_id", "/txn_id")?,
        order_number: required("order_number", "/order_number")?,
        status: PlisioStatus::parse(&required("status", "/status")?),
        amount: text("amount"),
        currency: text("currency"),
        source_currency,
        source_amount_minor,
        pending_amount: text("pending_amount"),
    })
}

/// A callback body signed as the official Python SDK checks it: `fields` in order (keys
/// distinct), then `verify_hash`. For tests and the fake; Usher never signs callbacks in production.
pub fn sign_callback(fields: &[(&str, Value)], secret_key: &str) -> Vec<u8> {
    let mut entries: Vec<(String, Json)> = fields
        .iter()
        .map(|(key, value)| ((*key).to_owned(), Json::from(value)))
        .collect();
    let serialised = Json::Object(entries.clone()).to_compact(Style::Python);
    let hash = hex::encode(hmac_sha1(secret_key, &serialised).finalize().into_bytes());
    entries.push(("verify_hash".into(), Json::String(hash)));
    // Python-style escapes in the body too, so the SDK re-reads exactly what was hashed.
    Json::Object(entries).to_compact(Style::Python).into_bytes()
}

fn hmac_sha1(secret_key: &str, message: &str) -> Hmac<Sha1> {
    let mut mac =
        Hmac::<Sha1>::new_from_slice(secret_key.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(message.as_bytes());
    mac
}

/// A failed call to the Plisio API.
#[derive(Debug, thiserror::Error)]
pub enum PlisioError {
    /// 401 or 403: the secret key is wrong or the shop is not allowed. Fix the configuration.
    #[error("Plisio refused the secret key ({status}): {message}")]
    Unauthorized {
        /// The HTTP status.
        status: u16,
        /// Plisio's message.
        message: String,
    },
    /// 429 or 5xx: retry later (the same `order_number` is refused once an invoice exists).
    #[error("Plisio is busy or failing ({status}); retry later")]
    Transient {
        /// The HTTP status.
        status: u16,
    },
    /// The network failed or timed out: retry later.
    #[error("could not reach Plisio")]
    Transport(#[source] reqwest::Error),
    /// Plisio refused the invoice (a bad field, a duplicate `order_number`…).
    #[error("Plisio refused the invoice ({status}): {message}")]
    Refused {
        /// The HTTP status (200 when Plisio answered `"status":"error"` with a 200).
        status: u16,
        /// Plisio's message, from `data.message` or a top-level `message`.
        message: String,
    },
    /// A success response that did not have the expected shape.
    #[error("unexpected response from Plisio: {0}")]
    Decode(String),
    /// The client or the request could not be built.
    #[error("invalid Plisio request: {0}")]
    Invalid(String),
}

impl PlisioError {
    /// Whether the same request may succeed later.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. } | Self::Transport(_))
    }
}

/// An invoice to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceRequest {
    /// Usher's order id; unique per shop (Plisio refuses a second invoice with it).
    pub order_number: String,
    /// What is bought, shown on the invoice.
    pub order_name: String,
    /// The fiat price: sent as `source_currency` and `source_amount` (a decimal string).
    pub source: Money,
    /// Where Plisio posts callbacks; `json=true` is added so they come as signed JSON.
    pub callback_url: Url,
    /// Prefills the buyer's email.
    pub email: Option<String>,
    /// Minutes before the invoice expires.
    pub expire_min: Option<u32>,
}

/// A created invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlisioInvoice {
    /// Plisio's invoice id.
    pub txn_id: String,
    /// The payment page: send the buyer there.
    pub invoice_url: Url,
}

/// A client of the Plisio API.
#[derive(Clone)]
pub struct PlisioClient {
    http: reqwest::Client,
    base: Url,
    api_key: SecretString,
}

impl fmt::Debug for PlisioClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlisioClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl PlisioClient {
    /// A client of the Plisio API at `base_url` (`https://api.plisio.net` in production). The
    /// `api_key` is the shop's secret key, the same one that signs callbacks.
    pub fn new(base_url: Url, api_key: SecretString) -> Result<Self, PlisioError> {
        Ok(Self {
            http: http_client().map_err(PlisioError::Invalid)?,
            base: base_url,
            api_key,
        })
    }

    /// `GET /api/v1/invoices/new`: an invoice priced in fiat, paid in the buyer's choice of crypto.
    pub async fn create_invoice(
        &self,
        request: &InvoiceRequest,
    ) -> Result<PlisioInvoice, PlisioError> {
        let amount = request.source.to_string();
        let (source_amount, source_currency) = amount
            .split_once(' ')
            .expect("money displays as `<amount> <currency>`");
        let mut callback_url = request.callback_url.clone();
        if !callback_url
            .query_pairs()
            .any(|(key, value)| key == "json" && value == "true")
        {
            callback_url.query_pairs_mut().append_pair("json", "true");
        }
        let mut url = endpoint(&self.base, "api/v1/invoices/new");
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("order_number", &request.order_number)
                .append_pair("order_name", &request.order_name)
                .append_pair("source_currency", source_currency)
                .append_pair("source_amount", source_amount)
                .append_pair("callback_url", callback_url.as_str());
            if let Some(email) = &request.email {
                query.append_pair("email", email);
            }
            if let Some(minutes) = request.expire_min {
                query.append_pair("expire_min", &minutes.to_string());
            }
            query.append_pair("api_key", self.api_key.expose_secret());
        }
        // The URL carries the key: it goes to reqwest and nowhere else, and errors drop it.
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| PlisioError::Transport(e.without_url()))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| PlisioError::Transport(e.without_url()))?;
        tracing::debug!(
            endpoint = "GET /api/v1/invoices/new",
            status = status.as_u16(),
            "plisio call"
        );
        let reply: Value = serde_json::from_slice(&body).unwrap_or_default();
        let succeeded = reply.get("status").and_then(Value::as_str) == Some("success");
        if !status.is_success() || !succeeded {
            return Err(self.error(status, &reply));
        }
        let field = |name: &str| {
            reply
                .pointer(&format!("/data/{name}"))
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
        };
        let txn_id = field("txn_id")
            .ok_or_else(|| PlisioError::Decode("the invoice has no txn_id".into()))?;
        let invoice_url = field("invoice_url")
            .and_then(|u| Url::parse(u).ok())
            .ok_or_else(|| PlisioError::Decode("the invoice has no invoice_url".into()))?;
        Ok(PlisioInvoice {
            txn_id: txn_id.to_owned(),
            invoice_url,
        })
    }

    /// `GET /api/v1/currencies`: the cheapest call that needs the key; `Ok` when Plisio accepts
    /// it. Used by `usher doctor`.
    pub async fn check_key(&self) -> Result<(), PlisioError> {
        let mut url = endpoint(&self.base, "api/v1/currencies");
        url.query_pairs_mut()
            .append_pair("api_key", self.api_key.expose_secret());
        // The URL carries the key: it goes to reqwest and nowhere else, and errors drop it.
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| PlisioError::Transport(e.without_url()))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| PlisioError::Transport(e.without_url()))?;
        tracing::debug!(
            endpoint = "GET /api/v1/currencies",
            status = status.as_u16(),
            "plisio call"
        );
        let reply: Value = serde_json::from_slice(&body).unwrap_or_default();
        if status.is_success() && reply.get("status").and_then(Value::as_str) == Some("success") {
            Ok(())
        } else {
            Err(self.error(status, &reply))
        }
    }

    fn error(&self, status: StatusCode, reply: &Value) -> PlisioError {
        let message = reply
            .pointer("/data/message")
            .or_else(|| reply.get("message"))
            .and_then(Value::as_str)
            .map(|m| redact(m, self.api_key.expose_secret()))
            .unwrap_or_default();
        match status.as_u16() {
            code @ (401 | 403) => PlisioError::Unauthorized {
                status: code,
                message,
            },
            code @ (429 | 500..=599) => PlisioError::Transient { status: code },
            code => PlisioError::Refused {
                status: code,
                message,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SECRET: &str = "plisio-secret-key";

    fn fields() -> Vec<(&'static str, Value)> {
        vec![
            ("txn_id", json!("6541e8a3f1a2b3c4d5e6f708")),
            ("ipn_type", json!("invoice")),
            ("merchant", json!("Usher")),
            ("amount", json!("0.00012345")),
            ("currency", json!("BTC")),
            ("order_number", json!("ord-42")),
            ("order_name", json!("Plex access, 1 month")),
            ("confirmations", json!(3)),
            ("status", json!("completed")),
            ("source_currency", json!("USD")),
            ("source_amount", json!("10.00")),
            ("source_rate", json!("81004.12")),
            ("comment", json!("")),
        ]
    }

    #[test]
    fn a_signed_callback_verifies_and_reads() {
        let body = sign_callback(&fields(), SECRET);
        let callback = verify_callback(&body, SECRET).unwrap();
        assert_eq!(
            callback,
            PlisioCallback {
                txn_id: "6541e8a3f1a2b3c4d5e6f708".into(),
                order_number: "ord-42".into(),
                status: PlisioStatus::Completed,
                amount: Some("0.00012345".into()),
                currency: Some("BTC".into()),
                source_currency: Some(Currency::parse("USD").unwrap()),
                source_amount_minor: Some(1000),
                pending_amount: None,
            }
        );
        assert!(callback.status.is_paid());
        assert_eq!(callback.paid_before_expiry(), None);
    }

    #[test]
    fn an_expired_invoice_paid_in_part_tells_what_came_in_and_its_worth() {
        let mut fields = fields();
        fields.retain(|(k, _)| *k != "status");
        fields.push(("status", json!("expired")));
        fields.push(("pending_amount", json!("0.00004115")));
        let callback = verify_callback(&sign_callback(&fields, SECRET), SECRET).unwrap();
        assert_eq!(
            callback.paid_before_expiry(),
            Some(PaidInPart {
                paid: "0.00008230".into(),
                currency: "BTC".into(),
                // 10.00 USD × 8230 / 12345 = 6.666… → 6.66.
                worth_minor: Some(666),
            })
        );
        // Nothing came in: nothing to record.
        fields.retain(|(k, _)| *k != "pending_amount");
        fields.push(("pending_amount", json!("0.00012345")));
        let unpaid = verify_callback(&sign_callback(&fields, SECRET), SECRET).unwrap();
        assert_eq!(unpaid.paid_before_expiry(), None);
        assert_eq!(decimal("1.5e3"), None);
        assert_eq!(write_decimal(5, 3), "0.005");
        assert_eq!(write_decimal(12, 0), "12");
    }

    #[test]
    fn the_hash_covers_every_field_and_the_key_order() {
        let body = String::from_utf8(sign_callback(&fields(), SECRET)).unwrap();
        let tampered = body.replace("ord-42", "ord-43");
        assert_eq!(
            verify_callback(tampered.as_bytes(), SECRET),
            Err(CallbackError::HashMismatch)
        );
        let mut reordered = fields();
        reordered.swap(0, 1);
        let reordered = String::from_utf8(sign_callback(&reordered, SECRET)).unwrap();
        let hash = |b: &str| b.rsplit_once("\"verify_hash\":").unwrap().1.to_owned();
        let swapped = body.replace(&hash(&body), &hash(&reordered));
        assert_eq!(
            verify_callback(swapped.as_bytes(), SECRET),
            Err(CallbackError::HashMismatch)
        );
        assert_eq!(
            verify_callback(body.as_bytes(), "other-key"),
            Err(CallbackError::HashMismatch)
        );
    }

    #[test]
    fn a_javascript_style_hash_over_non_ascii_is_accepted_too() {
        let mut fields = fields();
        fields[6].1 = json!("Café ☕");
        let entries: Vec<(String, Json)> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Json::from(v)))
            .collect();
        let javascript = Json::Object(entries.clone()).to_compact(Style::JavaScript);
        let hash = hex::encode(hmac_sha1(SECRET, &javascript).finalize().into_bytes());
        let mut signed = entries;
        signed.push(("verify_hash".into(), Json::String(hash)));
        let body = Json::Object(signed).to_compact(Style::JavaScript);
        let callback = verify_callback(body.as_bytes(), SECRET).unwrap();
        assert_eq!(callback.order_number, "ord-42");
        let python_signed = sign_callback(&fields, SECRET);
        assert!(verify_callback(&python_signed, SECRET).is_ok());
    }

    #[test]
    fn bodies_without_a_usable_hash_are_refused() {
        assert_eq!(
            verify_callback(b"txn_id=1&verify_hash=ab", SECRET),
            Err(CallbackError::NotJson)
        );
        assert_eq!(
            verify_callback(br#"{"txn_id":"1"}"#, SECRET),
            Err(CallbackError::MissingHash)
        );
        assert_eq!(
            verify_callback(br#"{"txn_id":"1","verify_hash":7}"#, SECRET),
            Err(CallbackError::MissingHash)
        );
        assert_eq!(
            verify_callback(br#"{"txn_id":"1","verify_hash":"zz"}"#, SECRET),
            Err(CallbackError::HashMismatch)
        );
        assert_eq!(
            verify_callback(&sign_callback(&fields(), SECRET), ""),
            Err(CallbackError::NoSecret)
        );
    }

    #[test]
    fn a_verified_callback_without_an_order_number_is_unusable() {
        let body = sign_callback(&[("txn_id", json!("t1")), ("status", json!("new"))], SECRET);
        assert_eq!(
            verify_callback(&body, SECRET),
            Err(CallbackError::Parse(ParseError::Field("/order_number")))
        );
    }

    #[test]
    fn api_errors_read_the_message_where_either_sdk_finds_it() {
        let client = PlisioClient::new(
            Url::parse("https://api.plisio.net").unwrap(),
            SecretString::from(SECRET.to_owned()),
        )
        .unwrap();
        let nested = json!({"status": "error", "data": {"name": "Unprocessable entity",
            "message": "Invoice with this order_number already exists.", "code": 0}});
        assert!(matches!(
            client.error(StatusCode::UNPROCESSABLE_ENTITY, &nested),
            PlisioError::Refused { status: 422, ref message } if message.contains("order_number")
        ));
        let top = json!({"status": "error", "message": "bad key plisio-secret-key"});
        match client.error(StatusCode::UNAUTHORIZED, &top) {
            PlisioError::Unauthorized { status, message } => {
                assert_eq!(status, 401);
                assert_eq!(message, "bad key [redacted]");
            }
            other => panic!("expected an auth error, got {other:?}"),
        }
        assert!(
            client
                .error(StatusCode::OK, &nested)
                .to_string()
                .contains("(200)")
        );
        assert!(
            client
                .error(StatusCode::SERVICE_UNAVAILABLE, &Value::Null)
                .is_transient()
        );
        assert!(!format!("{client:?}").contains(SECRET));
    }

    #[test]
    fn statuses_read_and_write_as_plisio_spells_them() {
        for text in [
            "new",
            "pending",
            "completed",
            "mismatch",
            "expired",
            "cancelled",
            "cancelled duplicate",
            "error",
            "pending internal",
        ] {
            assert_eq!(PlisioStatus::parse(text).as_str(), text);
        }
        assert_eq!(
            PlisioStatus::parse("cancelled duplicate"),
            PlisioStatus::CancelledDuplicate
        );
        assert!(PlisioStatus::Mismatch.is_paid());
        assert!(!PlisioStatus::Pending.is_paid());
    }
}
