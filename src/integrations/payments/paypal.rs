//! PayPal: the OAuth token, webhook verification by postback, subscriptions and webhook events.
//!
//! Owns `POST /v1/oauth2/token` (one cached token, refreshed a minute before it expires, one fetch
//! at a time), `POST /v1/notifications/verify-webhook-signature`, `POST /v1/billing/subscriptions`
//! and the reading of webhook bodies into [`PayPalEventKind`]. Rules kept: a received webhook body
//! goes to PayPal byte for byte (re-serialising it would change what was signed); the client
//! secret and the access token appear in no log line, `Debug` output or error; money strings
//! become minor units exactly.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

use super::json::{
    currency, decimal_minor, lenient_rfc3339, object, required_currency, required_string, string,
};
use super::{ParseError, endpoint, http_client, redact};
use crate::domain::Currency;

/// A token is refreshed this long before PayPal says it expires.
const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// The five `PAYPAL-*` headers of a webhook delivery, as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayPalTransmission {
    /// `PAYPAL-AUTH-ALGO`, e.g. `SHA256withRSA`.
    pub auth_algo: String,
    /// `PAYPAL-CERT-URL`.
    pub cert_url: String,
    /// `PAYPAL-TRANSMISSION-ID`.
    pub transmission_id: String,
    /// `PAYPAL-TRANSMISSION-SIG` (base64).
    pub transmission_sig: String,
    /// `PAYPAL-TRANSMISSION-TIME` (RFC 3339).
    pub transmission_time: String,
}

/// A webhook delivery without one of the `PAYPAL-*` headers: not from PayPal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {0} header is missing or not text")]
pub struct MissingHeader(pub &'static str);

impl PayPalTransmission {
    /// Reads the five headers (names are case-insensitive).
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, MissingHeader> {
        let read = |name: &'static str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .ok_or(MissingHeader(name))
        };
        Ok(Self {
            auth_algo: read("paypal-auth-algo")?,
            cert_url: read("paypal-cert-url")?,
            transmission_id: read("paypal-transmission-id")?,
            transmission_sig: read("paypal-transmission-sig")?,
            transmission_time: read("paypal-transmission-time")?,
        })
    }
}

/// A failed call to the PayPal API.
#[derive(Debug, thiserror::Error)]
pub enum PayPalError {
    /// 401 on the token route (wrong client id or secret), or a fresh token refused again. Fix the
    /// configuration; retrying cannot help.
    #[error("PayPal refused the client credentials (401)")]
    Unauthorized,
    /// 429 or 5xx: retry later (with the same `PayPal-Request-Id`).
    #[error("PayPal is busy or failing ({status}); retry later")]
    Transient {
        /// The HTTP status.
        status: u16,
    },
    /// The network failed or timed out: retry later.
    #[error("could not reach PayPal")]
    Transport(#[source] reqwest::Error),
    /// Another 4xx: PayPal refused the request; retrying the same request cannot help.
    #[error(
        "PayPal refused the request ({status} {name}, issue {issue:?}, debug id {debug_id:?}): {message}"
    )]
    Refused {
        /// The HTTP status.
        status: u16,
        /// `name`, e.g. `UNPROCESSABLE_ENTITY` (or the OAuth `error`).
        name: String,
        /// `details[0].issue`, e.g. `INVALID_RESOURCE_ID`.
        issue: Option<String>,
        /// `message` (or the OAuth `error_description`).
        message: String,
        /// `debug_id`, for PayPal support.
        debug_id: Option<String>,
    },
    /// A success response that did not have the expected shape.
    #[error("unexpected response from PayPal: {0}")]
    Decode(String),
    /// The client or the request could not be built.
    #[error("invalid PayPal request: {0}")]
    Invalid(String),
}

impl PayPalError {
    /// Whether the same request may succeed later.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. } | Self::Transport(_))
    }

    /// Whether PayPal refused the request itself (a 4xx): the configuration or the request is
    /// wrong, and asking again cannot help.
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::Unauthorized | Self::Refused { .. })
    }
}

/// A subscription as `GET /v1/billing/subscriptions/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayPalSubscriptionDetails {
    /// `I-…`.
    pub id: String,
    /// PayPal's status word (`ACTIVE`, `SUSPENDED`, `CANCELLED`…).
    pub status: String,
    /// `P-…`.
    pub plan_id: Option<String>,
    /// The `custom_id` set at creation (Usher's reference when Usher made it).
    pub custom_id: Option<String>,
    /// `subscriber.email_address`: who pays.
    pub payer_email: Option<String>,
}

/// A subscription to start: the buyer approves it on PayPal's page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRequest {
    /// The PayPal plan (`P-…`).
    pub plan_id: String,
    /// Usher's reference, echoed as `custom_id` on every subscription event (at most 127
    /// characters).
    pub custom_id: String,
    /// Prefills the subscriber's email.
    pub email: Option<String>,
    /// Where PayPal sends the buyer after approving.
    pub return_url: Url,
    /// Where PayPal sends the buyer who gives up.
    pub cancel_url: Url,
    /// The `PayPal-Request-Id`: the same id returns the same subscription.
    pub request_id: String,
}

/// A created subscription, waiting for the buyer's approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayPalSubscription {
    /// `I-…`.
    pub id: String,
    /// PayPal's approval page: send the buyer there.
    pub approve_url: Url,
}

#[derive(Clone)]
struct AccessToken {
    value: SecretString,
    refresh_at: Instant,
}

/// A client of the PayPal REST API. Clones share one token cache.
#[derive(Clone)]
pub struct PayPalClient {
    http: reqwest::Client,
    base: Url,
    client_id: String,
    client_secret: SecretString,
    webhook_id: String,
    token: Arc<Mutex<Option<AccessToken>>>,
}

impl fmt::Debug for PayPalClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PayPalClient")
            .field("base", &self.base.as_str())
            .field("client_id", &self.client_id)
            .field("webhook_id", &self.webhook_id)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct VerifyRequest<'a> {
    auth_algo: &'a str,
    cert_url: &'a str,
    transmission_id: &'a str,
    transmission_sig: &'a str,
    transmission_time: &'a str,
    webhook_id: &'a str,
    webhook_event: &'a RawValue,
}

impl PayPalClient {
    /// A client of the PayPal API at `base_url` (`https://api-m.paypal.com` in production,
    /// `https://api-m.sandbox.paypal.com` for the sandbox). `webhook_id` is the id of the webhook
    /// configured in the PayPal app, used to verify deliveries.
    pub fn new(
        base_url: Url,
        client_id: String,
        client_secret: SecretString,
        webhook_id: String,
    ) -> Result<Self, PayPalError> {
        Ok(Self {
            http: http_client().map_err(PayPalError::Invalid)?,
            base: base_url,
            client_id,
            client_secret,
            webhook_id,
            token: Arc::new(Mutex::new(None)),
        })
    }

    /// Asks PayPal whether a delivery is genuine: `Ok(true)` only for `SUCCESS`.
    ///
    /// A body that is not JSON cannot be a PayPal event and is `Ok(false)` without a call. A 401
    /// (the cached token expired early or was revoked) fetches a new token and tries once more.
    pub async fn verify_webhook(
        &self,
        transmission: &PayPalTransmission,
        raw_body: &[u8],
    ) -> Result<bool, PayPalError> {
        let Ok(webhook_event) = serde_json::from_slice::<&RawValue>(raw_body) else {
            return Ok(false);
        };
        let request = VerifyRequest {
            auth_algo: &transmission.auth_algo,
            cert_url: &transmission.cert_url,
            transmission_id: &transmission.transmission_id,
            transmission_sig: &transmission.transmission_sig,
            transmission_time: &transmission.transmission_time,
            webhook_id: &self.webhook_id,
            webhook_event,
        };
        let body = serde_json::to_vec(&request).expect("the request serialises");
        let (status, reply) = self
            .send_authorised(
                "POST /v1/notifications/verify-webhook-signature",
                "v1/notifications/verify-webhook-signature",
                Some(&body),
                None,
            )
            .await?;
        if !status.is_success() {
            return Err(self.error(status, &reply));
        }
        let reply: Value = serde_json::from_slice(&reply)
            .map_err(|_| PayPalError::Decode("the verification answer is not JSON".into()))?;
        match reply.get("verification_status").and_then(Value::as_str) {
            Some("SUCCESS") => Ok(true),
            Some("FAILURE") => Ok(false),
            _ => Err(PayPalError::Decode(
                "the verification answer has no verification_status".into(),
            )),
        }
    }

    /// `POST /v1/billing/subscriptions`: a subscription waiting for the buyer's approval.
    pub async fn create_subscription(
        &self,
        request: &SubscriptionRequest,
    ) -> Result<PayPalSubscription, PayPalError> {
        let request_id = HeaderValue::from_str(&request.request_id)
            .map_err(|_| PayPalError::Invalid("the request id is not a header value".into()))?;
        let mut body = serde_json::json!({
            "plan_id": request.plan_id,
            "custom_id": request.custom_id,
            "application_context": {
                "user_action": "SUBSCRIBE_NOW",
                "shipping_preference": "NO_SHIPPING",
                "return_url": request.return_url.as_str(),
                "cancel_url": request.cancel_url.as_str(),
            },
        });
        if let Some(email) = &request.email {
            body["subscriber"] = serde_json::json!({ "email_address": email });
        }
        let body = serde_json::to_vec(&body).expect("the request serialises");
        let (status, reply) = self
            .send_authorised(
                "POST /v1/billing/subscriptions",
                "v1/billing/subscriptions",
                Some(&body),
                Some(request_id),
            )
            .await?;
        if !status.is_success() {
            return Err(self.error(status, &reply));
        }
        let reply: Value = serde_json::from_slice(&reply)
            .map_err(|_| PayPalError::Decode("the subscription is not JSON".into()))?;
        let id = reply
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| PayPalError::Decode("the subscription has no id".into()))?;
        let approve_url = reply
            .get("links")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|link| link.get("rel").and_then(Value::as_str) == Some("approve"))
            .and_then(|link| link.get("href").and_then(Value::as_str))
            .and_then(|href| Url::parse(href).ok())
            .ok_or_else(|| PayPalError::Decode("the subscription has no approve link".into()))?;
        Ok(PayPalSubscription {
            id: id.to_owned(),
            approve_url,
        })
    }

    /// Asks PayPal for a fresh OAuth token with the configured client id and secret: `Ok` when
    /// they work. Used by `usher doctor`; the token is cached like any other.
    pub async fn check_credentials(&self) -> Result<(), PayPalError> {
        let fresh = self.fetch_token().await?;
        *self.token.lock().await = Some(fresh);
        Ok(())
    }

    /// `GET /v1/billing/subscriptions/{id}`: who pays a subscription and where it stands (a
    /// renewal of a subscription Usher never saw is matched by this payer's email).
    pub async fn get_subscription(
        &self,
        subscription_id: &str,
    ) -> Result<PayPalSubscriptionDetails, PayPalError> {
        let valid = !subscription_id.is_empty()
            && subscription_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(PayPalError::Invalid(
                "a subscription id has letters, digits and dashes only".into(),
            ));
        }
        let path = format!("v1/billing/subscriptions/{subscription_id}");
        let (status, reply) = self
            .send_authorised("GET /v1/billing/subscriptions/{id}", &path, None, None)
            .await?;
        if !status.is_success() {
            return Err(self.error(status, &reply));
        }
        let reply: Value = serde_json::from_slice(&reply)
            .map_err(|_| PayPalError::Decode("the subscription is not JSON".into()))?;
        let text = |pointer: &str| {
            reply
                .pointer(pointer)
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
        };
        Ok(PayPalSubscriptionDetails {
            id: text("/id")
                .ok_or_else(|| PayPalError::Decode("the subscription has no id".into()))?,
            status: text("/status")
                .ok_or_else(|| PayPalError::Decode("the subscription has no status".into()))?,
            plan_id: text("/plan_id"),
            custom_id: text("/custom_id"),
            payer_email: text("/subscriber/email_address"),
        })
    }

    /// Sends a request with the cached token (JSON when it has a body: a POST, else a GET); on
    /// 401 drops that token, fetches one and tries once more.
    async fn send_authorised(
        &self,
        endpoint_name: &'static str,
        path: &str,
        body: Option<&[u8]>,
        request_id: Option<HeaderValue>,
    ) -> Result<(StatusCode, Vec<u8>), PayPalError> {
        let mut retried = false;
        loop {
            let token = self.access_token().await?;
            let url = endpoint(&self.base, path);
            let mut request = match body {
                Some(body) => self
                    .http
                    .post(url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.to_vec()),
                None => self.http.get(url),
            }
            .bearer_auth(token.expose_secret());
            if let Some(id) = &request_id {
                request = request.header("PayPal-Request-Id", id.clone());
            }
            let response = request
                .send()
                .await
                .map_err(|e| PayPalError::Transport(e.without_url()))?;
            let status = response.status();
            let reply = response
                .bytes()
                .await
                .map_err(|e| PayPalError::Transport(e.without_url()))?;
            tracing::debug!(
                endpoint = endpoint_name,
                status = status.as_u16(),
                "paypal call"
            );
            if status == StatusCode::UNAUTHORIZED && !retried {
                retried = true;
                self.forget_token(&token).await;
                continue;
            }
            return Ok((status, reply.to_vec()));
        }
    }

    /// The cached token, or a new one when there is none or it is about to expire. The lock is
    /// held across the fetch, so concurrent callers wait for one fetch instead of each making one.
    async fn access_token(&self) -> Result<SecretString, PayPalError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref()
            && Instant::now() < token.refresh_at
        {
            return Ok(token.value.clone());
        }
        let fresh = self.fetch_token().await?;
        *cached = Some(fresh.clone());
        Ok(fresh.value)
    }

    /// Drops the cached token if it is still the one PayPal refused.
    async fn forget_token(&self, refused: &SecretString) {
        let mut cached = self.token.lock().await;
        if cached
            .as_ref()
            .is_some_and(|t| t.value.expose_secret() == refused.expose_secret())
        {
            *cached = None;
        }
    }

    async fn fetch_token(&self) -> Result<AccessToken, PayPalError> {
        let response = self
            .http
            .post(endpoint(&self.base, "v1/oauth2/token"))
            .basic_auth(&self.client_id, Some(self.client_secret.expose_secret()))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .map_err(|e| PayPalError::Transport(e.without_url()))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| PayPalError::Transport(e.without_url()))?;
        tracing::debug!(
            endpoint = "POST /v1/oauth2/token",
            status = status.as_u16(),
            "paypal call"
        );
        if !status.is_success() {
            return Err(self.error(status, &body));
        }
        let reply: Value = serde_json::from_slice(&body)
            .map_err(|_| PayPalError::Decode("the token answer is not JSON".into()))?;
        let value = reply
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| PayPalError::Decode("the token answer has no access_token".into()))?;
        let expires_in = reply
            .get("expires_in")
            .and_then(Value::as_u64)
            .ok_or_else(|| PayPalError::Decode("the token answer has no expires_in".into()))?;
        let lifetime = Duration::from_secs(expires_in).saturating_sub(TOKEN_REFRESH_MARGIN);
        Ok(AccessToken {
            value: SecretString::from(value.to_owned()),
            refresh_at: Instant::now() + lifetime,
        })
    }

    fn error(&self, status: StatusCode, body: &[u8]) -> PayPalError {
        match status.as_u16() {
            401 => PayPalError::Unauthorized,
            code @ (429 | 500..=599) => PayPalError::Transient { status: code },
            code => {
                let error = serde_json::from_slice::<Value>(body).unwrap_or_default();
                let text = |pointer: &str| {
                    error
                        .pointer(pointer)
                        .and_then(Value::as_str)
                        .map(|t| redact(t, self.client_secret.expose_secret()))
                };
                PayPalError::Refused {
                    status: code,
                    name: text("/name")
                        .or_else(|| text("/error"))
                        .unwrap_or_else(|| "UNKNOWN".into()),
                    issue: text("/details/0/issue"),
                    message: text("/message")
                        .or_else(|| text("/error_description"))
                        .unwrap_or_default(),
                    debug_id: text("/debug_id"),
                }
            }
        }
    }
}

/// A PayPal webhook event, read from a verified body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayPalEvent {
    /// `WH-…`: deliveries repeat, so this is the deduplication key.
    pub id: String,
    /// The event type as sent, e.g. `PAYMENT.SALE.COMPLETED`.
    pub event_type: String,
    /// When PayPal created the event; `None` when absent or unreadable (PayPal's own simulator
    /// sends `2018-19-12…`): Usher only orders events by it, so a bad one refuses nothing.
    pub create_time: Option<DateTime<Utc>>,
    /// What Usher reads from the event's resource.
    pub kind: PayPalEventKind,
}

/// The events Usher acts on, each with the fields it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayPalEventKind {
    /// `BILLING.SUBSCRIPTION.ACTIVATED`.
    SubscriptionActivated(PayPalSubscriptionEvent),
    /// `BILLING.SUBSCRIPTION.CANCELLED`: no more renewals; access runs to the paid end.
    SubscriptionCancelled(PayPalSubscriptionEvent),
    /// `BILLING.SUBSCRIPTION.SUSPENDED`: payments failed or the merchant paused it.
    SubscriptionSuspended(PayPalSubscriptionEvent),
    /// `BILLING.SUBSCRIPTION.EXPIRED`: the plan's cycles are done.
    SubscriptionExpired(PayPalSubscriptionEvent),
    /// `BILLING.SUBSCRIPTION.RE-ACTIVATED`: a suspended subscription renews again.
    SubscriptionReactivated(PayPalSubscriptionEvent),
    /// `PAYMENT.SALE.COMPLETED`: money received (for subscriptions: one billing cycle).
    SaleCompleted(PayPalSale),
    /// `PAYMENT.SALE.REFUNDED`: the merchant refunded (part of) a sale.
    SaleRefunded(PayPalRefund),
    /// `PAYMENT.SALE.REVERSED`: PayPal took a sale back (a chargeback or reversal).
    SaleReversed(PayPalRefund),
    /// `PAYMENT.CAPTURE.REFUNDED`: the merchant refunded (part of) a capture.
    CaptureRefunded(PayPalRefund),
    /// `PAYMENT.CAPTURE.REVERSED`: PayPal took a capture back.
    CaptureReversed(PayPalRefund),
    /// Any other event type: acknowledge and ignore.
    Other,
}

/// What a `BILLING.SUBSCRIPTION.*` event says of the subscription: PayPal's status word, whether
/// PayPal charges it again by itself, whether it is over for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// PayPal's word (`ACTIVE`, `SUSPENDED`, `CANCELLED`, `EXPIRED`).
    pub status: &'static str,
    /// PayPal will charge it again by itself.
    pub renewing: bool,
    /// Cancelled or expired: nothing revives it.
    pub ended: bool,
}

impl Standing {
    /// `BILLING.SUBSCRIPTION.CANCELLED`.
    pub const CANCELLED: Self = Self {
        status: "CANCELLED",
        renewing: false,
        ended: true,
    };
    /// `BILLING.SUBSCRIPTION.EXPIRED`.
    pub const EXPIRED: Self = Self {
        status: "EXPIRED",
        renewing: false,
        ended: true,
    };
    /// `BILLING.SUBSCRIPTION.SUSPENDED`: PayPal stopped charging until it is re-activated.
    pub const SUSPENDED: Self = Self {
        status: "SUSPENDED",
        renewing: false,
        ended: false,
    };
    /// `BILLING.SUBSCRIPTION.RE-ACTIVATED`: charging again.
    pub const REACTIVATED: Self = Self {
        status: "ACTIVE",
        renewing: true,
        ended: false,
    };
}

/// Money going back: the resource of `PAYMENT.SALE.REFUNDED`/`.REVERSED` (v1 refund and sale
/// objects) and `PAYMENT.CAPTURE.REFUNDED`/`.REVERSED` (v2 refund objects). PayPal writes
/// refunded amounts negative in v1 samples; the amount here is what went back, positive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayPalRefund {
    /// PayPal's id of this refund (or, for a sale reversal without one, `reversal:<sale id>`).
    pub refund_id: String,
    /// The sale or capture it returns: `sale_id` (sale refunds), the sale's own `id` (sale
    /// reversals), the capture named by the `up` link (capture refunds and reversals).
    pub txn_id: Option<String>,
    /// What went back this time, in minor units.
    pub amount_minor: i64,
    /// Currency of `amount_minor`.
    pub currency: Currency,
    /// Everything refunded of that sale or capture so far, when PayPal says
    /// (`total_refunded_amount`, or `seller_payable_breakdown.total_refunded_amount`).
    pub total_refunded_minor: Option<i64>,
    /// When PayPal made it.
    pub create_time: Option<DateTime<Utc>>,
}

/// The subscription resource of a `BILLING.SUBSCRIPTION.*` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayPalSubscriptionEvent {
    /// `I-…`.
    pub subscription_id: String,
    /// The `custom_id` Usher set at creation.
    pub custom_id: Option<String>,
    /// `P-…`.
    pub plan_id: Option<String>,
    /// `subscriber.email_address`.
    pub payer_email: Option<String>,
    /// `billing_info.next_billing_time`.
    pub next_billing_time: Option<DateTime<Utc>>,
    /// `status_update_time` (else `update_time`): when the status it reports was set.
    pub status_time: Option<DateTime<Utc>>,
}

/// The sale resource of `PAYMENT.SALE.COMPLETED`. Match it by `billing_agreement_id`, not by
/// `custom` (often empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayPalSale {
    /// The sale id.
    pub sale_id: String,
    /// The subscription (`I-…`) the sale belongs to, if any.
    pub billing_agreement_id: Option<String>,
    /// `amount.total` in minor units.
    pub amount_minor: i64,
    /// `amount.currency`, upper-case.
    pub currency: Currency,
    /// `custom`, when set.
    pub custom: Option<String>,
    /// When PayPal made the sale.
    pub create_time: Option<DateTime<Utc>>,
}

/// Reads a webhook body (verify it first with [`PayPalClient::verify_webhook`]).
pub fn parse_event(body: &[u8]) -> Result<PayPalEvent, ParseError> {
    let event = object(body)?;
    let event_type = required_string(&event, "/event_type")?;
    let resource = || {
        event
            .get("resource")
            .filter(|r| r.is_object())
            .ok_or(ParseError::Field("/resource"))
    };
    let subscription = || -> Result<PayPalSubscriptionEvent, ParseError> {
        let resource = resource()?;
        Ok(PayPalSubscriptionEvent {
            subscription_id: required_string(resource, "/id")?,
            custom_id: string(resource, "/custom_id")?,
            plan_id: string(resource, "/plan_id")?,
            payer_email: string(resource, "/subscriber/email_address")?,
            next_billing_time: lenient_rfc3339(resource, "/billing_info/next_billing_time"),
            status_time: lenient_rfc3339(resource, "/status_update_time")
                .or_else(|| lenient_rfc3339(resource, "/update_time")),
        })
    };
    let kind = match event_type.as_str() {
        "BILLING.SUBSCRIPTION.ACTIVATED" => PayPalEventKind::SubscriptionActivated(subscription()?),
        "BILLING.SUBSCRIPTION.CANCELLED" => PayPalEventKind::SubscriptionCancelled(subscription()?),
        "BILLING.SUBSCRIPTION.SUSPENDED" => PayPalEventKind::SubscriptionSuspended(subscription()?),
        "BILLING.SUBSCRIPTION.EXPIRED" => PayPalEventKind::SubscriptionExpired(subscription()?),
        "BILLING.SUBSCRIPTION.RE-ACTIVATED" => {
            PayPalEventKind::SubscriptionReactivated(subscription()?)
        }
        "PAYMENT.SALE.COMPLETED" => {
            let resource = resource()?;
            let currency = required_currency(resource, "/amount/currency")?;
            PayPalEventKind::SaleCompleted(PayPalSale {
                sale_id: required_string(resource, "/id")?,
                billing_agreement_id: string(resource, "/billing_agreement_id")?,
                amount_minor: decimal_minor(resource, "/amount/total", currency)?
                    .ok_or(ParseError::Field("/amount/total"))?,
                currency,
                custom: string(resource, "/custom")?,
                create_time: lenient_rfc3339(resource, "/create_time"),
            })
        }
        "PAYMENT.SALE.REFUNDED" => PayPalEventKind::SaleRefunded(sale_refund(resource()?)?),
        "PAYMENT.SALE.REVERSED" => PayPalEventKind::SaleReversed(sale_reversal(resource()?)?),
        "PAYMENT.CAPTURE.REFUNDED" => {
            PayPalEventKind::CaptureRefunded(capture_refund(resource()?)?)
        }
        "PAYMENT.CAPTURE.REVERSED" => {
            PayPalEventKind::CaptureReversed(capture_refund(resource()?)?)
        }
        _ => PayPalEventKind::Other,
    };
    Ok(PayPalEvent {
        id: required_string(&event, "/id")?,
        event_type,
        create_time: lenient_rfc3339(&event, "/create_time"),
        kind,
    })
}

/// A v1 amount (`total` + `currency`) or v2 money (`value` + `currency_code`) under `pointer`,
/// in minor units, sign dropped (v1 refunds are written negative).
fn money_at(
    resource: &Value,
    total: &'static str,
    code: &'static str,
) -> Result<Option<(i64, Currency)>, ParseError> {
    let Some(currency) = currency(resource, code)? else {
        return Ok(None);
    };
    let mut value = resource.pointer(total).cloned();
    if let Some(Value::String(text)) = &mut value
        && let Some(positive) = text.strip_prefix('-')
    {
        *text = positive.to_owned();
    }
    let holder = serde_json::json!({ "v": value });
    let minor = decimal_minor(&holder, "/v", currency).map_err(|e| match e {
        ParseError::Invalid { reason, .. } => ParseError::Invalid {
            field: total,
            reason,
        },
        _ => ParseError::Field(total),
    })?;
    Ok(minor.map(|m| (m, currency)))
}

/// The id at the end of the `href` of the link with relation `rel`, under `segment` (e.g. the
/// capture of `…/v2/payments/captures/{id}`).
fn link_id(resource: &Value, rel: &str, segment: &str) -> Option<String> {
    resource
        .get("links")?
        .as_array()?
        .iter()
        .filter(|l| l.get("rel").and_then(Value::as_str) == Some(rel))
        .filter_map(|l| l.get("href").and_then(Value::as_str))
        .find_map(|href| {
            let (_, tail) = href.split_once(segment)?;
            let id = tail.trim_end_matches('/');
            (!id.is_empty() && !id.contains('/')).then(|| id.to_owned())
        })
}

fn sale_refund(resource: &Value) -> Result<PayPalRefund, ParseError> {
    let (amount_minor, currency) = money_at(resource, "/amount/total", "/amount/currency")?
        .ok_or(ParseError::Field("/amount"))?;
    let total = money_at(
        resource,
        "/total_refunded_amount/value",
        "/total_refunded_amount/currency",
    )?;
    Ok(PayPalRefund {
        refund_id: required_string(resource, "/id")?,
        txn_id: match string(resource, "/sale_id")? {
            Some(sale) => Some(sale),
            None => link_id(resource, "sale", "/payments/sale/"),
        },
        amount_minor,
        currency,
        total_refunded_minor: total.filter(|(_, c)| *c == currency).map(|(m, _)| m),
        create_time: lenient_rfc3339(resource, "/create_time"),
    })
}

fn sale_reversal(resource: &Value) -> Result<PayPalRefund, ParseError> {
    let (amount_minor, currency) = money_at(resource, "/amount/total", "/amount/currency")?
        .ok_or(ParseError::Field("/amount"))?;
    let sale = required_string(resource, "/id")?;
    Ok(PayPalRefund {
        refund_id: link_id(resource, "self", "/payments/refund/")
            .unwrap_or_else(|| format!("reversal:{sale}")),
        txn_id: Some(sale),
        amount_minor,
        currency,
        total_refunded_minor: None,
        create_time: lenient_rfc3339(resource, "/create_time"),
    })
}

fn capture_refund(resource: &Value) -> Result<PayPalRefund, ParseError> {
    let (amount_minor, currency) = money_at(resource, "/amount/value", "/amount/currency_code")?
        .ok_or(ParseError::Field("/amount"))?;
    let total = money_at(
        resource,
        "/seller_payable_breakdown/total_refunded_amount/value",
        "/seller_payable_breakdown/total_refunded_amount/currency_code",
    )?;
    Ok(PayPalRefund {
        refund_id: required_string(resource, "/id")?,
        txn_id: link_id(resource, "up", "/payments/captures/"),
        amount_minor,
        currency,
        total_refunded_minor: total.filter(|(_, c)| *c == currency).map(|(m, _)| m),
        create_time: lenient_rfc3339(resource, "/create_time"),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(event_type: &str, resource: &Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "id": "WH-2WR32451HC0233532-67976317FL4543714",
            "event_version": "1.0",
            "create_time": "2025-06-01T10:00:00.000Z",
            "resource_type": "subscription",
            "resource_version": "2.0",
            "event_type": event_type,
            "summary": "A billing agreement was activated.",
            "resource": resource,
            "links": [],
        }))
        .unwrap()
    }

    #[test]
    fn subscription_events_read_ids_email_and_next_billing() {
        let resource = json!({
            "id": "I-BW452GLLEP1G", "status": "ACTIVE", "plan_id": "P-5ML4271244454362WXNWU5NQ",
            "custom_id": "sub-42", "quantity": "1",
            "subscriber": {"email_address": "buyer@example.com", "payer_id": "2J6QB8YJQSJRJ",
                "name": {"given_name": "John", "surname": "Doe"}},
            "billing_info": {"next_billing_time": "2025-07-01T10:00:00Z", "failed_payments_count": 0},
        });
        let expected = PayPalSubscriptionEvent {
            subscription_id: "I-BW452GLLEP1G".into(),
            custom_id: Some("sub-42".into()),
            plan_id: Some("P-5ML4271244454362WXNWU5NQ".into()),
            payer_email: Some("buyer@example.com".into()),
            next_billing_time: Some("2025-07-01T10:00:00Z".parse().unwrap()),
            status_time: None,
        };
        for (event_type, wrap) in [
            (
                "BILLING.SUBSCRIPTION.ACTIVATED",
                PayPalEventKind::SubscriptionActivated as fn(_) -> _,
            ),
            (
                "BILLING.SUBSCRIPTION.CANCELLED",
                PayPalEventKind::SubscriptionCancelled,
            ),
            (
                "BILLING.SUBSCRIPTION.SUSPENDED",
                PayPalEventKind::SubscriptionSuspended,
            ),
            (
                "BILLING.SUBSCRIPTION.EXPIRED",
                PayPalEventKind::SubscriptionExpired,
            ),
            (
                "BILLING.SUBSCRIPTION.RE-ACTIVATED",
                PayPalEventKind::SubscriptionReactivated,
            ),
        ] {
            let parsed = parse_event(&event(event_type, &resource)).unwrap();
            assert_eq!(parsed.kind, wrap(expected.clone()), "{event_type}");
            assert_eq!(parsed.id, "WH-2WR32451HC0233532-67976317FL4543714");
            assert_eq!(
                parsed.create_time,
                Some("2025-06-01T10:00:00Z".parse().unwrap())
            );
        }
    }

    #[test]
    fn a_completed_sale_reads_the_amount_exactly() {
        let resource = json!({
            "id": "80021663DE681814L", "state": "completed",
            "amount": {"total": "10.99", "currency": "usd", "details": {"subtotal": "10.99"}},
            "billing_agreement_id": "I-BW452GLLEP1G", "custom": "",
            "create_time": "2025-06-01T10:00:00Z",
        });
        let parsed = parse_event(&event("PAYMENT.SALE.COMPLETED", &resource)).unwrap();
        assert_eq!(
            parsed.kind,
            PayPalEventKind::SaleCompleted(PayPalSale {
                sale_id: "80021663DE681814L".into(),
                billing_agreement_id: Some("I-BW452GLLEP1G".into()),
                amount_minor: 1099,
                currency: Currency::parse("USD").unwrap(),
                custom: None,
                create_time: Some("2025-06-01T10:00:00Z".parse().unwrap()),
            })
        );
        let yen = json!({"id": "S1", "amount": {"total": "1500", "currency": "JPY"}});
        let PayPalEventKind::SaleCompleted(sale) =
            parse_event(&event("PAYMENT.SALE.COMPLETED", &yen))
                .unwrap()
                .kind
        else {
            panic!("not a sale");
        };
        assert_eq!(sale.amount_minor, 1500);
    }

    #[test]
    fn a_sale_with_an_unreadable_amount_is_refused() {
        let resource = json!({"id": "S1", "amount": {"total": "10.999", "currency": "USD"}});
        assert!(matches!(
            parse_event(&event("PAYMENT.SALE.COMPLETED", &resource)),
            Err(ParseError::Invalid {
                field: "/amount/total",
                ..
            })
        ));
    }

    #[test]
    fn other_events_are_other() {
        let parsed =
            parse_event(&event("CUSTOMER.DISPUTE.CREATED", &json!({"id": "PP-D-1"}))).unwrap();
        assert_eq!(parsed.kind, PayPalEventKind::Other);
    }

    #[test]
    fn refunds_and_reversals_name_their_sale_or_capture_and_the_amount_that_went_back() {
        let sale_refund = json!({"id": "6YX43824R4443062K", "sale_id": "9T0916710M1105906",
            "amount": {"total": "-0.01", "currency": "USD"}, "state": "completed",
            "create_time": "2014-10-31T15:41:51Z"});
        let PayPalEventKind::SaleRefunded(refund) =
            parse_event(&event("PAYMENT.SALE.REFUNDED", &sale_refund))
                .unwrap()
                .kind
        else {
            panic!("not a sale refund");
        };
        assert_eq!(refund.refund_id, "6YX43824R4443062K");
        assert_eq!(refund.txn_id.as_deref(), Some("9T0916710M1105906"));
        assert_eq!((refund.amount_minor, refund.currency.as_str()), (1, "USD"));
        let reversal = json!({"id": "80021663DE681814L", "state": "completed",
            "amount": {"total": "-0.49", "currency": "USD"},
            "links": [{"href": "https://api.paypal.com/v1/payments/refund/77689802DL785834G",
                "rel": "self", "method": "GET"}]});
        let PayPalEventKind::SaleReversed(reversal) =
            parse_event(&event("PAYMENT.SALE.REVERSED", &reversal))
                .unwrap()
                .kind
        else {
            panic!("not a sale reversal");
        };
        assert_eq!(reversal.refund_id, "77689802DL785834G");
        assert_eq!(reversal.txn_id.as_deref(), Some("80021663DE681814L"));
        assert_eq!(reversal.amount_minor, 49);
        let capture = json!({"id": "1Y107995YT783435V", "status": "COMPLETED",
            "amount": {"currency_code": "USD", "value": "0.99"},
            "seller_payable_breakdown": {"total_refunded_amount": {"currency_code": "USD", "value": "1.98"}},
            "links": [{"href": "https://api.paypal.com/v2/payments/refunds/1Y107995YT783435V", "rel": "self"},
                {"href": "https://api.paypal.com/v2/payments/captures/0JF852973C016714D", "rel": "up"}]});
        let PayPalEventKind::CaptureRefunded(capture) =
            parse_event(&event("PAYMENT.CAPTURE.REFUNDED", &capture))
                .unwrap()
                .kind
        else {
            panic!("not a capture refund");
        };
        assert_eq!(capture.txn_id.as_deref(), Some("0JF852973C016714D"));
        assert_eq!(
            (capture.amount_minor, capture.total_refunded_minor),
            (99, Some(198))
        );
    }

    #[test]
    fn an_unreadable_create_time_refuses_nothing() {
        let mut body: Value = serde_json::from_slice(&event(
            "BILLING.SUBSCRIPTION.CANCELLED",
            &json!({"id": "I-BW452GLLEP1G", "status": "CANCELLED"}),
        ))
        .unwrap();
        body["create_time"] = json!("2018-19-12T22:20:32.000Z");
        let parsed = parse_event(&serde_json::to_vec(&body).unwrap()).unwrap();
        assert_eq!(parsed.create_time, None);
        assert!(matches!(
            parsed.kind,
            PayPalEventKind::SubscriptionCancelled(_)
        ));
    }

    #[test]
    fn transmission_headers_are_all_required() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("PAYPAL-AUTH-ALGO", "SHA256withRSA"),
            (
                "PAYPAL-CERT-URL",
                "https://api.paypal.com/v1/notifications/certs/CERT-1",
            ),
            (
                "PAYPAL-TRANSMISSION-ID",
                "69cd13f0-d67a-11e5-baa3-778b53f4ae55",
            ),
            ("PAYPAL-TRANSMISSION-SIG", "bG9uZ3NpZw=="),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        assert_eq!(
            PayPalTransmission::from_headers(&headers),
            Err(MissingHeader("paypal-transmission-time"))
        );
        headers.insert(
            "paypal-transmission-time",
            HeaderValue::from_static("2025-06-01T10:00:00Z"),
        );
        let transmission = PayPalTransmission::from_headers(&headers).unwrap();
        assert_eq!(transmission.auth_algo, "SHA256withRSA");
        assert_eq!(transmission.transmission_sig, "bG9uZ3NpZw==");
    }

    #[test]
    fn api_errors_read_both_error_shapes() {
        let client = PayPalClient::new(
            Url::parse("https://api-m.paypal.com").unwrap(),
            "client-id".into(),
            SecretString::from("s3cret".to_owned()),
            "WH-ID".into(),
        )
        .unwrap();
        assert!(matches!(
            client.error(StatusCode::UNAUTHORIZED, b""),
            PayPalError::Unauthorized
        ));
        assert!(
            client
                .error(StatusCode::TOO_MANY_REQUESTS, b"")
                .is_transient()
        );
        assert!(client.error(StatusCode::BAD_GATEWAY, b"").is_transient());
        let rest = br#"{"name":"UNPROCESSABLE_ENTITY","message":"The requested action could not be performed.",
            "debug_id":"f1a2b3","details":[{"issue":"SUBSCRIPTION_STATUS_INVALID"}]}"#;
        match client.error(StatusCode::UNPROCESSABLE_ENTITY, rest) {
            PayPalError::Refused {
                status,
                name,
                issue,
                debug_id,
                ..
            } => {
                assert_eq!((status, name.as_str()), (422, "UNPROCESSABLE_ENTITY"));
                assert_eq!(issue.as_deref(), Some("SUBSCRIPTION_STATUS_INVALID"));
                assert_eq!(debug_id.as_deref(), Some("f1a2b3"));
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        let oauth =
            br#"{"error":"unsupported_grant_type","error_description":"Grant Type is NULL"}"#;
        match client.error(StatusCode::BAD_REQUEST, oauth) {
            PayPalError::Refused { name, message, .. } => {
                assert_eq!(name, "unsupported_grant_type");
                assert_eq!(message, "Grant Type is NULL");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn the_client_debug_output_has_no_secret() {
        let client = PayPalClient::new(
            Url::parse("https://api-m.paypal.com").unwrap(),
            "client-id".into(),
            SecretString::from("very-secret-value".to_owned()),
            "WH-ID".into(),
        )
        .unwrap();
        let debug = format!("{client:?}");
        assert!(!debug.contains("very-secret-value"), "{debug}");
        assert!(debug.contains("client-id"), "{debug}");
    }
}
