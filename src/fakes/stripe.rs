//! A fake of Stripe: `POST /v1/checkout/sessions`, `GET /v1/invoice_payments`, and the webhook
//! deliveries Stripe would send.
//!
//! Owns the fake's state (its secret key and webhook secret, registered prices, created sessions,
//! the subscriptions, customers, invoices and charges it made, idempotency records, call
//! counters) and the test-side API: register prices, inspect sessions, complete a checkout and
//! build the events that follow (in the `2025-03-31.basil` shape, and the older shape where it
//! differs: both invoice events for one payment, refunds of any invoice with and without
//! `charge.invoice`, a refund of a charge outside invoices, subscriptions ending on a date),
//! signed exactly as Stripe signs them.
//!
//! Rule kept: the fake is never looser than Stripe. It wants `Authorization: Bearer` with its own
//! `sk_test_…` key (401), a form-encoded body (400), the required parameters and no unknown ones
//! (400 `parameter_missing` / `parameter_unknown`), known prices whose recurrence fits the mode
//! (400 `resource_missing` / `invalid_request_error`); an `Idempotency-Key` replays the first
//! response for the same body and refuses another body (400 `idempotency_error`). Validation
//! failures are not recorded against the key, as with Stripe. Invoice payments are listed only
//! with a valid key, known parameters (400 `parameter_unknown`), a `payment[type]` beside
//! `payment[payment_intent]` (400 `parameter_missing`) and a `limit` of 1 to 100.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::RawQuery;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use url::Url;

use super::ids;
use crate::integrations::payments::stripe::sign_header;

/// The route name of the Checkout Session call, for [`FakeStripe::calls`].
pub const CHECKOUT_ROUTE: &str = "POST /v1/checkout/sessions";

/// The route name of the invoice payments list, for [`FakeStripe::calls`].
pub const INVOICE_PAYMENTS_ROUTE: &str = "GET /v1/invoice_payments";

/// Which API shape a built event takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `2025-03-31.basil` and later: the invoice's subscription under `parent`, no `invoice` on
    /// charges.
    Basil,
    /// Before basil (`2024-06-20`): `invoice.subscription`, `charge.invoice`.
    Legacy,
}

/// An invoice the fake made, as a test needs to refer to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeInvoice {
    /// `in_…`.
    pub id: String,
    /// `sub_…`.
    pub subscription: String,
    /// `ch_…` that paid it (none while unpaid).
    pub charge: Option<String>,
    /// `pi_…` that paid it.
    pub payment_intent: String,
    /// Minor units.
    pub amount: i64,
    /// Whether it was paid.
    pub paid: bool,
}

/// The API version stamped on basil-shaped events.
pub const BASIL_API_VERSION: &str = "2025-03-31.basil";

/// The API version stamped on old-shaped events (before basil).
pub const LEGACY_API_VERSION: &str = "2024-06-20";

/// A price registered with [`FakeStripe::add_price`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakePrice {
    /// `price_…`.
    pub id: String,
    /// Whether the price renews (subscription mode only).
    pub recurring: bool,
    /// Minor units.
    pub unit_amount: i64,
    /// Lower-case ISO code, as Stripe writes it.
    pub currency: String,
}

/// A Checkout Session as the fake recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeCheckoutSession {
    /// `cs_test_…`.
    pub id: String,
    /// `payment`, `subscription` or `setup`.
    pub mode: String,
    /// The price of line item 0.
    pub price_id: String,
    /// The quantity of line item 0.
    pub quantity: i64,
    /// `client_reference_id`.
    pub client_reference_id: Option<String>,
    /// `customer_email`.
    pub customer_email: Option<String>,
    /// `metadata[…]`.
    pub metadata: BTreeMap<String, String>,
    /// `subscription_data[metadata][…]`: copied onto the subscription when the checkout completes.
    pub subscription_metadata: BTreeMap<String, String>,
    /// `success_url`.
    pub success_url: String,
    /// `cancel_url`.
    pub cancel_url: Option<String>,
    /// The `Idempotency-Key` it was created with.
    pub idempotency_key: Option<String>,
    /// `cus_…`, once completed.
    pub customer: Option<String>,
    /// `sub_…`, once completed in subscription mode.
    pub subscription: Option<String>,
    /// Minor units: the price times the quantity.
    pub amount_total: i64,
    /// Lower-case ISO code.
    pub currency: String,
}

#[derive(Debug, Clone)]
struct Subscription {
    id: String,
    customer: String,
    customer_email: String,
    price: FakePrice,
    metadata: BTreeMap<String, String>,
    invoices: usize,
    latest_invoice: Option<String>,
    cancel_at: Option<i64>,
}

struct State {
    base_url: Url,
    secret_key: String,
    webhook_secret: String,
    prices: HashMap<String, FakePrice>,
    sessions: Vec<FakeCheckoutSession>,
    subscriptions: Vec<Subscription>,
    invoices: Vec<FakeInvoice>,
    /// Idempotency key → (the body first sent, the response given).
    idempotency: HashMap<String, (Bytes, Value)>,
    /// Webhook endpoints (id, url, livemode), as the Dashboard lists them.
    webhook_endpoints: Vec<(String, String, bool)>,
    calls: HashMap<String, usize>,
}

type Shared = Arc<Mutex<State>>;

fn lock(state: &Shared) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The running fake Stripe.
pub struct FakeStripe {
    addr: SocketAddr,
    state: Shared,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for FakeStripe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeStripe")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeStripe {
    /// Binds 127.0.0.1 on a free port and serves the fake from a tokio task, with a fresh random
    /// secret key and webhook secret.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake stripe port");
        let addr = listener.local_addr().expect("the fake stripe address");
        let state = Arc::new(Mutex::new(State {
            base_url: Url::parse(&format!("http://{addr}/")).expect("a local URL"),
            secret_key: format!("sk_test_{}", ids::alphanumeric(99)),
            webhook_secret: format!("whsec_{}", ids::alphanumeric(32)),
            prices: HashMap::new(),
            sessions: Vec::new(),
            subscriptions: Vec::new(),
            invoices: Vec::new(),
            idempotency: HashMap::new(),
            webhook_endpoints: Vec::new(),
            calls: HashMap::new(),
        }));
        let app = Router::new()
            .route("/v1/checkout/sessions", post(create_session))
            .route("/v1/balance", axum::routing::get(balance))
            .route(
                "/v1/webhook_endpoints",
                axum::routing::get(webhook_endpoints),
            )
            .route("/v1/invoice_payments", get(list_invoice_payments))
            .fallback(unknown_route)
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("the fake stripe server");
        });
        Self { addr, state, task }
    }

    /// The base URL standing in for `https://api.stripe.com`.
    pub fn base_url(&self) -> Url {
        lock(&self.state).base_url.clone()
    }

    /// The secret API key the fake accepts (`sk_test_…`).
    pub fn secret_key(&self) -> String {
        lock(&self.state).secret_key.clone()
    }

    /// The webhook endpoint's signing secret (`whsec_…`).
    pub fn webhook_secret(&self) -> String {
        lock(&self.state).webhook_secret.clone()
    }

    /// Adds a webhook endpoint delivering to `url`, in live mode or test mode (the fake's key is a
    /// test-mode key, so it sees only test-mode endpoints, as with Stripe); returns its id.
    pub fn add_webhook_endpoint(&self, url: &str, livemode: bool) -> String {
        let id = format!("we_{}", ids::alphanumeric(24));
        lock(&self.state)
            .webhook_endpoints
            .push((id.clone(), url.to_owned(), livemode));
        id
    }

    /// The ids of the webhook endpoints, oldest first.
    pub fn webhook_endpoint_ids(&self) -> Vec<String> {
        lock(&self.state)
            .webhook_endpoints
            .iter()
            .map(|(id, _, _)| id.clone())
            .collect()
    }

    /// Deletes a webhook endpoint, as the Dashboard does.
    pub fn remove_webhook_endpoint(&self, id: &str) {
        lock(&self.state)
            .webhook_endpoints
            .retain(|(e, _, _)| e != id);
    }

    /// Registers a price; `currency` in any case.
    pub fn add_price(&self, id: &str, recurring: bool, unit_amount: i64, currency: &str) {
        let price = FakePrice {
            id: id.to_owned(),
            recurring,
            unit_amount,
            currency: currency.to_ascii_lowercase(),
        };
        lock(&self.state).prices.insert(id.to_owned(), price);
    }

    /// Every session created, oldest first.
    pub fn sessions(&self) -> Vec<FakeCheckoutSession> {
        lock(&self.state).sessions.clone()
    }

    /// Requests that reached a route (`"POST /v1/checkout/sessions"`), refused ones included;
    /// unknown routes count under `"METHOD /path"` as requested.
    pub fn calls(&self, route: &str) -> usize {
        lock(&self.state).calls.get(route).copied().unwrap_or(0)
    }

    /// Requests that reached the fake, refused and unknown ones included.
    pub fn total_calls(&self) -> usize {
        lock(&self.state).calls.values().sum()
    }

    /// A webhook delivery of `event` signed now: the body (pretty-printed, as Stripe sends it) and
    /// the `Stripe-Signature` header.
    pub fn signed(&self, event: &Value) -> (Vec<u8>, String) {
        self.signed_at(event, Utc::now().timestamp())
    }

    /// A webhook delivery of `event` signed at unix time `t` (for stale or future signatures, or
    /// a test clock).
    pub fn signed_at(&self, event: &Value, t: i64) -> (Vec<u8>, String) {
        let body = serde_json::to_vec_pretty(event).expect("an event serialises");
        let header = sign_header(&body, &self.webhook_secret(), t);
        (body, header)
    }

    /// Completes a session as a buyer paying would: creates the customer and, in subscription
    /// mode, the subscription (carrying `subscription_data[metadata]`), and returns the
    /// `checkout.session.completed` event.
    pub fn complete_checkout(&self, session_id: &str) -> Value {
        let mut state = lock(&self.state);
        let price = {
            let session = state
                .sessions
                .iter()
                .find(|s| s.id == session_id)
                .expect("complete_checkout: unknown session");
            state.prices[&session.price_id].clone()
        };
        let customer = format!("cus_{}", ids::alphanumeric(14));
        let session_index = state
            .sessions
            .iter()
            .position(|s| s.id == session_id)
            .expect("the session exists");
        let session = &mut state.sessions[session_index];
        assert!(
            session.customer.is_none(),
            "complete_checkout: {session_id} is already complete"
        );
        session.customer = Some(customer.clone());
        let email = session
            .customer_email
            .clone()
            .unwrap_or_else(|| "buyer@example.com".into());
        if session.mode == "subscription" {
            session.subscription = Some(format!("sub_{}", ids::alphanumeric(24)));
        }
        let session = session.clone();
        if let Some(subscription) = &session.subscription {
            state.subscriptions.push(Subscription {
                id: subscription.clone(),
                customer: customer.clone(),
                customer_email: email.clone(),
                price,
                metadata: session.subscription_metadata.clone(),
                invoices: 0,
                latest_invoice: None,
                cancel_at: None,
            });
        }
        let object = json!({
            "id": session.id,
            "object": "checkout.session",
            "amount_subtotal": session.amount_total,
            "amount_total": session.amount_total,
            "cancel_url": session.cancel_url,
            "client_reference_id": session.client_reference_id,
            "created": Utc::now().timestamp() - 60,
            "currency": session.currency,
            "customer": customer,
            "customer_details": {"email": email, "name": "Test Buyer", "phone": null,
                "tax_exempt": "none", "tax_ids": []},
            "customer_email": session.customer_email,
            "expires_at": Utc::now().timestamp() + 86_340,
            "invoice": null,
            "livemode": false,
            "metadata": session.metadata,
            "mode": session.mode,
            "payment_intent": if session.mode == "payment" {
                Value::from(format!("pi_{}", ids::alphanumeric(24)))
            } else {
                Value::Null
            },
            "payment_status": "paid",
            "status": "complete",
            "subscription": session.subscription,
            "success_url": session.success_url,
            "url": null,
        });
        event("checkout.session.completed", BASIL_API_VERSION, &object)
    }

    /// `invoice.paid` for one period of a subscription, in the basil shape (subscription under
    /// `parent.subscription_details`). The first invoice of a subscription has `billing_reason`
    /// `subscription_create`, later ones `subscription_cycle`.
    pub fn event_invoice_paid(
        &self,
        subscription_id: &str,
        period_start: DateTime<Utc>,
        period_end: DateTime<Utc>,
    ) -> Value {
        let invoice = self.invoice(subscription_id, period_start, period_end, true, true);
        event("invoice.paid", BASIL_API_VERSION, &invoice)
    }

    /// `invoice.paid` in the shape of API versions before basil (`invoice.subscription`,
    /// `subscription_details`, `charge` and `payment_intent` on the invoice).
    pub fn event_invoice_paid_legacy(
        &self,
        subscription_id: &str,
        period_start: DateTime<Utc>,
        period_end: DateTime<Utc>,
    ) -> Value {
        let invoice = self.invoice(subscription_id, period_start, period_end, true, false);
        event("invoice.paid", LEGACY_API_VERSION, &invoice)
    }

    /// The same invoice as `invoice_paid` (an `invoice.paid` event) delivered as
    /// `invoice.payment_succeeded`: Stripe sends both for one payment, as separate events.
    pub fn also_payment_succeeded(&self, invoice_paid: &Value) -> Value {
        let api_version = invoice_paid["api_version"]
            .as_str()
            .unwrap_or(BASIL_API_VERSION);
        let mut succeeded = event(
            "invoice.payment_succeeded",
            api_version,
            &invoice_paid["data"]["object"],
        );
        succeeded["created"] = invoice_paid["created"].clone();
        succeeded
    }

    /// Every invoice the fake made, oldest first.
    pub fn invoices(&self) -> Vec<FakeInvoice> {
        lock(&self.state).invoices.clone()
    }

    /// `invoice.payment_failed` for one period, basil shape.
    pub fn event_invoice_payment_failed(
        &self,
        subscription_id: &str,
        period_start: DateTime<Utc>,
        period_end: DateTime<Utc>,
    ) -> Value {
        let invoice = self.invoice(subscription_id, period_start, period_end, false, true);
        event("invoice.payment_failed", BASIL_API_VERSION, &invoice)
    }

    /// `customer.subscription.updated`, basil shape (the period on the subscription item).
    /// `status` is Stripe's (`active`, `past_due`, `canceled`…).
    pub fn event_subscription_updated(
        &self,
        subscription_id: &str,
        status: &str,
        cancel_at_period_end: bool,
        current_period_end: DateTime<Utc>,
    ) -> Value {
        let object = self.subscription_object(
            subscription_id,
            status,
            cancel_at_period_end,
            current_period_end,
            None,
        );
        let mut event = event("customer.subscription.updated", BASIL_API_VERSION, &object);
        event["data"]["previous_attributes"] =
            json!({"cancel_at_period_end": !cancel_at_period_end});
        event
    }

    /// `customer.subscription.updated` for a subscription set to end on `cancel_at` (a date):
    /// still `active`, `cancel_at_period_end` false, and it will not renew past that date.
    pub fn event_subscription_cancel_at(
        &self,
        subscription_id: &str,
        cancel_at: DateTime<Utc>,
        current_period_end: DateTime<Utc>,
    ) -> Value {
        {
            let mut state = lock(&self.state);
            let subscription = state
                .subscriptions
                .iter_mut()
                .find(|s| s.id == subscription_id)
                .expect("event_subscription_cancel_at: unknown subscription");
            subscription.cancel_at = Some(cancel_at.timestamp());
        }
        let object =
            self.subscription_object(subscription_id, "active", false, current_period_end, None);
        let mut event = event("customer.subscription.updated", BASIL_API_VERSION, &object);
        event["data"]["previous_attributes"] = json!({"cancel_at": null});
        event
    }

    /// `customer.subscription.deleted`, basil shape: the subscription ended at `ended_at`.
    pub fn event_subscription_deleted(
        &self,
        subscription_id: &str,
        ended_at: DateTime<Utc>,
    ) -> Value {
        let object =
            self.subscription_object(subscription_id, "canceled", false, ended_at, Some(ended_at));
        event("customer.subscription.deleted", BASIL_API_VERSION, &object)
    }

    /// `charge.refunded` for the subscription's latest paid invoice, basil shape (no `invoice` on
    /// the charge): `amount_refunded` of the price refunded so far.
    pub fn event_charge_refunded(&self, subscription_id: &str, amount_refunded: i64) -> Value {
        let invoice = {
            let state = lock(&self.state);
            subscription(&state, subscription_id)
                .latest_invoice
                .clone()
                .expect("event_charge_refunded: no invoice was paid for this subscription")
        };
        self.event_invoice_refunded(&invoice, amount_refunded, Shape::Basil)
    }

    /// `charge.refunded` for the charge that paid `invoice_id`, in `shape` (the charge names its
    /// invoice only before basil): `amount_refunded` of it refunded so far.
    pub fn event_invoice_refunded(
        &self,
        invoice_id: &str,
        amount_refunded: i64,
        shape: Shape,
    ) -> Value {
        let state = lock(&self.state);
        let invoice = state
            .invoices
            .iter()
            .find(|i| i.id == invoice_id)
            .expect("event_invoice_refunded: unknown invoice");
        let subscription = subscription(&state, &invoice.subscription);
        let charge = invoice
            .charge
            .clone()
            .expect("event_invoice_refunded: the invoice was not paid");
        let mut object = charge_object(
            &charge,
            invoice.amount,
            amount_refunded,
            &subscription.price.currency,
            Some(&subscription.customer),
            Some(&invoice.payment_intent),
            &subscription.customer_email,
        );
        let api_version = match shape {
            Shape::Basil => BASIL_API_VERSION,
            Shape::Legacy => {
                object["invoice"] = json!(invoice.id);
                LEGACY_API_VERSION
            }
        };
        event("charge.refunded", api_version, &object)
    }

    /// `charge.refunded` (basil shape) of a charge that paid no invoice of the fake's: a payment
    /// made outside subscriptions (another product of the same Stripe account).
    pub fn event_outside_charge_refunded(&self, amount: i64, currency: &str) -> Value {
        let charge = format!("ch_{}", ids::alphanumeric(24));
        let intent = format!("pi_{}", ids::alphanumeric(24));
        let customer = format!("cus_{}", ids::alphanumeric(14));
        let object = charge_object(
            &charge,
            amount,
            amount,
            &currency.to_ascii_lowercase(),
            Some(&customer),
            Some(&intent),
            "someone@example.com",
        );
        event("charge.refunded", BASIL_API_VERSION, &object)
    }

    fn invoice(
        &self,
        subscription_id: &str,
        period_start: DateTime<Utc>,
        period_end: DateTime<Utc>,
        paid: bool,
        basil: bool,
    ) -> Value {
        let mut state = lock(&self.state);
        let index = state
            .subscriptions
            .iter()
            .position(|s| s.id == subscription_id)
            .expect("invoice event: unknown subscription");
        let charge = format!("ch_{}", ids::alphanumeric(24));
        let payment_intent = format!("pi_{}", ids::alphanumeric(24));
        let invoice_id = format!("in_{}", ids::alphanumeric(24));
        let subscription = &mut state.subscriptions[index];
        subscription.invoices += 1;
        if paid {
            subscription.latest_invoice = Some(invoice_id.clone());
        }
        let subscription = subscription.clone();
        let amount = subscription.price.unit_amount;
        state.invoices.push(FakeInvoice {
            id: invoice_id.clone(),
            subscription: subscription.id.clone(),
            charge: paid.then(|| charge.clone()),
            payment_intent: payment_intent.clone(),
            amount,
            paid,
        });
        let billing_reason = if subscription.invoices == 1 {
            "subscription_create"
        } else {
            "subscription_cycle"
        };
        let line = json!({
            "id": format!("il_{}", ids::alphanumeric(24)),
            "object": "line_item",
            "amount": amount,
            "currency": subscription.price.currency,
            "description": "1 × Plex access",
            "metadata": subscription.metadata,
            "period": {"start": period_start.timestamp(), "end": period_end.timestamp()},
            "quantity": 1,
        });
        let mut invoice = json!({
            "id": invoice_id,
            "object": "invoice",
            "amount_due": amount,
            "amount_paid": if paid { amount } else { 0 },
            "amount_remaining": if paid { 0 } else { amount },
            "attempt_count": 1,
            "billing_reason": billing_reason,
            "collection_method": "charge_automatically",
            "created": period_start.timestamp(),
            "currency": subscription.price.currency,
            "customer": subscription.customer,
            "customer_email": subscription.customer_email,
            "lines": {"object": "list", "data": [line], "has_more": false,
                "url": format!("/v1/invoices/{invoice_id}/lines")},
            "livemode": false,
            "metadata": {},
            "period_start": period_start.timestamp(),
            "period_end": period_start.timestamp(),
            "status": if paid { "paid" } else { "open" },
            "total": amount,
        });
        if basil {
            invoice["parent"] = json!({
                "type": "subscription_details",
                "quote_details": null,
                "subscription_details": {
                    "metadata": subscription.metadata,
                    "subscription": subscription.id,
                },
            });
        } else {
            invoice["subscription"] = json!(subscription.id);
            invoice["subscription_details"] = json!({"metadata": subscription.metadata});
            invoice["charge"] = if paid { json!(charge) } else { Value::Null };
            invoice["payment_intent"] = json!(payment_intent);
        }
        invoice
    }

    fn subscription_object(
        &self,
        subscription_id: &str,
        status: &str,
        cancel_at_period_end: bool,
        current_period_end: DateTime<Utc>,
        ended_at: Option<DateTime<Utc>>,
    ) -> Value {
        let state = lock(&self.state);
        let subscription = subscription(&state, subscription_id);
        let period_start = current_period_end - chrono::Duration::days(30);
        json!({
            "id": subscription.id,
            "object": "subscription",
            "cancel_at": subscription.cancel_at,
            "cancel_at_period_end": cancel_at_period_end,
            "canceled_at": ended_at.map(|t| t.timestamp()),
            "collection_method": "charge_automatically",
            "created": period_start.timestamp(),
            "currency": subscription.price.currency,
            "customer": subscription.customer,
            "ended_at": ended_at.map(|t| t.timestamp()),
            "items": {"object": "list", "has_more": false, "data": [{
                "id": format!("si_{}", ids::alphanumeric(14)),
                "object": "subscription_item",
                "current_period_start": period_start.timestamp(),
                "current_period_end": current_period_end.timestamp(),
                "price": {"id": subscription.price.id, "object": "price",
                    "currency": subscription.price.currency,
                    "unit_amount": subscription.price.unit_amount,
                    "recurring": {"interval": "month", "interval_count": 1}},
                "quantity": 1,
                "subscription": subscription.id,
            }]},
            "livemode": false,
            "metadata": subscription.metadata,
            "status": status,
        })
    }
}

fn subscription<'a>(state: &'a State, id: &str) -> &'a Subscription {
    state
        .subscriptions
        .iter()
        .find(|s| s.id == id)
        .expect("unknown subscription: complete a subscription checkout first")
}

fn event(event_type: &str, api_version: &str, object: &Value) -> Value {
    json!({
        "id": format!("evt_{}", ids::alphanumeric(24)),
        "object": "event",
        "api_version": api_version,
        "created": Utc::now().timestamp(),
        "data": {"object": object},
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null},
        "type": event_type,
    })
}

/// A Charge object as Stripe writes it in `charge.refunded` (basil shape: no `invoice`).
fn charge_object(
    charge: &str,
    amount: i64,
    amount_refunded: i64,
    currency: &str,
    customer: Option<&str>,
    payment_intent: Option<&str>,
    receipt_email: &str,
) -> Value {
    json!({
        "id": charge,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": amount_refunded,
        "balance_transaction": format!("txn_{}", ids::alphanumeric(24)),
        "captured": true,
        "created": Utc::now().timestamp(),
        "currency": currency,
        "customer": customer,
        "disputed": false,
        "livemode": false,
        "metadata": {},
        "paid": true,
        "payment_intent": payment_intent,
        "receipt_email": receipt_email,
        "refunded": amount_refunded >= amount,
        "refunds": {"object": "list", "data": [], "has_more": false,
            "url": format!("/v1/charges/{charge}/refunds")},
        "status": "succeeded",
    })
}

/// Parameters `GET /v1/invoice_payments` knows.
const INVOICE_PAYMENT_PARAMS: &[&str] = &[
    "created",
    "ending_before",
    "expand[]",
    "invoice",
    "limit",
    "payment[payment_intent]",
    "payment[payment_record]",
    "payment[type]",
    "starting_after",
    "status",
];

#[allow(clippy::needless_pass_by_value)] // axum extractors are taken by value
async fn list_invoice_payments(
    AxumState(state): AxumState<Shared>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let mut state = lock(&state);
    *state
        .calls
        .entry(INVOICE_PAYMENTS_ROUTE.into())
        .or_default() += 1;
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(state.secret_key.as_str()) {
        return stripe_error(
            StatusCode::UNAUTHORIZED,
            None,
            "Invalid API Key provided.",
            None,
        );
    }
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    if let Some((key, _)) = params
        .iter()
        .find(|(k, _)| !INVOICE_PAYMENT_PARAMS.contains(&k.as_str()))
    {
        return bad_request(
            "parameter_unknown",
            &format!("Received unknown parameter: {key}"),
            key,
        )
        .into_response();
    }
    let get = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let intent = get("payment[payment_intent]");
    if intent.is_some() && get("payment[type]").as_deref() != Some("payment_intent") {
        return bad_request(
            "parameter_missing",
            "Missing required param: payment[type].",
            "payment[type]",
        )
        .into_response();
    }
    let limit = match get("limit").map(|l| l.parse::<usize>()) {
        None => 10,
        Some(Ok(limit)) if (1..=100).contains(&limit) => limit,
        Some(_) => {
            return bad_request(
                "parameter_invalid_integer",
                "Invalid integer: limit must be between 1 and 100.",
                "limit",
            )
            .into_response();
        }
    };
    let invoice_filter = get("invoice");
    let data: Vec<Value> = state
        .invoices
        .iter()
        .filter(|i| intent.as_ref().is_none_or(|pi| *pi == i.payment_intent))
        .filter(|i| invoice_filter.as_ref().is_none_or(|id| *id == i.id))
        .take(limit)
        .map(|i| {
            let currency = state
                .subscriptions
                .iter()
                .find(|s| s.id == i.subscription)
                .map(|s| s.price.currency.clone())
                .unwrap_or_default();
            json!({
                "id": format!("inpay_{}", ids::alphanumeric(24)),
                "object": "invoice_payment",
                "amount_paid": if i.paid { Some(i.amount) } else { None },
                "amount_requested": i.amount,
                "created": Utc::now().timestamp(),
                "currency": currency,
                "invoice": i.id,
                "is_default": true,
                "livemode": false,
                "payment": {"type": "payment_intent", "payment_intent": i.payment_intent},
                "status": if i.paid { "paid" } else { "open" },
                "status_transitions": {"canceled_at": null,
                    "paid_at": if i.paid { Some(Utc::now().timestamp()) } else { None }},
            })
        })
        .collect();
    let body =
        json!({"object": "list", "url": "/v1/invoice_payments", "has_more": false, "data": data});
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// Stripe's error body.
fn stripe_error(
    status: StatusCode,
    code: Option<&str>,
    message: &str,
    param: Option<&str>,
) -> Response {
    let mut error = json!({"type": "invalid_request_error", "message": message});
    if let Some(code) = code {
        error["code"] = json!(code);
        error["doc_url"] = json!(format!("https://stripe.com/docs/error-codes/{code}"));
    }
    if let Some(param) = param {
        error["param"] = json!(param);
    }
    (status, axum::Json(json!({ "error": error }))).into_response()
}

/// A 400 the validation gives back; becomes Stripe's error body.
struct Refusal {
    code: &'static str,
    message: String,
    param: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        stripe_error(
            StatusCode::BAD_REQUEST,
            Some(self.code),
            &self.message,
            Some(&self.param),
        )
    }
}

fn bad_request(code: &'static str, message: &str, param: &str) -> Refusal {
    Refusal {
        code,
        message: message.to_owned(),
        param: param.to_owned(),
    }
}

async fn unknown_route(AxumState(state): AxumState<Shared>, method: Method, uri: Uri) -> Response {
    *lock(&state)
        .calls
        .entry(format!("{method} {}", uri.path()))
        .or_default() += 1;
    stripe_error(
        StatusCode::NOT_FOUND,
        None,
        &format!("Unrecognized request URL ({method}: {}).", uri.path()),
        None,
    )
}

/// The read-only routes' key check: the fake's own test-mode key, as a Bearer token.
#[allow(clippy::result_large_err)] // the refusal is a ready-made response; size does not matter here
fn read_key(state: &State, headers: &HeaderMap) -> Result<(), Response> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer == Some(state.secret_key.as_str()) {
        Ok(())
    } else {
        Err(stripe_error(
            StatusCode::UNAUTHORIZED,
            None,
            "Invalid API Key provided.",
            None,
        ))
    }
}

/// `GET /v1/balance`: all zero, in the key's mode (test).
async fn balance(AxumState(state): AxumState<Shared>, headers: HeaderMap) -> Response {
    let mut state = lock(&state);
    *state.calls.entry("GET /v1/balance".into()).or_default() += 1;
    if let Err(refused) = read_key(&state, &headers) {
        return refused;
    }
    let amount = json!([{"amount": 0, "currency": "usd", "source_types": {"card": 0}}]);
    axum::Json(json!({
        "object": "balance",
        "available": amount,
        "connect_reserved": [{"amount": 0, "currency": "usd"}],
        "livemode": false,
        "pending": amount,
    }))
    .into_response()
}

/// `GET /v1/webhook_endpoints`: the endpoints of the key's mode (test), newest first.
async fn webhook_endpoints(AxumState(state): AxumState<Shared>, headers: HeaderMap) -> Response {
    let mut state = lock(&state);
    *state
        .calls
        .entry("GET /v1/webhook_endpoints".into())
        .or_default() += 1;
    if let Err(refused) = read_key(&state, &headers) {
        return refused;
    }
    let data: Vec<Value> = state
        .webhook_endpoints
        .iter()
        .rev()
        .filter(|(_, _, live)| !live)
        .map(|(id, url, live)| {
            json!({
                "id": id, "object": "webhook_endpoint", "api_version": null,
                "application": null, "created": 1_767_225_600, "description": null,
                "enabled_events": ["*"], "livemode": live, "metadata": {},
                "status": "enabled", "url": url,
            })
        })
        .collect();
    axum::Json(json!({
        "object": "list", "data": data, "has_more": false, "url": "/v1/webhook_endpoints",
    }))
    .into_response()
}

/// Top-level parameters the fake knows (the part of a key before its first `[`).
const KNOWN_PARAMS: &[&str] = &[
    "allow_promotion_codes",
    "cancel_url",
    "client_reference_id",
    "customer",
    "customer_email",
    "expand",
    "line_items",
    "locale",
    "metadata",
    "mode",
    "payment_intent_data",
    "payment_method_types",
    "subscription_data",
    "success_url",
];

#[allow(clippy::needless_pass_by_value)] // axum extractors are taken by value
async fn create_session(
    AxumState(state): AxumState<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut state = lock(&state);
    *state.calls.entry(CHECKOUT_ROUTE.into()).or_default() += 1;

    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match bearer {
        None => {
            return stripe_error(
                StatusCode::UNAUTHORIZED,
                None,
                "You did not provide an API key. You need to provide your API key in the \
                 Authorization header, using Bearer auth (e.g. 'Authorization: Bearer \
                 YOUR_SECRET_KEY').",
                None,
            );
        }
        Some(key) if key != state.secret_key => {
            let tail: String = key
                .chars()
                .rev()
                .take(4)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            return stripe_error(
                StatusCode::UNAUTHORIZED,
                None,
                &format!("Invalid API Key provided: sk_test_****{tail}"),
                None,
            );
        }
        Some(_) => {}
    }
    let form_encoded = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_encoded {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            None,
            "Invalid request: the body must be application/x-www-form-urlencoded.",
            None,
        );
    }
    let idempotency_key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(key) = &idempotency_key
        && let Some((first_body, response)) = state.idempotency.get(key)
    {
        if *first_body == body {
            return (StatusCode::OK, axum::Json(response.clone())).into_response();
        }
        return stripe_error(
            StatusCode::BAD_REQUEST,
            Some("idempotency_error"),
            &format!(
                "Keys for idempotent requests can only be used with the same parameters they \
                 were first used with. Try using a key other than '{key}' if you meant to \
                 execute a different request."
            ),
            None,
        );
    }
    let params: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let session = match validate(&state, &params, idempotency_key.clone()) {
        Ok(session) => session,
        Err(refusal) => return refusal.into_response(),
    };
    let response = session_json(&session, Utc::now().timestamp());
    state.sessions.push(session);
    if let Some(key) = idempotency_key {
        state.idempotency.insert(key, (body, response.clone()));
    }
    (StatusCode::OK, axum::Json(response)).into_response()
}

fn validate(
    state: &State,
    params: &[(String, String)],
    idempotency_key: Option<String>,
) -> Result<FakeCheckoutSession, Refusal> {
    let get = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    for (key, _) in params {
        let top = key.split('[').next().unwrap_or(key);
        if !KNOWN_PARAMS.contains(&top) {
            return Err(bad_request(
                "parameter_unknown",
                &format!("Received unknown parameter: {key}"),
                key,
            ));
        }
    }
    let Some(mode) = get("mode") else {
        return Err(bad_request(
            "parameter_missing",
            "Missing required param: mode.",
            "mode",
        ));
    };
    if !matches!(mode.as_str(), "payment" | "subscription" | "setup") {
        return Err(bad_request(
            "parameter_invalid_string",
            "Invalid mode: must be one of payment, setup, or subscription",
            "mode",
        ));
    }
    let Some(success_url) = get("success_url") else {
        return Err(bad_request(
            "parameter_missing",
            "Missing required param: success_url.",
            "success_url",
        ));
    };
    for (param, value) in [
        ("success_url", Some(&success_url)),
        ("cancel_url", get("cancel_url").as_ref()),
    ] {
        if let Some(value) = value
            && Url::parse(value).is_err()
        {
            return Err(bad_request("url_invalid", "Not a valid URL", param));
        }
    }
    let metadata = prefixed(params, "metadata[");
    let subscription_metadata = prefixed(params, "subscription_data[metadata][");
    for (key, value) in metadata.iter().chain(&subscription_metadata) {
        if key.chars().count() > 40 || value.chars().count() > 500 {
            return Err(bad_request(
                "parameter_invalid_string_too_long",
                "Metadata keys are at most 40 characters and values at most 500.",
                "metadata",
            ));
        }
    }
    let has_subscription_data = params
        .iter()
        .any(|(k, _)| k.starts_with("subscription_data"));
    if has_subscription_data && mode != "subscription" {
        return Err(bad_request(
            "parameter_invalid_string",
            &format!("You can not pass `subscription_data` in `{mode}` mode."),
            "subscription_data",
        ));
    }
    if get("customer").is_some() && get("customer_email").is_some() {
        return Err(bad_request(
            "parameter_invalid_string",
            "You may only specify one of these parameters: customer, customer_email.",
            "customer",
        ));
    }
    let client_reference_id = get("client_reference_id");
    if client_reference_id
        .as_ref()
        .is_some_and(|id| id.chars().count() > 200)
    {
        return Err(bad_request(
            "parameter_invalid_string_too_long",
            "Invalid string: must be at most 200 characters",
            "client_reference_id",
        ));
    }
    let price = line_item_price(state, params, &get, &mode)?;
    let quantity = get("line_items[0][quantity]")
        .and_then(|q| q.parse::<i64>().ok())
        .filter(|q| *q > 0);
    let Some(quantity) = quantity else {
        return Err(bad_request(
            "parameter_missing",
            "Quantity is required. Add `quantity` to `line_items[0]`",
            "line_items[0][quantity]",
        ));
    };
    Ok(FakeCheckoutSession {
        id: format!("cs_test_{}", ids::alphanumeric(58)),
        mode,
        price_id: price.id.clone(),
        quantity,
        client_reference_id,
        customer_email: get("customer_email"),
        metadata,
        subscription_metadata,
        success_url,
        cancel_url: get("cancel_url"),
        idempotency_key,
        customer: None,
        subscription: None,
        amount_total: price.unit_amount * quantity,
        currency: price.currency,
    })
}

/// The price of line item 0: a registered `price`, or an inline `price_data`.
fn line_item_price(
    state: &State,
    params: &[(String, String)],
    get: &impl Fn(&str) -> Option<String>,
    mode: &str,
) -> Result<FakePrice, Refusal> {
    let price = if let Some(id) = get("line_items[0][price]") {
        state.prices.get(&id).cloned().ok_or_else(|| {
            bad_request(
                "resource_missing",
                &format!("No such price: '{id}'"),
                "line_items[0][price]",
            )
        })?
    } else if params
        .iter()
        .any(|(k, _)| k.starts_with("line_items[0][price_data]"))
    {
        let currency = get("line_items[0][price_data][currency]");
        let amount = get("line_items[0][price_data][unit_amount]").and_then(|a| a.parse().ok());
        let (Some(currency), Some(unit_amount)) = (currency, amount) else {
            return Err(bad_request(
                "parameter_missing",
                "Missing required param: line_items[0][price_data][currency] or [unit_amount].",
                "line_items[0][price_data]",
            ));
        };
        FakePrice {
            id: format!("price_{}", ids::alphanumeric(24)),
            recurring: get("line_items[0][price_data][recurring][interval]").is_some(),
            unit_amount,
            currency: currency.to_ascii_lowercase(),
        }
    } else {
        return Err(bad_request(
            "parameter_missing",
            "Missing required param: line_items.",
            "line_items",
        ));
    };
    if mode == "subscription" && !price.recurring {
        return Err(bad_request(
            "parameter_invalid_string",
            "You must provide at least one recurring price in `subscription` mode when using \
             prices.",
            "line_items[0][price]",
        ));
    }
    if mode == "payment" && price.recurring {
        return Err(bad_request(
            "parameter_invalid_string",
            "You specified `payment` mode but passed a recurring price. Either switch to \
             `subscription` mode or use only one-time prices.",
            "line_items[0][price]",
        ));
    }
    Ok(price)
}

/// `prefix` + `key]` parameters as a map (`metadata[usher_ref]` → `usher_ref`).
fn prefixed(params: &[(String, String)], prefix: &str) -> BTreeMap<String, String> {
    params
        .iter()
        .filter_map(|(k, v)| {
            let key = k.strip_prefix(prefix)?.strip_suffix(']')?;
            (!key.contains('[')).then(|| (key.to_owned(), v.clone()))
        })
        .collect()
}

fn session_json(session: &FakeCheckoutSession, now: i64) -> Value {
    json!({
        "id": session.id,
        "object": "checkout.session",
        "amount_subtotal": session.amount_total,
        "amount_total": session.amount_total,
        "cancel_url": session.cancel_url,
        "client_reference_id": session.client_reference_id,
        "created": now,
        "currency": session.currency,
        "customer": null,
        "customer_email": session.customer_email,
        "expires_at": now + 86_400,
        "livemode": false,
        "metadata": session.metadata,
        "mode": session.mode,
        "payment_status": "unpaid",
        "status": "open",
        "subscription": null,
        "success_url": session.success_url,
        "url": format!("https://checkout.stripe.com/c/pay/{}", session.id),
    })
}
