//! A fake of PayPal: the OAuth token, webhook verification by postback, and subscriptions.
//!
//! Owns the fake's state (client credentials, the webhook id, a private signing key, live tokens,
//! plans, subscriptions, sales, `PayPal-Request-Id` records, counters) and the test-side API:
//! register plans and subscriptions made outside Usher, sign webhook deliveries the way only this
//! fake can verify, build realistic events (payments, refunds and reversals of sales and
//! captures, subscription changes, and the simulator's impossible `create_time` on demand), and
//! make verification fail as PayPal can (a 4xx for a bad request or configuration, a 5xx).
//!
//! Real PayPal signs deliveries with RSA over `<transmission id>|<time>|<webhook id>|<CRC-32 of
//! the body>`; the fake signs the same string with HMAC-SHA256 under a key only it knows, so a
//! transmission verifies only if [`FakePayPal::signed`] produced it for exactly that body and the
//! configured webhook id. Rule kept: the fake is never looser than PayPal. The token route wants
//! HTTP Basic with its credentials and `grant_type=client_credentials` as a form; the other routes
//! want a live Bearer token it issued (401 `invalid_token` otherwise) and a JSON body; unknown
//! plans and subscriptions are 404 `INVALID_RESOURCE_ID`; a `webhook_id` that is not written as
//! PayPal writes webhook ids is a 400 `VALIDATION_ERROR` (a well-formed id of another webhook
//! verifies as `FAILURE`). A `PayPal-Request-Id` replays the first response; reused
//! with another body it is refused (422 `DUPLICATE_REQUEST_ID`, stricter than PayPal documents).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::task::JoinHandle;
use url::Url;

use super::ids;

/// Route names for [`FakePayPal::calls`].
pub mod routes {
    /// The OAuth token route.
    pub const TOKEN: &str = "POST /v1/oauth2/token";
    /// The webhook verification postback.
    pub const VERIFY: &str = "POST /v1/notifications/verify-webhook-signature";
    /// Creating a subscription.
    pub const SUBSCRIPTIONS: &str = "POST /v1/billing/subscriptions";
    /// Showing a subscription.
    pub const SUBSCRIPTION: &str = "GET /v1/billing/subscriptions/{id}";
}

/// The `create_time` PayPal's webhook simulator stamps on its sample events: month 19.
pub const SIMULATOR_CREATE_TIME: &str = "2018-19-12T22:20:32.000Z";

/// The `PAYPAL-CERT-URL` the fake's deliveries carry (and its verification demands).
pub const CERT_URL: &str =
    "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77";

/// The `PAYPAL-AUTH-ALGO` the fake's deliveries carry.
pub const AUTH_ALGO: &str = "SHA256withRSA";

/// Seconds a token lives unless changed with [`FakePayPal::set_token_lifetime`] (PayPal's usual).
pub const DEFAULT_TOKEN_LIFETIME_SECS: u64 = 32_400;

/// A subscription as the fake recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakePayPalSubscription {
    /// `I-…`.
    pub id: String,
    /// `P-…`.
    pub plan_id: String,
    /// `custom_id`.
    pub custom_id: Option<String>,
    /// `subscriber.email_address`.
    pub email: Option<String>,
    /// `application_context.return_url`.
    pub return_url: Option<String>,
    /// `application_context.cancel_url`.
    pub cancel_url: Option<String>,
    /// The `PayPal-Request-Id` it was created with.
    pub request_id: Option<String>,
    /// `APPROVAL_PENDING` until an event builder moves it.
    pub status: String,
}

struct State {
    base_url: Url,
    client_id: String,
    client_secret: String,
    webhook_id: String,
    signing_key: String,
    token_lifetime: Duration,
    tokens: HashMap<String, Instant>,
    plans: Vec<String>,
    subscriptions: Vec<FakePayPalSubscription>,
    /// Sale id → (subscription, total as written, currency).
    sales: HashMap<String, (String, String, String)>,
    /// Verification answers this status instead of checking, when set.
    verify_failure: Option<StatusCode>,
    /// Events carry the simulator's impossible `create_time`.
    simulator_dates: bool,
    /// `PayPal-Request-Id` → (the body first sent, the status and response given).
    request_ids: HashMap<String, (Bytes, StatusCode, Value)>,
    tokens_issued: usize,
    calls: HashMap<String, usize>,
}

impl State {
    fn live_token(&self, headers: &HeaderMap) -> bool {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .and_then(|token| self.tokens.get(token))
            .is_some_and(|expires| Instant::now() < *expires)
    }

    fn signature(
        &self,
        transmission_id: &str,
        time: &str,
        webhook_id: &str,
        body: &[u8],
    ) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.signing_key.as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(
            format!(
                "{transmission_id}|{time}|{webhook_id}|{}",
                crc32fast::hash(body)
            )
            .as_bytes(),
        );
        BASE64.encode(mac.finalize().into_bytes())
    }
}

type Shared = Arc<Mutex<State>>;

fn lock(state: &Shared) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The running fake PayPal.
pub struct FakePayPal {
    addr: SocketAddr,
    state: Shared,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for FakePayPal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakePayPal")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for FakePayPal {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakePayPal {
    /// Binds 127.0.0.1 on a free port and serves the fake from a tokio task, with fresh random
    /// credentials, webhook id and signing key.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake paypal port");
        let addr = listener.local_addr().expect("the fake paypal address");
        let state = Arc::new(Mutex::new(State {
            base_url: Url::parse(&format!("http://{addr}/")).expect("a local URL"),
            client_id: format!("A{}", ids::alphanumeric(79)),
            client_secret: format!("E{}", ids::alphanumeric(79)),
            webhook_id: ids::upper(24),
            signing_key: ids::alphanumeric(48),
            token_lifetime: Duration::from_secs(DEFAULT_TOKEN_LIFETIME_SECS),
            tokens: HashMap::new(),
            plans: Vec::new(),
            subscriptions: Vec::new(),
            sales: HashMap::new(),
            verify_failure: None,
            simulator_dates: false,
            request_ids: HashMap::new(),
            tokens_issued: 0,
            calls: HashMap::new(),
        }));
        let app = Router::new()
            .route("/v1/oauth2/token", post(token))
            .route("/v1/notifications/verify-webhook-signature", post(verify))
            .route("/v1/billing/subscriptions", post(create_subscription))
            .route("/v1/billing/subscriptions/{id}", get(show_subscription))
            .fallback(unknown_route)
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("the fake paypal server");
        });
        Self { addr, state, task }
    }

    /// The base URL standing in for `https://api-m.paypal.com`.
    pub fn base_url(&self) -> Url {
        lock(&self.state).base_url.clone()
    }

    /// The REST app's client id.
    pub fn client_id(&self) -> String {
        lock(&self.state).client_id.clone()
    }

    /// The REST app's secret.
    pub fn client_secret(&self) -> String {
        lock(&self.state).client_secret.clone()
    }

    /// The id of the webhook deliveries are signed for.
    pub fn webhook_id(&self) -> String {
        lock(&self.state).webhook_id.clone()
    }

    /// Registers a plan (`P-…`) subscriptions may use.
    pub fn add_plan(&self, plan_id: &str) {
        lock(&self.state).plans.push(plan_id.to_owned());
    }

    /// The `expires_in` of tokens issued from now on.
    pub fn set_token_lifetime(&self, seconds: u64) {
        lock(&self.state).token_lifetime = Duration::from_secs(seconds);
    }

    /// Makes every token issued so far invalid (as if they expired early): the next call with
    /// one gets 401.
    pub fn revoke_tokens(&self) {
        lock(&self.state).tokens.clear();
    }

    /// Tokens issued so far.
    pub fn tokens_issued(&self) -> usize {
        lock(&self.state).tokens_issued
    }

    /// Verification postbacks received, refused ones included.
    pub fn verify_calls(&self) -> usize {
        self.calls(routes::VERIFY)
    }

    /// Requests that reached a route (see [`routes`]), refused ones included; unknown routes
    /// count under `"METHOD /path"` as requested.
    pub fn calls(&self, route: &str) -> usize {
        lock(&self.state).calls.get(route).copied().unwrap_or(0)
    }

    /// Every subscription created, oldest first.
    pub fn subscriptions(&self) -> Vec<FakePayPalSubscription> {
        lock(&self.state).subscriptions.clone()
    }

    /// An `ACTIVE` subscription made outside Usher (before it was installed, say) for `plan_id`,
    /// paid by `email`; returns its id.
    pub fn add_subscription(&self, plan_id: &str, email: &str) -> String {
        let id = format!("I-{}", ids::upper(12));
        lock(&self.state)
            .subscriptions
            .push(FakePayPalSubscription {
                id: id.clone(),
                plan_id: plan_id.to_owned(),
                custom_id: None,
                email: Some(email.to_owned()),
                return_url: None,
                cancel_url: None,
                request_id: None,
                status: "ACTIVE".into(),
            });
        id
    }

    /// From now on, verification answers `status` (a 4xx as PayPal refuses a bad request or a
    /// wrong `webhook_id`, a 5xx as PayPal failing) instead of checking; `None` checks again.
    pub fn fail_verification(&self, status: Option<StatusCode>) {
        lock(&self.state).verify_failure = status;
    }

    /// From now on, events carry the `create_time` PayPal's webhook simulator sends
    /// ([`SIMULATOR_CREATE_TIME`], month 19).
    pub fn send_simulator_dates(&self, on: bool) {
        lock(&self.state).simulator_dates = on;
    }

    /// A webhook delivery of `event` as PayPal sends it: the body and the five `PAYPAL-*`
    /// headers, signed for the configured webhook id.
    pub fn signed(&self, event: &Value) -> (Vec<u8>, HeaderMap) {
        let body = serde_json::to_vec(event).expect("an event serialises");
        let state = lock(&self.state);
        let transmission_id = uuid::Uuid::new_v4().to_string();
        let time = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
        let signature = state.signature(&transmission_id, &time, &state.webhook_id, &body);
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("paypal-auth-algo", AUTH_ALGO.to_owned()),
            ("paypal-cert-url", CERT_URL.to_owned()),
            ("paypal-transmission-id", transmission_id),
            ("paypal-transmission-sig", signature),
            ("paypal-transmission-time", time),
        ] {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_str(&value).expect("a header value"),
            );
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        (body, headers)
    }

    /// A `BILLING.SUBSCRIPTION.*` event (`ACTIVATED`, `CANCELLED`, `SUSPENDED`, `EXPIRED`…) for a
    /// subscription created through the fake; the fake's subscription takes the matching status.
    pub fn event_subscription(
        &self,
        event_type: &str,
        subscription_id: &str,
        next_billing_time: Option<DateTime<Utc>>,
    ) -> Value {
        let status = match event_type {
            "BILLING.SUBSCRIPTION.ACTIVATED" | "BILLING.SUBSCRIPTION.RE-ACTIVATED" => "ACTIVE",
            "BILLING.SUBSCRIPTION.CANCELLED" => "CANCELLED",
            "BILLING.SUBSCRIPTION.SUSPENDED" => "SUSPENDED",
            "BILLING.SUBSCRIPTION.EXPIRED" => "EXPIRED",
            _ => "APPROVAL_PENDING",
        };
        let mut state = lock(&self.state);
        let base_url = state.base_url.clone();
        let subscription = state
            .subscriptions
            .iter_mut()
            .find(|s| s.id == subscription_id)
            .expect("event_subscription: unknown subscription");
        status.clone_into(&mut subscription.status);
        let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
        let resource = json!({
            "id": subscription.id,
            "plan_id": subscription.plan_id,
            "custom_id": subscription.custom_id,
            "status": status,
            "status_update_time": now,
            "quantity": "1",
            "start_time": now,
            "create_time": now,
            "update_time": now,
            "plan_overridden": false,
            "shipping_amount": {"currency_code": "USD", "value": "0.0"},
            "subscriber": {
                "email_address": subscription.email,
                "payer_id": ids::upper(13),
                "name": {"given_name": "Test", "surname": "Buyer"},
            },
            "billing_info": {
                "outstanding_balance": {"currency_code": "USD", "value": "0.0"},
                "cycle_executions": [],
                "next_billing_time": next_billing_time
                    .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
                "failed_payments_count": 0,
            },
            "links": [{
                "href": format!("{base_url}v1/billing/subscriptions/{}", subscription.id),
                "rel": "self", "method": "GET",
            }],
        });
        webhook_event(
            event_type,
            "subscription",
            "2.0",
            &resource,
            state.simulator_dates,
        )
    }

    /// `PAYMENT.SALE.COMPLETED` for one billing cycle of a subscription: `total` as PayPal writes
    /// it (`"10.00"`).
    pub fn event_sale_completed(
        &self,
        subscription_id: &str,
        total: &str,
        currency: &str,
    ) -> Value {
        let mut state = lock(&self.state);
        assert!(
            state.subscriptions.iter().any(|s| s.id == subscription_id),
            "event_sale_completed: unknown subscription"
        );
        let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
        let sale_id = ids::upper(17);
        let resource = json!({
            "id": sale_id,
            "state": "completed",
            "amount": {"total": total, "currency": currency, "details": {"subtotal": total}},
            "payment_mode": "INSTANT_TRANSFER",
            "protection_eligibility": "ELIGIBLE",
            "transaction_fee": {"value": "0.59", "currency": currency},
            "billing_agreement_id": subscription_id,
            "custom": "",
            "create_time": now,
            "update_time": now,
            "links": [{
                "href": format!("{}v1/payments/sale/{sale_id}", state.base_url),
                "rel": "self", "method": "GET",
            }],
        });
        state.sales.insert(
            sale_id,
            (
                subscription_id.to_owned(),
                total.to_owned(),
                currency.to_owned(),
            ),
        );
        webhook_event(
            "PAYMENT.SALE.COMPLETED",
            "sale",
            "1.0",
            &resource,
            state.simulator_dates,
        )
    }

    /// `PAYMENT.SALE.REFUNDED` for a sale the fake made: a v1 refund resource naming the sale,
    /// `amount` (as PayPal writes it, e.g. `"8.00"`; the resource carries it negative) refunded.
    pub fn event_sale_refunded(&self, sale_id: &str, amount: &str) -> Value {
        let state = lock(&self.state);
        let (_, _, currency) = state
            .sales
            .get(sale_id)
            .expect("event_sale_refunded: unknown sale")
            .clone();
        let refund_id = ids::upper(17);
        let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
        let parent = format!("PAY-{}", ids::upper(24));
        let resource = json!({
            "id": refund_id,
            "amount": {"total": format!("-{amount}"), "currency": currency},
            "state": "completed",
            "sale_id": sale_id,
            "parent_payment": parent,
            "create_time": now,
            "update_time": now,
            "links": [
                {"href": format!("{}v1/payments/refund/{refund_id}", state.base_url), "rel": "self", "method": "GET"},
                {"href": format!("{}v1/payments/payment/{parent}", state.base_url), "rel": "parent_payment", "method": "GET"},
                {"href": format!("{}v1/payments/sale/{sale_id}", state.base_url), "rel": "sale", "method": "GET"},
            ],
        });
        webhook_event(
            "PAYMENT.SALE.REFUNDED",
            "sale",
            "1.0",
            &resource,
            state.simulator_dates,
        )
    }

    /// `PAYMENT.SALE.REVERSED` for a sale the fake made (a chargeback): the resource is the
    /// sale, its whole amount written negative, with a link to the reversal's refund.
    pub fn event_sale_reversed(&self, sale_id: &str) -> Value {
        let state = lock(&self.state);
        let (_, total, currency) = state
            .sales
            .get(sale_id)
            .expect("event_sale_reversed: unknown sale")
            .clone();
        let refund_id = ids::upper(17);
        let resource = json!({
            "id": sale_id,
            "amount": {"total": format!("-{total}"), "currency": currency},
            "state": "completed",
            "create_time": Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
            "links": [{"href": format!("{}v1/payments/refund/{refund_id}", state.base_url),
                "rel": "self", "method": "GET"}],
        });
        webhook_event(
            "PAYMENT.SALE.REVERSED",
            "sale",
            "1.0",
            &resource,
            state.simulator_dates,
        )
    }

    /// `PAYMENT.CAPTURE.REFUNDED` (or, with `reversed`, `.REVERSED`) for capture `capture_id`: a
    /// v2 refund naming the capture in its `up` link, `amount` refunded this time and
    /// `total_refunded` so far.
    pub fn event_capture_refunded(
        &self,
        capture_id: &str,
        amount: &str,
        total_refunded: &str,
        currency: &str,
        reversed: bool,
    ) -> Value {
        let state = lock(&self.state);
        let refund_id = ids::upper(17);
        let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
        let money = |value: &str| json!({"currency_code": currency, "value": value});
        let resource = json!({
            "id": refund_id,
            "amount": money(amount),
            "seller_payable_breakdown": {"gross_amount": money(amount), "paypal_fee": money("0.00"),
                "net_amount": money(amount), "total_refunded_amount": money(total_refunded)},
            "status": "COMPLETED",
            "note_to_payer": if reversed { "Payment reversed" } else { "Refund" },
            "create_time": now,
            "update_time": now,
            "links": [
                {"href": format!("{}v2/payments/refunds/{refund_id}", state.base_url), "rel": "self", "method": "GET"},
                {"href": format!("{}v2/payments/captures/{capture_id}", state.base_url), "rel": "up", "method": "GET"},
            ],
        });
        let event_type = if reversed {
            "PAYMENT.CAPTURE.REVERSED"
        } else {
            "PAYMENT.CAPTURE.REFUNDED"
        };
        webhook_event(
            event_type,
            "refund",
            "2.0",
            &resource,
            state.simulator_dates,
        )
    }
}

fn webhook_event(
    event_type: &str,
    resource_type: &str,
    version: &str,
    resource: &Value,
    simulator_dates: bool,
) -> Value {
    let create_time = if simulator_dates {
        SIMULATOR_CREATE_TIME.to_owned()
    } else {
        Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
    };
    json!({
        "id": format!("WH-{}-{}", ids::upper(17), ids::upper(17)),
        "event_version": "1.0",
        "create_time": create_time,
        "resource_type": resource_type,
        "resource_version": version,
        "event_type": event_type,
        "summary": format!("{event_type} event"),
        "resource": resource,
        "links": [],
    })
}

/// PayPal's REST error body.
fn paypal_error(
    status: StatusCode,
    name: &str,
    message: &str,
    issue: Option<(&str, &str)>,
) -> Response {
    let mut body = json!({
        "name": name,
        "message": message,
        "debug_id": ids::hex(13),
        "links": [],
    });
    if let Some((field, issue)) = issue {
        body["details"] = json!([{"field": field, "location": "body", "issue": issue}]);
    }
    (status, axum::Json(body)).into_response()
}

/// PayPal's OAuth error body.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

fn invalid_token() -> Response {
    oauth_error(
        StatusCode::UNAUTHORIZED,
        "invalid_token",
        "Token signature verification failed",
    )
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

fn unsupported_media_type() -> Response {
    paypal_error(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UNSUPPORTED_MEDIA_TYPE",
        "The request payload is not supported.",
        None,
    )
}

async fn unknown_route(AxumState(state): AxumState<Shared>, method: Method, uri: Uri) -> Response {
    *lock(&state)
        .calls
        .entry(format!("{method} {}", uri.path()))
        .or_default() += 1;
    paypal_error(
        StatusCode::NOT_FOUND,
        "RESOURCE_NOT_FOUND",
        "The specified resource does not exist.",
        None,
    )
}

#[allow(clippy::needless_pass_by_value)] // axum extractors are taken by value
async fn token(AxumState(state): AxumState<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut state = lock(&state);
    *state.calls.entry(routes::TOKEN.into()).or_default() += 1;
    let credentials = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| BASE64.decode(v).ok())
        .and_then(|v| String::from_utf8(v).ok());
    let expected = format!("{}:{}", state.client_id, state.client_secret);
    if credentials.as_deref() != Some(expected.as_str()) {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client Authentication failed",
        );
    }
    let form_encoded = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let grant = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "grant_type")
        .map(|(_, v)| v.into_owned());
    if !form_encoded || grant.as_deref() != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Grant Type is NULL",
        );
    }
    let access_token = format!("A21AA{}", ids::alphanumeric(92));
    let lifetime = state.token_lifetime;
    state
        .tokens
        .insert(access_token.clone(), Instant::now() + lifetime);
    state.tokens_issued += 1;
    let body = json!({
        "scope": "https://uri.paypal.com/services/subscriptions \
                  https://api.paypal.com/v1/payments/.* \
                  https://uri.paypal.com/services/applications/webhooks",
        "access_token": access_token,
        "token_type": "Bearer",
        "app_id": "APP-80W284485P519543T",
        "expires_in": lifetime.as_secs(),
        "nonce": format!("{}{}", Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true), ids::alphanumeric(43)),
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

#[derive(Deserialize)]
struct VerifyRequest<'a> {
    auth_algo: Option<String>,
    cert_url: Option<String>,
    transmission_id: Option<String>,
    transmission_sig: Option<String>,
    transmission_time: Option<String>,
    webhook_id: Option<String>,
    #[serde(borrow)]
    webhook_event: Option<&'a RawValue>,
}

#[allow(clippy::needless_pass_by_value)] // axum extractors are taken by value
async fn verify(AxumState(state): AxumState<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut state = lock(&state);
    *state.calls.entry(routes::VERIFY.into()).or_default() += 1;
    if !state.live_token(&headers) {
        return invalid_token();
    }
    if let Some(status) = state.verify_failure {
        return if status.is_server_error() {
            paypal_error(
                status,
                "INTERNAL_SERVICE_ERROR",
                "An internal service error has occurred.",
                None,
            )
        } else {
            paypal_error(
                status,
                "VALIDATION_ERROR",
                "Invalid request - see details",
                Some(("/webhook_id", "INVALID_RESOURCE_ID")),
            )
        };
    }
    if !is_json(&headers) {
        return unsupported_media_type();
    }
    let Ok(request) = serde_json::from_slice::<VerifyRequest<'_>>(&body) else {
        return paypal_error(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "Request is not well-formed, syntactically incorrect, or violates schema.",
            Some(("/", "MALFORMED_REQUEST_JSON")),
        );
    };
    let missing = |field: &'static str| {
        paypal_error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "Invalid request - see details",
            Some((field, "MISSING_REQUIRED_PARAMETER")),
        )
    };
    let fields = [
        ("/auth_algo", &request.auth_algo),
        ("/cert_url", &request.cert_url),
        ("/transmission_id", &request.transmission_id),
        ("/transmission_sig", &request.transmission_sig),
        ("/transmission_time", &request.transmission_time),
        ("/webhook_id", &request.webhook_id),
    ];
    if let Some((field, _)) = fields.iter().find(|(_, value)| value.is_none()) {
        return missing(field);
    }
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    let (auth_algo, cert_url, id) = (
        text(&request.auth_algo),
        text(&request.cert_url),
        text(&request.transmission_id),
    );
    let (signature, time, webhook_id) = (
        text(&request.transmission_sig),
        text(&request.transmission_time),
        text(&request.webhook_id),
    );
    let Some(event) = request.webhook_event.filter(|e| e.get().starts_with('{')) else {
        return missing("/webhook_event");
    };
    let well_formed = webhook_id.len() >= 10
        && webhook_id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if !well_formed {
        return paypal_error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "Invalid request - see details",
            Some(("/webhook_id", "INVALID_PARAMETER_SYNTAX")),
        );
    }
    let expected = state.signature(&id, &time, &webhook_id, event.get().as_bytes());
    let genuine = auth_algo == AUTH_ALGO
        && cert_url == CERT_URL
        && webhook_id == state.webhook_id
        && signature == expected;
    let status = if genuine { "SUCCESS" } else { "FAILURE" };
    (
        StatusCode::OK,
        axum::Json(json!({ "verification_status": status })),
    )
        .into_response()
}

#[allow(clippy::needless_pass_by_value)] // axum extractors are taken by value
async fn create_subscription(
    AxumState(state): AxumState<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut state = lock(&state);
    *state.calls.entry(routes::SUBSCRIPTIONS.into()).or_default() += 1;
    if !state.live_token(&headers) {
        return invalid_token();
    }
    if !is_json(&headers) {
        return unsupported_media_type();
    }
    let request_id = headers
        .get("paypal-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(id) = &request_id
        && let Some((first_body, status, response)) = state.request_ids.get(id)
    {
        if *first_body == body {
            return (*status, axum::Json(response.clone())).into_response();
        }
        return paypal_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "UNPROCESSABLE_ENTITY",
            "The requested action could not be performed, semantically incorrect, or failed \
             business validation.",
            Some(("/", "DUPLICATE_REQUEST_ID")),
        );
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return paypal_error(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "Request is not well-formed, syntactically incorrect, or violates schema.",
            Some(("/", "MALFORMED_REQUEST_JSON")),
        );
    };
    let text = |pointer: &str| {
        request
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let invalid = |field: &str, issue: &str| {
        paypal_error(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "Request is not well-formed, syntactically incorrect, or violates schema.",
            Some((field, issue)),
        )
    };
    let Some(plan_id) = text("/plan_id") else {
        return invalid("/plan_id", "MISSING_REQUIRED_PARAMETER");
    };
    let custom_id = text("/custom_id");
    if custom_id.as_ref().is_some_and(|c| c.chars().count() > 127) {
        return invalid("/custom_id", "INVALID_STRING_MAX_LENGTH");
    }
    let email = text("/subscriber/email_address");
    if email.as_ref().is_some_and(|e| !e.contains('@')) {
        return invalid("/subscriber/email_address", "INVALID_PARAMETER_SYNTAX");
    }
    let return_url = text("/application_context/return_url");
    let cancel_url = text("/application_context/cancel_url");
    for (field, url) in [
        ("/application_context/return_url", &return_url),
        ("/application_context/cancel_url", &cancel_url),
    ] {
        if url.as_ref().is_some_and(|u| Url::parse(u).is_err()) {
            return invalid(field, "INVALID_PARAMETER_SYNTAX");
        }
    }
    if !state.plans.contains(&plan_id) {
        return paypal_error(
            StatusCode::NOT_FOUND,
            "RESOURCE_NOT_FOUND",
            "The specified resource does not exist.",
            Some(("/plan_id", "INVALID_RESOURCE_ID")),
        );
    }
    let subscription = FakePayPalSubscription {
        id: format!("I-{}", ids::upper(12)),
        plan_id,
        custom_id,
        email,
        return_url,
        cancel_url,
        request_id: request_id.clone(),
        status: "APPROVAL_PENDING".into(),
    };
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
    let response = json!({
        "id": subscription.id,
        "status": subscription.status,
        "status_update_time": now,
        "plan_id": subscription.plan_id,
        "custom_id": subscription.custom_id,
        "plan_overridden": false,
        "start_time": now,
        "quantity": "1",
        "create_time": now,
        "links": [
            {"href": format!("https://www.sandbox.paypal.com/webapps/billing/subscriptions?ba_token=BA-{}", ids::upper(17)),
             "rel": "approve", "method": "GET"},
            {"href": format!("{}v1/billing/subscriptions/{}", state.base_url, subscription.id),
             "rel": "edit", "method": "PATCH"},
            {"href": format!("{}v1/billing/subscriptions/{}", state.base_url, subscription.id),
             "rel": "self", "method": "GET"},
        ],
    });
    state.subscriptions.push(subscription);
    if let Some(id) = request_id {
        state
            .request_ids
            .insert(id, (body, StatusCode::CREATED, response.clone()));
    }
    (StatusCode::CREATED, axum::Json(response)).into_response()
}

#[allow(clippy::needless_pass_by_value)] // axum extractors are taken by value
async fn show_subscription(
    AxumState(state): AxumState<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut state = lock(&state);
    *state.calls.entry(routes::SUBSCRIPTION.into()).or_default() += 1;
    if !state.live_token(&headers) {
        return invalid_token();
    }
    let Some(subscription) = state.subscriptions.iter().find(|s| s.id == id) else {
        return paypal_error(
            StatusCode::NOT_FOUND,
            "RESOURCE_NOT_FOUND",
            "The specified resource does not exist.",
            Some(("subscription_id", "INVALID_RESOURCE_ID")),
        );
    };
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
    let body = json!({
        "id": subscription.id,
        "plan_id": subscription.plan_id,
        "custom_id": subscription.custom_id,
        "status": subscription.status,
        "status_update_time": now,
        "start_time": now,
        "quantity": "1",
        "subscriber": {"email_address": subscription.email, "payer_id": ids::upper(13),
            "name": {"given_name": "Test", "surname": "Buyer"}},
        "create_time": now,
        "plan_overridden": false,
        "links": [{"href": format!("{}v1/billing/subscriptions/{}", state.base_url, subscription.id),
            "rel": "self", "method": "GET"}],
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}
