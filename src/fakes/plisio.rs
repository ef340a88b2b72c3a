//! A fake of Plisio: `GET /api/v1/invoices/new`, and the signed JSON callbacks Plisio would post.
//!
//! Owns the fake's state (the shop's secret key, created invoices, call counters) and the
//! test-side API: inspect invoices, build a callback for an invoice in any status (and one for an
//! invoice that expired after part of it was paid), carrying the fields real callbacks carry
//! (`pending_amount`, `invoice_sum`, `invoice_total_sum`, `psys_cid`, `wallet_hash`…), signed
//! with the shop's key the way the official Python SDK verifies it.
//!
//! Rule kept: the fake is never looser than Plisio. It wants its own `api_key` (401 with
//! `{"status":"error","data":{…}}` otherwise), `order_number` and `order_name`, a fiat
//! `source_currency` with a positive decimal `source_amount` (or a crypto `amount`), a valid
//! `callback_url` when one is given, and a fresh `order_number` (422 for a duplicate); errors carry
//! their message at `data.message`, as the `WooCommerce` plugin reads it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::extract::{RawQuery, State as AxumState};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use url::Url;

use super::ids;
use crate::domain::{Currency, Money};
use crate::integrations::payments::plisio::sign_callback;

/// The route name of the one API call the fake serves, for [`FakePlisio::calls`].
pub const INVOICE_ROUTE: &str = "GET /api/v1/invoices/new";

/// An invoice as the fake recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakePlisioInvoice {
    /// Plisio's id (24 hex digits).
    pub txn_id: String,
    /// `order_number`.
    pub order_number: String,
    /// `order_name`.
    pub order_name: String,
    /// `source_currency`, upper-case.
    pub source_currency: Option<String>,
    /// `source_amount`, as sent.
    pub source_amount: Option<String>,
    /// `callback_url`, as sent.
    pub callback_url: Option<String>,
    /// `email`.
    pub email: Option<String>,
    /// `expire_min`.
    pub expire_min: Option<u32>,
    /// The payment page.
    pub invoice_url: String,
}

struct State {
    base_url: Url,
    secret_key: String,
    invoices: Vec<FakePlisioInvoice>,
    calls: HashMap<String, usize>,
}

type Shared = Arc<Mutex<State>>;

fn lock(state: &Shared) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The running fake Plisio.
pub struct FakePlisio {
    addr: SocketAddr,
    state: Shared,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for FakePlisio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakePlisio")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for FakePlisio {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakePlisio {
    /// Binds 127.0.0.1 on a free port and serves the fake from a tokio task, with a fresh random
    /// secret key.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake plisio port");
        let addr = listener.local_addr().expect("the fake plisio address");
        let state = Arc::new(Mutex::new(State {
            base_url: Url::parse(&format!("http://{addr}/")).expect("a local URL"),
            secret_key: ids::alphanumeric(64),
            invoices: Vec::new(),
            calls: HashMap::new(),
        }));
        let app = Router::new()
            .route("/api/v1/invoices/new", get(create_invoice))
            .route("/api/v1/currencies", get(currencies))
            .fallback(unknown_route)
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("the fake plisio server");
        });
        Self { addr, state, task }
    }

    /// The base URL standing in for `https://api.plisio.net`.
    pub fn base_url(&self) -> Url {
        lock(&self.state).base_url.clone()
    }

    /// The shop's secret key: the `api_key` of calls and the key of callback hashes.
    pub fn secret_key(&self) -> String {
        lock(&self.state).secret_key.clone()
    }

    /// Every invoice created, oldest first.
    pub fn invoices(&self) -> Vec<FakePlisioInvoice> {
        lock(&self.state).invoices.clone()
    }

    /// Requests that reached a route (`"GET /api/v1/invoices/new"`), refused ones included;
    /// unknown routes count under `"METHOD /path"` as requested.
    pub fn calls(&self, route: &str) -> usize {
        lock(&self.state).calls.get(route).copied().unwrap_or(0)
    }

    /// The JSON callback Plisio would post for the invoice of `order_number` in `status`
    /// (`new`, `pending`, `completed`, `mismatch`, `expired`, `cancelled`, `cancelled duplicate`,
    /// `error`), with its `verify_hash`. Post it to the invoice's `callback_url`. Nothing is paid
    /// of an invoice before `completed` or `mismatch`.
    pub fn callback(&self, order_number: &str, status: &str) -> Vec<u8> {
        let paid = matches!(status, "completed" | "mismatch");
        self.callback_with(
            order_number,
            status,
            if paid { "0.00000000" } else { INVOICE_CRYPTO },
        )
    }

    /// The `expired` callback of an invoice of which only part was paid: `pending_amount` of
    /// its crypto amount ([`INVOICE_CRYPTO`]) was still to pay when it expired.
    pub fn callback_expired_after_partial(
        &self,
        order_number: &str,
        pending_amount: &str,
    ) -> Vec<u8> {
        self.callback_with(order_number, "expired", pending_amount)
    }

    fn callback_with(&self, order_number: &str, status: &str, pending_amount: &str) -> Vec<u8> {
        let state = lock(&self.state);
        let invoice = state
            .invoices
            .iter()
            .find(|i| i.order_number == order_number)
            .expect("callback: unknown order_number");
        let fields: Vec<(&str, Value)> = vec![
            ("txn_id", json!(invoice.txn_id)),
            ("ipn_type", json!("invoice")),
            ("merchant", json!("Usher test shop")),
            ("merchant_id", json!(ids::hex(24))),
            ("amount", json!(INVOICE_CRYPTO)),
            ("currency", json!("BTC")),
            ("order_number", json!(invoice.order_number)),
            ("order_name", json!(invoice.order_name)),
            (
                "confirmations",
                json!(if status == "completed" { "3" } else { "0" }),
            ),
            ("status", json!(status)),
            ("source_currency", json!(invoice.source_currency)),
            ("source_amount", json!(invoice.source_amount)),
            ("source_rate", json!("81004.12")),
            ("comment", json!("")),
            ("pending_amount", json!(pending_amount)),
            ("invoice_commission", json!("0.00000062")),
            ("invoice_sum", json!("0.00012283")),
            ("invoice_total_sum", json!(INVOICE_CRYPTO)),
            ("wallet_hash", json!(format!("bc1q{}", ids::hex(38)))),
            ("tx_urls", json!("null")),
            ("expire_utc", json!(Utc::now().timestamp() + 3600)),
            ("psys_cid", json!("BTC")),
        ];
        sign_callback(&fields, &state.secret_key)
    }
}

/// The crypto amount every invoice of the fake asks for (in BTC).
pub const INVOICE_CRYPTO: &str = "0.00012345";

fn plisio_error(status: StatusCode, name: &str, message: &str) -> Response {
    let body = json!({
        "status": "error",
        "data": {"name": name, "message": message, "code": 0, "status": status.as_u16()},
    });
    (status, axum::Json(body)).into_response()
}

async fn unknown_route(AxumState(state): AxumState<Shared>, method: Method, uri: Uri) -> Response {
    *lock(&state)
        .calls
        .entry(format!("{method} {}", uri.path()))
        .or_default() += 1;
    plisio_error(StatusCode::NOT_FOUND, "Not Found", "Page not found.")
}

#[allow(clippy::needless_pass_by_value)] // axum extractors are taken by value
/// `GET /api/v1/currencies`: the cryptocurrencies the shop accepts (read-only; needs the key).
async fn currencies(AxumState(state): AxumState<Shared>, RawQuery(query): RawQuery) -> Response {
    let mut state = lock(&state);
    *state
        .calls
        .entry("GET /api/v1/currencies".into())
        .or_default() += 1;
    let key = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "api_key")
        .map(|(_, v)| v.into_owned());
    if key.as_deref() != Some(state.secret_key.as_str()) {
        return plisio_error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Your request was made with invalid credentials.",
        );
    }
    let coin = |name: &str, cid: &str, rate: &str| {
        json!({
            "name": name, "cid": cid, "currency": cid,
            "icon": format!("https://plisio.net/img/psys-icon/{cid}.svg"),
            "rate_usd": rate, "price_usd": rate, "precision": 8, "fiat": "USD",
            "fiat_rate": rate, "min_sum_in": "0.00001", "invoice_commission_percentage": "0.5",
            "hidden": 0, "maintenance": false,
        })
    };
    axum::Json(json!({
        "status": "success",
        "data": [coin("Bitcoin", "BTC", "64000.00"), coin("Litecoin", "LTC", "70.00")],
    }))
    .into_response()
}

async fn create_invoice(
    AxumState(state): AxumState<Shared>,
    RawQuery(query): RawQuery,
) -> Response {
    let mut state = lock(&state);
    *state.calls.entry(INVOICE_ROUTE.into()).or_default() += 1;
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let get = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    if get("api_key").as_deref() != Some(state.secret_key.as_str()) {
        return plisio_error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Your request was made with invalid credentials.",
        );
    }
    let unprocessable = |message: &str| {
        plisio_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Unprocessable entity",
            message,
        )
    };
    let Some(order_number) = get("order_number") else {
        return unprocessable("order_number is required.");
    };
    let Some(order_name) = get("order_name") else {
        return unprocessable("order_name is required.");
    };
    let source_currency = get("source_currency");
    let source_amount = get("source_amount");
    match (&source_currency, &source_amount) {
        (Some(currency), Some(amount)) => {
            let Ok(currency) = Currency::parse(currency) else {
                return unprocessable("source_currency is not a supported fiat currency.");
            };
            if !Money::parse(amount, currency).is_ok_and(|m| m.minor() > 0) {
                return unprocessable("source_amount must be a positive number.");
            }
        }
        (None, None) if get("amount").is_some() => {}
        _ => {
            return unprocessable(
                "Either source_currency and source_amount or amount is required.",
            );
        }
    }
    let callback_url = get("callback_url");
    if callback_url
        .as_ref()
        .is_some_and(|u| Url::parse(u).is_err())
    {
        return unprocessable("callback_url is not a valid URL.");
    }
    let expire_min = match get("expire_min").map(|m| m.parse::<u32>()) {
        None => None,
        Some(Ok(minutes)) => Some(minutes),
        Some(Err(_)) => return unprocessable("expire_min must be an integer."),
    };
    if state
        .invoices
        .iter()
        .any(|i| i.order_number == order_number)
    {
        return unprocessable("Invoice with this order_number already exists.");
    }
    let txn_id = ids::hex(24);
    let invoice = FakePlisioInvoice {
        invoice_url: format!("https://plisio.net/invoice/{txn_id}"),
        txn_id,
        order_number,
        order_name,
        source_currency: source_currency.map(|c| c.to_ascii_uppercase()),
        source_amount,
        callback_url,
        email: get("email"),
        expire_min,
    };
    let body = json!({
        "status": "success",
        "data": {"txn_id": invoice.txn_id, "invoice_url": invoice.invoice_url},
    });
    state.invoices.push(invoice);
    (StatusCode::OK, axum::Json(body)).into_response()
}
