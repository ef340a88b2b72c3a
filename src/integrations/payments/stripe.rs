//! Stripe: webhook signatures, the events Usher acts on, and Checkout Sessions.
//!
//! Owns the `Stripe-Signature` scheme (HMAC-SHA256 over `"{t}.{raw body}"`), the reading of event
//! payloads in both API shapes (before and since `2025-03-31.basil`, which moved the invoice's
//! subscription under `parent.subscription_details` and the subscription's period onto its items)
//! into [`StripeEventKind`], and `POST /v1/checkout/sessions`. Rules kept: a signature is checked
//! on the raw bytes, before anything is parsed, in constant time and within
//! [`SIGNATURE_TOLERANCE_SECS`] both ways; the secret key and the webhook secret appear in no log
//! line, `Debug` output or error.

use std::fmt;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::Sha256;
use url::Url;

use super::json::{
    currency, flag, id, int, object, required_currency, required_int, required_string,
    required_unix_time, string, unix_time,
};
use super::{ParseError, endpoint, http_client, redact};
use crate::domain::Currency;

/// The metadata key carrying Usher's own reference on sessions, subscriptions and invoices.
pub const USHER_REF: &str = "usher_ref";

/// The API version invoice payments are asked with (the first that has them).
pub const INVOICE_PAYMENTS_API_VERSION: &str = "2025-03-31.basil";

/// How far a signature's timestamp may be from now, in seconds, in the past or the future.
pub const SIGNATURE_TOLERANCE_SECS: u64 = 300;

/// Why a `Stripe-Signature` header was refused. No message carries the secret or the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The configured webhook secret is empty: nothing can be verified.
    #[error("no Stripe webhook secret is configured")]
    NoSecret,
    /// The header has no `t=<unix seconds>`.
    #[error("unable to extract a timestamp and signatures from the Stripe-Signature header")]
    MalformedHeader,
    /// The header has a timestamp but no `v1=` signature.
    #[error("no signatures found with the expected scheme v1")]
    NoV1Signature,
    /// No `v1` signature matches the payload and the secret.
    #[error("no v1 signature matches the payload")]
    NoMatch,
    /// The signature is valid but its timestamp is too far from now (a replay, or a bad clock).
    #[error("the signature timestamp is {skew_secs} s from now, outside the tolerance")]
    OutsideTolerance {
        /// Now minus the signed timestamp: positive when stale, negative when in the future.
        skew_secs: i64,
    },
}

/// Checks a `Stripe-Signature` header against the raw request body.
///
/// Accepts when any `v1` signature matches (several appear while a secret is rolled) and the
/// signed timestamp is within [`SIGNATURE_TOLERANCE_SECS`] of `now`, before or after.
pub fn verify_signature(
    payload: &[u8],
    header: &str,
    secret: &str,
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    if secret.trim().is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in header.split(',') {
        match item.split_once('=') {
            Some(("t", value)) if timestamp.is_none() => {
                timestamp = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| SignatureError::MalformedHeader)?,
                );
            }
            Some(("v1", value)) => signatures.push(value),
            _ => {}
        }
    }
    let t = timestamp.ok_or(SignatureError::MalformedHeader)?;
    if signatures.is_empty() {
        return Err(SignatureError::NoV1Signature);
    }
    let mac = signed_payload_mac(payload, secret, t);
    let matches = signatures.iter().any(|signature| {
        hex::decode(signature).is_ok_and(|bytes| mac.clone().verify_slice(&bytes).is_ok())
    });
    if !matches {
        return Err(SignatureError::NoMatch);
    }
    if now.timestamp().abs_diff(t) > SIGNATURE_TOLERANCE_SECS {
        return Err(SignatureError::OutsideTolerance {
            skew_secs: now.timestamp().saturating_sub(t),
        });
    }
    Ok(())
}

/// A `Stripe-Signature` header for `payload` signed at unix time `t`, as Stripe sends it
/// (`t=…,v1=…`). For tests and the fake; Usher never signs in production.
pub fn sign_header(payload: &[u8], secret: &str, t: i64) -> String {
    let signature = signed_payload_mac(payload, secret, t)
        .finalize()
        .into_bytes();
    format!("t={t},v1={}", hex::encode(signature))
}

fn signed_payload_mac(payload: &[u8], secret: &str, t: i64) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac
}

/// A Stripe event, read from a verified webhook body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeEvent {
    /// `evt_…`: deliveries repeat, so this is the deduplication key.
    pub id: String,
    /// The event type as sent, e.g. `invoice.paid`.
    pub event_type: String,
    /// When Stripe created the event (deliveries arrive out of order).
    pub created: DateTime<Utc>,
    /// False for test-mode events.
    pub livemode: bool,
    /// What Usher reads from the event's object.
    pub kind: StripeEventKind,
}

/// The events Usher acts on, each with the fields it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StripeEventKind {
    /// `checkout.session.completed`, and `checkout.session.async_payment_succeeded` (a delayed
    /// payment method settled): read `payment_status` to know whether it is paid.
    CheckoutCompleted(StripeCheckout),
    /// `invoice.paid`, and `invoice.payment_succeeded` (the same payment under the name many guides
    /// subscribe to; Stripe sends both for one invoice, so the payment is keyed by the invoice).
    InvoicePaid(StripeInvoice),
    /// `invoice.payment_failed`: warn, do not revoke (Stripe retries).
    InvoicePaymentFailed(StripeInvoice),
    /// `customer.subscription.updated`.
    SubscriptionUpdated(StripeSubscription),
    /// `customer.subscription.deleted`: the subscription ended.
    SubscriptionDeleted(StripeSubscription),
    /// `charge.refunded`.
    ChargeRefunded(StripeCharge),
    /// Any other event type: acknowledge and ignore.
    Other,
}

/// A completed Checkout Session (`data.object` of `checkout.session.completed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeCheckout {
    /// `cs_…`.
    pub session_id: String,
    /// The `client_reference_id` Usher set at creation.
    pub client_reference_id: Option<String>,
    /// `metadata["usher_ref"]`.
    pub metadata_ref: Option<String>,
    /// `cus_…`.
    pub customer: Option<String>,
    /// `sub_…` (subscription mode only).
    pub subscription: Option<String>,
    /// `payment`, `subscription` or `setup`.
    pub mode: CheckoutMode,
    /// Whether the money is in.
    pub payment_status: CheckoutPaymentStatus,
    /// `customer_details.email`, else `customer_email`.
    pub customer_email: Option<String>,
    /// Total in minor units.
    pub amount_total: Option<i64>,
    /// Upper-case ISO code.
    pub currency: Option<Currency>,
    /// `pi_…` of a payment-mode session: what a refund of it names.
    pub payment_intent: Option<String>,
}

/// A Checkout Session's `mode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckoutMode {
    /// One-off payment.
    Payment,
    /// Recurring subscription.
    Subscription,
    /// Saves a payment method only.
    Setup,
    /// A value this version of Usher does not know.
    Unrecognised(String),
}

/// A Checkout Session's `payment_status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckoutPaymentStatus {
    /// The payment is in.
    Paid,
    /// Not yet (delayed payment methods): wait for `async_payment_succeeded`.
    Unpaid,
    /// Nothing to pay (a free trial or a 100% coupon).
    NoPaymentRequired,
    /// A value this version of Usher does not know.
    Unrecognised(String),
}

/// An invoice (`data.object` of `invoice.paid` and `invoice.payment_failed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeInvoice {
    /// `in_…`.
    pub invoice_id: String,
    /// `cus_…`.
    pub customer: Option<String>,
    /// `sub_…`: `parent.subscription_details.subscription` (basil and later) or `subscription`
    /// (older API versions).
    pub subscription: Option<String>,
    /// `usher_ref` from the subscription's metadata snapshot:
    /// `parent.subscription_details.metadata` or (older) `subscription_details.metadata`.
    pub metadata_ref: Option<String>,
    /// Paid, in minor units (0 on a failed payment).
    pub amount_paid: i64,
    /// Due, in minor units.
    pub amount_due: i64,
    /// Upper-case ISO code.
    pub currency: Currency,
    /// The latest `lines.data[].period.end`: the end of the paid period.
    pub period_end: Option<DateTime<Utc>>,
    /// `subscription_create`, `subscription_cycle`, `manual`…
    pub billing_reason: Option<String>,
    /// `customer_email`.
    pub customer_email: Option<String>,
    /// When Stripe created the invoice: the order of a subscription's payments.
    pub created: Option<DateTime<Utc>>,
    /// `pi_…` that paid it: `payment_intent` (older API versions), or the first payment intent of
    /// `payments` when the invoice carries its payments (basil and later, when expanded).
    pub payment_intent: Option<String>,
}

/// A subscription (`data.object` of `customer.subscription.updated` and `.deleted`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeSubscription {
    /// `sub_…`.
    pub id: String,
    /// `cus_…`.
    pub customer: Option<String>,
    /// The subscription's status.
    pub status: SubscriptionStatus,
    /// Set when the subscriber cancelled and access runs to the period end.
    pub cancel_at_period_end: bool,
    /// Set when the subscription ends on a date (it will not renew past it).
    pub cancel_at: Option<DateTime<Utc>>,
    /// `metadata["usher_ref"]`.
    pub metadata_ref: Option<String>,
    /// `current_period_end` (older API versions) or the latest `items.data[].current_period_end`.
    pub current_period_end: Option<DateTime<Utc>>,
    /// When the subscription ended (set on `.deleted`).
    pub ended_at: Option<DateTime<Utc>>,
    /// When it was cancelled.
    pub canceled_at: Option<DateTime<Utc>>,
}

/// A subscription's `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionStatus {
    /// First payment not made yet.
    Incomplete,
    /// First payment never made; final.
    IncompleteExpired,
    /// In a trial.
    Trialing,
    /// Paid up.
    Active,
    /// A renewal failed; Stripe is retrying.
    PastDue,
    /// Ended; final.
    Canceled,
    /// Retries exhausted, left open.
    Unpaid,
    /// Paused (trial ended without a payment method).
    Paused,
    /// A value this version of Usher does not know.
    Unrecognised(String),
}

impl StripeInvoice {
    /// Whether it is its subscription's first invoice (`billing_reason` `subscription_create`):
    /// the payment of a checkout that just started the subscription.
    pub fn opens_subscription(&self) -> bool {
        self.billing_reason.as_deref() == Some("subscription_create")
    }
}

impl StripeSubscription {
    /// Whether Stripe will charge it again by itself: live, and not set to end (at the period end
    /// or on a date).
    pub fn renewing(&self) -> bool {
        matches!(
            self.status,
            SubscriptionStatus::Active | SubscriptionStatus::Trialing | SubscriptionStatus::PastDue
        ) && !self.cancel_at_period_end
            && self.cancel_at.is_none()
    }

    /// Whether it is over for good (nothing Stripe sends later revives it).
    pub fn ended(&self) -> bool {
        matches!(
            self.status,
            SubscriptionStatus::Canceled | SubscriptionStatus::IncompleteExpired
        )
    }
}

impl SubscriptionStatus {
    /// Stripe's own word for the status (what an unrecognised one said).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Incomplete => "incomplete",
            Self::IncompleteExpired => "incomplete_expired",
            Self::Trialing => "trialing",
            Self::Active => "active",
            Self::PastDue => "past_due",
            Self::Canceled => "canceled",
            Self::Unpaid => "unpaid",
            Self::Paused => "paused",
            Self::Unrecognised(other) => other,
        }
    }
}

/// A refunded charge (`data.object` of `charge.refunded`). Map it by `customer`: since basil a
/// charge no longer names its invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeCharge {
    /// `ch_…`.
    pub charge_id: String,
    /// `cus_…`.
    pub customer: Option<String>,
    /// `pi_…`.
    pub payment_intent: Option<String>,
    /// `in_…`, older API versions only.
    pub invoice: Option<String>,
    /// Refunded so far, in minor units.
    pub amount_refunded: i64,
    /// Charged, in minor units.
    pub amount: i64,
    /// True once fully refunded.
    pub refunded: bool,
    /// Upper-case ISO code.
    pub currency: Currency,
}

/// Reads a webhook body (verify it first with [`verify_signature`]).
pub fn parse_event(body: &[u8]) -> Result<StripeEvent, ParseError> {
    let event = object(body)?;
    let event_type = required_string(&event, "/type")?;
    let data = event
        .pointer("/data/object")
        .filter(|o| o.is_object())
        .ok_or(ParseError::Field("/data/object"))?;
    let kind = match event_type.as_str() {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            StripeEventKind::CheckoutCompleted(checkout(data)?)
        }
        "invoice.paid" | "invoice.payment_succeeded" => {
            StripeEventKind::InvoicePaid(invoice(data)?)
        }
        "invoice.payment_failed" => StripeEventKind::InvoicePaymentFailed(invoice(data)?),
        "customer.subscription.updated" => {
            StripeEventKind::SubscriptionUpdated(subscription(data)?)
        }
        "customer.subscription.deleted" => {
            StripeEventKind::SubscriptionDeleted(subscription(data)?)
        }
        "charge.refunded" => StripeEventKind::ChargeRefunded(charge(data)?),
        _ => StripeEventKind::Other,
    };
    Ok(StripeEvent {
        id: required_string(&event, "/id")?,
        event_type,
        created: required_unix_time(&event, "/created")?,
        livemode: flag(&event, "/livemode")?,
        kind,
    })
}

fn checkout(session: &Value) -> Result<StripeCheckout, ParseError> {
    let mode = match required_string(session, "/mode")?.as_str() {
        "payment" => CheckoutMode::Payment,
        "subscription" => CheckoutMode::Subscription,
        "setup" => CheckoutMode::Setup,
        other => CheckoutMode::Unrecognised(other.to_owned()),
    };
    let payment_status = match required_string(session, "/payment_status")?.as_str() {
        "paid" => CheckoutPaymentStatus::Paid,
        "unpaid" => CheckoutPaymentStatus::Unpaid,
        "no_payment_required" => CheckoutPaymentStatus::NoPaymentRequired,
        other => CheckoutPaymentStatus::Unrecognised(other.to_owned()),
    };
    Ok(StripeCheckout {
        session_id: required_string(session, "/id")?,
        client_reference_id: string(session, "/client_reference_id")?,
        metadata_ref: string(session, "/metadata/usher_ref")?,
        customer: id(session, "/customer")?,
        subscription: id(session, "/subscription")?,
        mode,
        payment_status,
        customer_email: match string(session, "/customer_details/email")? {
            Some(email) => Some(email),
            None => string(session, "/customer_email")?,
        },
        amount_total: int(session, "/amount_total")?,
        currency: currency(session, "/currency")?,
        payment_intent: id(session, "/payment_intent")?,
    })
}

fn invoice(invoice: &Value) -> Result<StripeInvoice, ParseError> {
    let subscription = match id(invoice, "/parent/subscription_details/subscription")? {
        Some(subscription) => Some(subscription),
        None => id(invoice, "/subscription")?,
    };
    let metadata_ref = match string(invoice, "/parent/subscription_details/metadata/usher_ref")? {
        Some(reference) => Some(reference),
        None => string(invoice, "/subscription_details/metadata/usher_ref")?,
    };
    let mut period_end = None;
    if let Some(lines) = invoice.pointer("/lines/data") {
        let lines = lines.as_array().ok_or(ParseError::Field("/lines/data"))?;
        for line in lines {
            period_end = period_end.max(unix_time(line, "/period/end")?);
        }
    }
    Ok(StripeInvoice {
        invoice_id: required_string(invoice, "/id")?,
        customer: id(invoice, "/customer")?,
        subscription,
        metadata_ref,
        amount_paid: required_int(invoice, "/amount_paid")?,
        amount_due: required_int(invoice, "/amount_due")?,
        currency: required_currency(invoice, "/currency")?,
        period_end,
        billing_reason: string(invoice, "/billing_reason")?,
        customer_email: string(invoice, "/customer_email")?,
        created: unix_time(invoice, "/created")?,
        payment_intent: match id(invoice, "/payment_intent")? {
            Some(intent) => Some(intent),
            None => id(invoice, "/payments/data/0/payment/payment_intent")?,
        },
    })
}

fn subscription(subscription: &Value) -> Result<StripeSubscription, ParseError> {
    let status = match required_string(subscription, "/status")?.as_str() {
        "incomplete" => SubscriptionStatus::Incomplete,
        "incomplete_expired" => SubscriptionStatus::IncompleteExpired,
        "trialing" => SubscriptionStatus::Trialing,
        "active" => SubscriptionStatus::Active,
        "past_due" => SubscriptionStatus::PastDue,
        "canceled" => SubscriptionStatus::Canceled,
        "unpaid" => SubscriptionStatus::Unpaid,
        "paused" => SubscriptionStatus::Paused,
        other => SubscriptionStatus::Unrecognised(other.to_owned()),
    };
    let mut current_period_end = unix_time(subscription, "/current_period_end")?;
    if let Some(items) = subscription.pointer("/items/data") {
        let items = items.as_array().ok_or(ParseError::Field("/items/data"))?;
        for item in items {
            current_period_end = current_period_end.max(unix_time(item, "/current_period_end")?);
        }
    }
    Ok(StripeSubscription {
        id: required_string(subscription, "/id")?,
        customer: id(subscription, "/customer")?,
        status,
        cancel_at_period_end: flag(subscription, "/cancel_at_period_end")?,
        cancel_at: unix_time(subscription, "/cancel_at")?,
        metadata_ref: string(subscription, "/metadata/usher_ref")?,
        current_period_end,
        ended_at: unix_time(subscription, "/ended_at")?,
        canceled_at: unix_time(subscription, "/canceled_at")?,
    })
}

fn charge(charge: &Value) -> Result<StripeCharge, ParseError> {
    Ok(StripeCharge {
        charge_id: required_string(charge, "/id")?,
        customer: id(charge, "/customer")?,
        payment_intent: id(charge, "/payment_intent")?,
        invoice: id(charge, "/invoice")?,
        amount_refunded: required_int(charge, "/amount_refunded")?,
        amount: required_int(charge, "/amount")?,
        refunded: flag(charge, "/refunded")?,
        currency: required_currency(charge, "/currency")?,
    })
}

/// A failed call to the Stripe API.
#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    /// 401: the secret key is wrong or revoked. Fix the configuration; retrying cannot help.
    #[error("Stripe refused the secret key (401)")]
    Unauthorized,
    /// 409 (a concurrent request with the same idempotency key), 429 or 5xx: retry later with the
    /// same idempotency key.
    #[error("Stripe is busy or failing ({status}); retry later")]
    Transient {
        /// The HTTP status.
        status: u16,
    },
    /// The network failed or timed out: retry later with the same idempotency key.
    #[error("could not reach Stripe")]
    Transport(#[source] reqwest::Error),
    /// Another 4xx: Stripe refused the request; retrying the same request cannot help.
    #[error(
        "Stripe refused the request ({status} {error_type}, code {code:?}, param {param:?}): {message}"
    )]
    Refused {
        /// The HTTP status.
        status: u16,
        /// `error.type`, e.g. `invalid_request_error`.
        error_type: String,
        /// `error.code`, e.g. `resource_missing`.
        code: Option<String>,
        /// `error.param`: the offending parameter.
        param: Option<String>,
        /// `error.message`, Stripe's own explanation (for logs and admins).
        message: String,
    },
    /// A success response that did not have the expected shape.
    #[error("unexpected response from Stripe: {0}")]
    Decode(String),
    /// The client or the request could not be built.
    #[error("invalid Stripe request: {0}")]
    Invalid(String),
}

impl StripeError {
    /// Whether the same request may succeed later.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. } | Self::Transport(_))
    }
}

/// What to sell in a Checkout Session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutRequest {
    /// The Stripe price (`price_…`).
    pub price_id: String,
    /// True for a recurring price: `mode=subscription`, and `usher_ref` is copied onto the
    /// subscription's metadata so every later invoice and subscription event carries it.
    pub recurring: bool,
    /// Usher's reference for this purchase, sent as `client_reference_id` and
    /// `metadata[usher_ref]`. At most 200 characters.
    pub usher_ref: String,
    /// Prefills the email on Stripe's page.
    pub customer_email: Option<String>,
    /// Where Stripe sends the buyer after paying; may contain `{CHECKOUT_SESSION_ID}`.
    pub success_url: Url,
    /// Where Stripe sends the buyer who gives up.
    pub cancel_url: Url,
    /// The `Idempotency-Key`: the same key with the same request returns the same session.
    pub idempotency_key: String,
}

/// A created Checkout Session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutSession {
    /// `cs_…`.
    pub id: String,
    /// Stripe's payment page: send the buyer there.
    pub url: Url,
}

/// A client of the Stripe API.
#[derive(Clone)]
pub struct StripeClient {
    http: reqwest::Client,
    base: Url,
    secret_key: SecretString,
}

/// A webhook endpoint configured in Stripe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeWebhookEndpoint {
    /// `we_…`.
    pub id: String,
    /// Where Stripe delivers.
    pub url: String,
    /// `status` is `enabled`.
    pub enabled: bool,
    /// A live-mode endpoint.
    pub livemode: bool,
}

impl fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl StripeClient {
    /// A client of the Stripe API at `base_url` (`https://api.stripe.com` in production).
    pub fn new(base_url: Url, secret_key: SecretString) -> Result<Self, StripeError> {
        Ok(Self {
            http: http_client().map_err(StripeError::Invalid)?,
            base: base_url,
            secret_key,
        })
    }

    /// `POST /v1/checkout/sessions`: a hosted payment page for one price.
    pub async fn create_checkout_session(
        &self,
        request: &CheckoutRequest,
    ) -> Result<CheckoutSession, StripeError> {
        let idempotency_key = HeaderValue::from_str(&request.idempotency_key).map_err(|_| {
            StripeError::Invalid("the idempotency key is not a header value".into())
        })?;
        let mode = if request.recurring {
            "subscription"
        } else {
            "payment"
        };
        let mut form: Vec<(&str, &str)> = vec![
            ("mode", mode),
            ("line_items[0][price]", &request.price_id),
            ("line_items[0][quantity]", "1"),
            ("success_url", request.success_url.as_str()),
            ("cancel_url", request.cancel_url.as_str()),
            ("client_reference_id", &request.usher_ref),
            ("metadata[usher_ref]", &request.usher_ref),
        ];
        if request.recurring {
            form.push(("subscription_data[metadata][usher_ref]", &request.usher_ref));
        }
        if let Some(email) = &request.customer_email {
            form.push(("customer_email", email));
        }
        let response = self
            .http
            .post(endpoint(&self.base, "v1/checkout/sessions"))
            .bearer_auth(self.secret_key.expose_secret())
            .header("Idempotency-Key", idempotency_key)
            .form(&form)
            .send()
            .await
            .map_err(|e| StripeError::Transport(e.without_url()))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| StripeError::Transport(e.without_url()))?;
        tracing::debug!(
            endpoint = "POST /v1/checkout/sessions",
            status = status.as_u16(),
            "stripe call"
        );
        if !status.is_success() {
            return Err(self.error(status, &body));
        }
        let session: Value = serde_json::from_slice(&body)
            .map_err(|_| StripeError::Decode("the session is not JSON".into()))?;
        let id = session
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| StripeError::Decode("the session has no id".into()))?;
        let url = session
            .get("url")
            .and_then(Value::as_str)
            .and_then(|u| Url::parse(u).ok())
            .ok_or_else(|| StripeError::Decode("the session has no url".into()))?;
        Ok(CheckoutSession {
            id: id.to_owned(),
            url,
        })
    }

    /// `GET /v1/invoice_payments?payment[type]=payment_intent&payment[payment_intent]=…`: the
    /// invoice a payment intent paid, `None` when it paid no invoice. This is how a refund is
    /// mapped since basil removed `invoice` from charges, so it is asked with that API version.
    pub async fn find_invoice_of_payment_intent(
        &self,
        payment_intent: &str,
    ) -> Result<Option<String>, StripeError> {
        let response = self
            .http
            .get(endpoint(&self.base, "v1/invoice_payments"))
            .bearer_auth(self.secret_key.expose_secret())
            .header("Stripe-Version", INVOICE_PAYMENTS_API_VERSION)
            .query(&[
                ("payment[type]", "payment_intent"),
                ("payment[payment_intent]", payment_intent),
                ("limit", "3"),
            ])
            .send()
            .await
            .map_err(|e| StripeError::Transport(e.without_url()))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| StripeError::Transport(e.without_url()))?;
        tracing::debug!(
            endpoint = "GET /v1/invoice_payments",
            status = status.as_u16(),
            "stripe call"
        );
        if !status.is_success() {
            return Err(self.error(status, &body));
        }
        let list: Value = serde_json::from_slice(&body)
            .map_err(|_| StripeError::Decode("the invoice payments are not JSON".into()))?;
        let data = list
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| StripeError::Decode("the invoice payments have no data".into()))?;
        // A payment intent pays at most one invoice; a canceled invoice payment paid nothing.
        let invoice = data
            .iter()
            .filter(|p| p.get("status").and_then(Value::as_str) != Some("canceled"))
            .find_map(|p| match p.get("invoice") {
                Some(Value::String(id)) => Some(id.clone()),
                Some(Value::Object(o)) => o.get("id").and_then(Value::as_str).map(str::to_owned),
                _ => None,
            });
        Ok(invoice)
    }

    /// Whether the key is a live-mode key: `GET /v1/balance` answers with `livemode` (a read any
    /// secret key may make; a restricted key needs Balance read). Used by `usher doctor`.
    pub async fn livemode(&self) -> Result<bool, StripeError> {
        let balance = self.get("GET /v1/balance", "v1/balance").await?;
        balance
            .get("livemode")
            .and_then(Value::as_bool)
            .ok_or_else(|| StripeError::Decode("the balance has no livemode".into()))
    }

    /// The webhook endpoints of the key's mode (`GET /v1/webhook_endpoints`, first 100): where
    /// Stripe delivers events, and whether each is enabled. Used by `usher doctor`.
    pub async fn webhook_endpoints(&self) -> Result<Vec<StripeWebhookEndpoint>, StripeError> {
        let list = self
            .get(
                "GET /v1/webhook_endpoints",
                "v1/webhook_endpoints?limit=100",
            )
            .await?;
        let data = list
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| StripeError::Decode("the endpoint list has no data".into()))?;
        data.iter()
            .map(|e| {
                let text = |name: &str| {
                    e.get(name)
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .ok_or_else(|| StripeError::Decode(format!("an endpoint has no {name}")))
                };
                Ok(StripeWebhookEndpoint {
                    id: text("id")?,
                    url: text("url")?,
                    enabled: text("status")? == "enabled",
                    livemode: e.get("livemode").and_then(Value::as_bool).unwrap_or(false),
                })
            })
            .collect()
    }

    async fn get(&self, endpoint_name: &'static str, path: &str) -> Result<Value, StripeError> {
        let response = self
            .http
            .get(endpoint(&self.base, path))
            .bearer_auth(self.secret_key.expose_secret())
            .send()
            .await
            .map_err(|e| StripeError::Transport(e.without_url()))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| StripeError::Transport(e.without_url()))?;
        tracing::debug!(
            endpoint = endpoint_name,
            status = status.as_u16(),
            "stripe call"
        );
        if !status.is_success() {
            return Err(self.error(status, &body));
        }
        serde_json::from_slice(&body)
            .map_err(|_| StripeError::Decode(format!("{endpoint_name} did not answer JSON")))
    }

    fn error(&self, status: StatusCode, body: &[u8]) -> StripeError {
        match status.as_u16() {
            401 => StripeError::Unauthorized,
            code @ (409 | 429 | 500..=599) => StripeError::Transient { status: code },
            code => {
                let error = serde_json::from_slice::<Value>(body).unwrap_or_default();
                let field = |name: &str| {
                    error
                        .pointer(&format!("/error/{name}"))
                        .and_then(Value::as_str)
                        .map(|text| redact(text, self.secret_key.expose_secret()))
                };
                StripeError::Refused {
                    status: code,
                    error_type: field("type").unwrap_or_else(|| "unknown".into()),
                    code: field("code"),
                    param: field("param"),
                    message: field("message").unwrap_or_default(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SECRET: &str = "whsec_test_secret";

    fn at(t: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(t, 0).unwrap()
    }

    #[test]
    fn a_signed_payload_verifies_within_the_tolerance_both_ways() {
        let body = br#"{"id":"evt_1"}"#;
        let header = sign_header(body, SECRET, 1_700_000_000);
        assert_eq!(
            verify_signature(body, &header, SECRET, at(1_700_000_000)),
            Ok(())
        );
        assert_eq!(
            verify_signature(body, &header, SECRET, at(1_700_000_300)),
            Ok(())
        );
        assert_eq!(
            verify_signature(body, &header, SECRET, at(1_699_999_700)),
            Ok(())
        );
        assert_eq!(
            verify_signature(body, &header, SECRET, at(1_700_000_301)),
            Err(SignatureError::OutsideTolerance { skew_secs: 301 })
        );
        assert_eq!(
            verify_signature(body, &header, SECRET, at(1_699_999_699)),
            Err(SignatureError::OutsideTolerance { skew_secs: -301 })
        );
    }

    #[test]
    fn any_v1_signature_may_match_and_other_schemes_are_ignored() {
        let body = b"{}";
        let good = sign_header(body, SECRET, 10);
        let good_v1 = good.split_once(",v1=").unwrap().1;
        let header = format!("t=10,v0=abc,v1={},v1={good_v1},extra", "00".repeat(32));
        assert_eq!(verify_signature(body, &header, SECRET, at(10)), Ok(()));
    }

    #[test]
    fn each_failure_has_its_own_error() {
        let body = b"{}";
        let header = sign_header(body, SECRET, 10);
        let now = at(10);
        assert_eq!(
            verify_signature(body, "v1=abc", SECRET, now),
            Err(SignatureError::MalformedHeader)
        );
        assert_eq!(
            verify_signature(body, "t=soon,v1=abc", SECRET, now),
            Err(SignatureError::MalformedHeader)
        );
        assert_eq!(
            verify_signature(body, "t=10,v0=abc", SECRET, now),
            Err(SignatureError::NoV1Signature)
        );
        assert_eq!(
            verify_signature(b"{ }", &header, SECRET, now),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify_signature(body, &header, "whsec_other", now),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify_signature(body, "t=10,v1=not-hex", SECRET, now),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify_signature(body, &header, " ", now),
            Err(SignatureError::NoSecret)
        );
    }

    #[test]
    fn extreme_timestamps_are_refused_without_overflow() {
        let body = b"{}";
        for t in [i64::MIN, i64::MAX] {
            let header = sign_header(body, SECRET, t);
            assert!(matches!(
                verify_signature(body, &header, SECRET, at(0)),
                Err(SignatureError::OutsideTolerance { .. })
            ));
        }
    }

    #[test]
    fn signature_errors_never_carry_the_secret_or_the_body() {
        let body = b"{\"email\":\"someone@example.com\"}";
        let header = sign_header(body, SECRET, 10);
        let errors = [
            verify_signature(body, &header, "whsec_other", at(10)),
            verify_signature(body, &header, SECRET, at(10_000)),
            verify_signature(body, "t=x", SECRET, at(10)),
        ];
        for error in errors {
            let text = format!("{} {:?}", error.clone().unwrap_err(), error);
            assert!(
                !text.contains("whsec") && !text.contains("someone"),
                "{text}"
            );
        }
    }

    #[test]
    fn api_errors_are_classified_by_status_and_scrubbed_of_the_key() {
        let key = "sk_test_abc123";
        let client = StripeClient::new(
            Url::parse("https://api.stripe.com").unwrap(),
            SecretString::from(key.to_owned()),
        )
        .unwrap();
        assert!(matches!(
            client.error(StatusCode::UNAUTHORIZED, b"{}"),
            StripeError::Unauthorized
        ));
        for status in [409, 429, 500, 503] {
            let err = client.error(StatusCode::from_u16(status).unwrap(), b"");
            assert!(err.is_transient(), "{status}");
        }
        let declined = br#"{"error":{"type":"card_error","code":"card_declined",
            "message":"Your card was declined (sk_test_abc123).","param":null}}"#;
        match client.error(StatusCode::PAYMENT_REQUIRED, declined) {
            StripeError::Refused {
                status,
                error_type,
                code,
                param,
                message,
            } => {
                assert_eq!((status, error_type.as_str()), (402, "card_error"));
                assert_eq!(code.as_deref(), Some("card_declined"));
                assert_eq!(param, None);
                assert_eq!(message, "Your card was declined ([redacted]).");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(!format!("{client:?}").contains(key));
    }

    fn envelope(event_type: &str, object: &Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "id": "evt_1QxYz2AbCdEfGh",
            "object": "event",
            "api_version": "2025-03-31.basil",
            "created": 1_750_000_000,
            "livemode": false,
            "type": event_type,
            "data": {"object": object},
            "request": {"id": null, "idempotency_key": null},
        }))
        .unwrap()
    }

    #[test]
    fn a_completed_checkout_reads_reference_customer_and_subscription() {
        let body = envelope(
            "checkout.session.completed",
            &json!({
                "id": "cs_test_a1", "object": "checkout.session", "mode": "subscription",
                "client_reference_id": "sub-42", "metadata": {"usher_ref": "sub-42"},
                "customer": "cus_9", "subscription": "sub_9", "payment_status": "paid",
                "customer_email": null, "customer_details": {"email": "buyer@example.com"},
                "amount_total": 1500, "currency": "eur", "status": "complete",
            }),
        );
        let event = parse_event(&body).unwrap();
        assert_eq!(event.id, "evt_1QxYz2AbCdEfGh");
        assert_eq!(event.created, at(1_750_000_000));
        assert!(!event.livemode);
        assert_eq!(
            event.kind,
            StripeEventKind::CheckoutCompleted(StripeCheckout {
                session_id: "cs_test_a1".into(),
                client_reference_id: Some("sub-42".into()),
                metadata_ref: Some("sub-42".into()),
                customer: Some("cus_9".into()),
                subscription: Some("sub_9".into()),
                mode: CheckoutMode::Subscription,
                payment_status: CheckoutPaymentStatus::Paid,
                customer_email: Some("buyer@example.com".into()),
                amount_total: Some(1500),
                currency: Some(Currency::parse("EUR").unwrap()),
                payment_intent: None,
            })
        );
    }

    fn invoice_lines() -> Value {
        json!({"object": "list", "has_more": false, "data": [
            {"id": "il_1", "object": "line_item", "amount": 1000,
             "period": {"start": 1_750_000_000, "end": 1_752_592_000}},
            {"id": "il_2", "object": "line_item", "amount": 0,
             "period": {"start": 1_750_000_000, "end": 1_751_000_000}},
        ]})
    }

    #[test]
    fn a_basil_invoice_reads_the_subscription_from_its_parent() {
        let body = envelope(
            "invoice.paid",
            &json!({
                "id": "in_1", "object": "invoice", "customer": "cus_9", "status": "paid",
                "amount_paid": 1000, "amount_due": 1000, "currency": "usd",
                "billing_reason": "subscription_cycle", "customer_email": "b@example.com",
                "parent": {"type": "subscription_details", "quote_details": null,
                    "subscription_details": {"subscription": "sub_9",
                        "metadata": {"usher_ref": "sub-42"}}},
                "lines": invoice_lines(),
            }),
        );
        let StripeEventKind::InvoicePaid(invoice) = parse_event(&body).unwrap().kind else {
            panic!("not an invoice");
        };
        assert_eq!(invoice.subscription.as_deref(), Some("sub_9"));
        assert_eq!(invoice.metadata_ref.as_deref(), Some("sub-42"));
        assert_eq!(invoice.period_end, Some(at(1_752_592_000)));
        assert_eq!(invoice.amount_paid, 1000);
        assert_eq!(invoice.currency.as_str(), "USD");
        assert_eq!(
            invoice.billing_reason.as_deref(),
            Some("subscription_cycle")
        );
    }

    #[test]
    fn an_old_invoice_reads_the_subscription_from_the_top_level() {
        let body = envelope(
            "invoice.payment_failed",
            &json!({
                "id": "in_2", "object": "invoice", "customer": "cus_9", "status": "open",
                "subscription": "sub_9", "subscription_details": {"metadata": {"usher_ref": "r7"}},
                "amount_paid": 0, "amount_due": 1000, "currency": "USD",
                "billing_reason": "subscription_cycle", "lines": invoice_lines(),
            }),
        );
        let StripeEventKind::InvoicePaymentFailed(invoice) = parse_event(&body).unwrap().kind
        else {
            panic!("not a failed invoice");
        };
        assert_eq!(invoice.subscription.as_deref(), Some("sub_9"));
        assert_eq!(invoice.metadata_ref.as_deref(), Some("r7"));
        assert_eq!(invoice.amount_due, 1000);
        assert_eq!(invoice.amount_paid, 0);
    }

    #[test]
    fn subscription_period_end_is_read_from_either_shape() {
        let old = envelope(
            "customer.subscription.updated",
            &json!({"id": "sub_9", "object": "subscription", "customer": "cus_9",
                "status": "past_due", "cancel_at_period_end": false,
                "current_period_end": 1_752_592_000, "metadata": {"usher_ref": "r7"},
                "items": {"object": "list", "data": [{"id": "si_1", "object": "subscription_item"}]}}),
        );
        let basil = envelope(
            "customer.subscription.updated",
            &json!({"id": "sub_9", "object": "subscription", "customer": "cus_9",
                "status": "past_due", "cancel_at_period_end": false, "metadata": {"usher_ref": "r7"},
                "items": {"object": "list", "data": [{"id": "si_1", "object": "subscription_item",
                    "current_period_start": 1_750_000_000, "current_period_end": 1_752_592_000}]}}),
        );
        for body in [old, basil] {
            let StripeEventKind::SubscriptionUpdated(sub) = parse_event(&body).unwrap().kind else {
                panic!("not a subscription");
            };
            assert_eq!(sub.current_period_end, Some(at(1_752_592_000)));
            assert_eq!(sub.status, SubscriptionStatus::PastDue);
            assert_eq!(sub.metadata_ref.as_deref(), Some("r7"));
        }
    }

    #[test]
    fn a_deleted_subscription_carries_its_end() {
        let body = envelope(
            "customer.subscription.deleted",
            &json!({"id": "sub_9", "object": "subscription", "customer": {"id": "cus_9", "object": "customer"},
                "status": "canceled", "cancel_at_period_end": false, "metadata": {},
                "ended_at": 1_752_592_000, "canceled_at": 1_752_000_000, "items": {"data": []}}),
        );
        let StripeEventKind::SubscriptionDeleted(sub) = parse_event(&body).unwrap().kind else {
            panic!("not a deleted subscription");
        };
        assert_eq!(sub.customer.as_deref(), Some("cus_9"));
        assert_eq!(sub.status, SubscriptionStatus::Canceled);
        assert_eq!(sub.ended_at, Some(at(1_752_592_000)));
        assert_eq!(sub.metadata_ref, None);
    }

    #[test]
    fn a_refund_reads_in_both_shapes() {
        let old = envelope(
            "charge.refunded",
            &json!({"id": "ch_1", "object": "charge", "customer": "cus_9", "payment_intent": "pi_1",
                "invoice": "in_1", "amount": 1000, "amount_refunded": 1000, "refunded": true,
                "currency": "usd"}),
        );
        let basil = envelope(
            "charge.refunded",
            &json!({"id": "ch_1", "object": "charge", "customer": "cus_9", "payment_intent": "pi_1",
                "amount": 1000, "amount_refunded": 400, "refunded": false, "currency": "usd"}),
        );
        let StripeEventKind::ChargeRefunded(old) = parse_event(&old).unwrap().kind else {
            panic!("not a refund");
        };
        assert_eq!(old.invoice.as_deref(), Some("in_1"));
        assert!(old.refunded);
        let StripeEventKind::ChargeRefunded(basil) = parse_event(&basil).unwrap().kind else {
            panic!("not a refund");
        };
        assert_eq!(basil.invoice, None);
        assert_eq!((basil.amount_refunded, basil.amount), (400, 1000));
        assert_eq!(basil.customer.as_deref(), Some("cus_9"));
    }

    #[test]
    fn invoice_payment_succeeded_reads_as_the_same_paid_invoice() {
        let invoice = json!({
            "id": "in_1", "object": "invoice", "customer": "cus_9", "status": "paid",
            "amount_paid": 1000, "amount_due": 1000, "currency": "usd", "created": 1_750_000_000,
            "payment_intent": "pi_old",
        });
        let paid = parse_event(&envelope("invoice.paid", &invoice))
            .unwrap()
            .kind;
        let succeeded = parse_event(&envelope("invoice.payment_succeeded", &invoice))
            .unwrap()
            .kind;
        assert_eq!(paid, succeeded);
        let StripeEventKind::InvoicePaid(invoice) = paid else {
            panic!("not a paid invoice");
        };
        assert_eq!(invoice.payment_intent.as_deref(), Some("pi_old"));
        assert_eq!(invoice.created, Some(at(1_750_000_000)));
        for event_type in ["customer.created", "payout.paid", "invoice_payment.paid"] {
            let body = envelope(event_type, &json!({"id": "x", "object": "whatever"}));
            assert_eq!(parse_event(&body).unwrap().kind, StripeEventKind::Other);
        }
    }

    #[test]
    fn a_subscription_ending_on_a_date_is_not_renewing() {
        let subscription = |cancel_at: Value, cancel_at_period_end: bool| {
            let body = envelope(
                "customer.subscription.updated",
                &json!({"id": "sub_9", "object": "subscription", "status": "active",
                    "cancel_at": cancel_at, "cancel_at_period_end": cancel_at_period_end}),
            );
            let StripeEventKind::SubscriptionUpdated(sub) = parse_event(&body).unwrap().kind else {
                panic!("not a subscription");
            };
            sub
        };
        assert!(subscription(Value::Null, false).renewing());
        assert!(!subscription(json!(1_760_000_000), false).renewing());
        assert!(!subscription(Value::Null, true).renewing());
        assert_eq!(
            subscription(json!(1_760_000_000), false).cancel_at,
            Some(at(1_760_000_000))
        );
        assert!(!subscription(Value::Null, false).ended());
    }

    #[test]
    fn a_malformed_event_names_the_field() {
        let body = envelope(
            "invoice.paid",
            &json!({"id": "in_1", "object": "invoice", "amount_paid": "1000", "amount_due": 1000,
                "currency": "usd"}),
        );
        assert_eq!(parse_event(&body), Err(ParseError::Field("/amount_paid")));
        assert!(matches!(
            parse_event(b"not json"),
            Err(ParseError::NotJson(_))
        ));
    }
}
