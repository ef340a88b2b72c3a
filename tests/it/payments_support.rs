//! What the payment tests share: an app with Stripe, PayPal and Plisio pointed at their fakes and
//! the ban world's subscribers on a plan sold at Stripe and PayPal; signed deliveries through the
//! web door; reads of the payments, refunds and provider subscriptions as stored; and a capture
//! of the log lines Usher writes.

use std::io::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::Value;
use usher::clock::Clock as _;
use usher::config::{PayPalSettings, PlisioSettings, StripeSettings};
use usher::domain::{Actor, PlanId, Provider, SubscriberId};
use usher::fakes::paypal::FakePayPal;
use usher::fakes::plisio::FakePlisio;
use usher::fakes::stripe::FakeStripe;
use usher::services::{account, checkout};

use crate::helpers::world::{World, banned_world};
use crate::helpers::{Backend, TestApp};

/// The Standard plan's Stripe price (8 USD a month, recurring).
pub const STRIPE_PRICE: &str = "price_standard_monthly";
/// The Standard plan's PayPal plan.
pub const PAYPAL_PLAN: &str = "P-5ML4271244454362WXNWU5NQ";

/// The fakes behind one app.
pub struct Providers {
    /// Stripe.
    pub stripe: FakeStripe,
    /// PayPal.
    pub paypal: FakePayPal,
    /// Plisio.
    pub plisio: FakePlisio,
}

/// An app with all three providers on their fakes and the ban world of `n` subscribers (plan 1,
/// Standard, sold at Stripe and PayPal).
pub async fn spawn(backend: Backend, n: u64) -> (TestApp, Providers, World) {
    let stripe = FakeStripe::start().await;
    stripe.add_price(STRIPE_PRICE, true, 800, "usd");
    let paypal = FakePayPal::start().await;
    paypal.add_plan(PAYPAL_PLAN);
    let plisio = FakePlisio::start().await;
    let stripe_settings = StripeSettings {
        secret_key: stripe.secret_key().into(),
        webhook_secret: stripe.webhook_secret().into(),
        api_base_url: stripe.base_url(),
    };
    let paypal_settings = PayPalSettings {
        client_id: paypal.client_id(),
        client_secret: SecretString::from(paypal.client_secret()),
        webhook_id: paypal.webhook_id(),
        api_base_url: paypal.base_url(),
    };
    let plisio_settings = PlisioSettings {
        secret_key: SecretString::from(plisio.secret_key()),
        api_base_url: plisio.base_url(),
    };
    let app = TestApp::spawn_with(backend, move |s| {
        s.payments.stripe = Some(stripe_settings);
        s.payments.paypal = Some(paypal_settings);
        s.payments.plisio = Some(plisio_settings);
    })
    .await;
    let world = banned_world(&app, n).await;
    let mut tx = app.app.db.begin().await.unwrap();
    usher::store::payments::update_plan_provider_ids(
        &mut tx,
        PlanId::new(1),
        Some(STRIPE_PRICE),
        Some(PAYPAL_PLAN),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    (
        app,
        Providers {
            stripe,
            paypal,
            plisio,
        },
        world,
    )
}

/// POSTs a body to a webhook route with headers.
pub async fn post(
    app: &TestApp,
    path: &str,
    body: Vec<u8>,
    headers: reqwest::header::HeaderMap,
) -> StatusCode {
    reqwest::Client::new()
        .post(app.url(path))
        .headers(headers)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
}

/// A Stripe event, signed at the app's clock, through the web door.
pub async fn stripe(app: &TestApp, fakes: &Providers, event: &Value) -> StatusCode {
    let (body, header) = fakes.stripe.signed_at(event, app.clock.now().timestamp());
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("stripe-signature", header.parse().unwrap());
    headers.insert("content-type", "application/json".parse().unwrap());
    post(app, "/webhooks/stripe", body, headers).await
}

/// A PayPal event, signed by the fake, through the web door (verified with the fake PayPal).
pub async fn paypal(app: &TestApp, fakes: &Providers, event: &Value) -> StatusCode {
    let (body, headers) = fakes.paypal.signed(event);
    post(app, "/webhooks/paypal", body, headers).await
}

/// A Plisio callback body through the web door.
pub async fn plisio(app: &TestApp, body: Vec<u8>) -> StatusCode {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    post(app, "/webhooks/plisio", body, headers).await
}

/// Starts a checkout for `who` with `provider`; returns the fake's id of what it made (Stripe:
/// the session, PayPal: the subscription, Plisio: the invoice's order number).
pub async fn checkout(
    app: &TestApp,
    fakes: &Providers,
    who: SubscriberId,
    provider: Provider,
) -> String {
    checkout::start_checkout(
        &app.app,
        &Actor::Subscriber(who),
        who,
        PlanId::new(1),
        provider,
    )
    .await
    .unwrap();
    match provider {
        Provider::Stripe => fakes.stripe.sessions().pop().unwrap().id,
        Provider::Paypal => fakes.paypal.subscriptions().pop().unwrap().id,
        Provider::Plisio => fakes.plisio.invoices().pop().unwrap().order_number,
        Provider::Manual => unreachable!("no checkout for manual payments"),
    }
}

/// A completed Stripe subscription checkout for `who`: the `checkout.session.completed` event
/// and the subscription id.
pub async fn stripe_subscription(
    app: &TestApp,
    fakes: &Providers,
    who: SubscriberId,
) -> (Value, String) {
    let session = checkout(app, fakes, who, Provider::Stripe).await;
    let completed = fakes.stripe.complete_checkout(&session);
    let sub = completed["data"]["object"]["subscription"]
        .as_str()
        .unwrap()
        .to_owned();
    (completed, sub)
}

/// A number the database counts.
pub async fn count(app: &TestApp, sql: &str) -> i64 {
    let mut tx = app.app.db.read().await.unwrap();
    usher::on_tx!(&mut tx, |c| sqlx::query_scalar(sql)
        .fetch_one(c)
        .await
        .unwrap())
}

/// One payment as stored: (transaction, status, subscriber, paid from, paid to).
pub type StoredPayment = (
    String,
    String,
    Option<i64>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

/// Every payment as stored, in id order.
pub async fn payments(app: &TestApp) -> Vec<StoredPayment> {
    let mut tx = app.app.db.read().await.unwrap();
    usher::on_tx!(&mut tx, |c| sqlx::query_as(
        "SELECT provider_txn_id, status, subscriber_id, paid_from, paid_to FROM payment ORDER BY id"
    )
    .fetch_all(c)
    .await
    .unwrap())
}

/// The payment of a transaction as stored.
pub async fn payment(app: &TestApp, txn: &str) -> StoredPayment {
    payments(app)
        .await
        .into_iter()
        .find(|p| p.0 == txn)
        .unwrap_or_else(|| panic!("no payment {txn}"))
}

/// Every refund as stored: (provider's refund id, status, payment id).
pub async fn refunds(app: &TestApp) -> Vec<(String, String, Option<i64>)> {
    let mut tx = app.app.db.read().await.unwrap();
    usher::on_tx!(&mut tx, |c| sqlx::query_as(
        "SELECT provider_refund_id, status, payment_id FROM refund ORDER BY id"
    )
    .fetch_all(c)
    .await
    .unwrap())
}

/// A provider subscription's (status, renewing) once linked.
pub async fn linked(app: &TestApp, subscription: &str) -> Option<(String, bool)> {
    let mut tx = app.app.db.read().await.unwrap();
    usher::on_tx!(&mut tx, |c| sqlx::query_as(
        "SELECT status, renewing FROM provider_subscription WHERE provider_subscription_id = $1"
    )
    .bind(subscription)
    .fetch_optional(c)
    .await
    .unwrap())
}

/// The end of `who`'s paid time, as My Account shows it.
pub async fn paid_until(app: &TestApp, who: SubscriberId) -> Option<DateTime<Utc>> {
    account::status_of(&app.app, who)
        .await
        .unwrap()
        .unwrap()
        .paid_until
}

/// Whether `who` is active now.
pub async fn active(app: &TestApp, who: SubscriberId) -> bool {
    account::status_of(&app.app, who)
        .await
        .unwrap()
        .unwrap()
        .active
}

/// DMs of `kind` queued for `who`.
pub async fn dms(app: &TestApp, who: SubscriberId, kind: &str) -> Vec<Value> {
    let mut tx = app.app.db.read().await.unwrap();
    let rows: Vec<(String,)> = usher::on_tx!(&mut tx, |c| {
        sqlx::query_as(
        "SELECT detail FROM notification WHERE subscriber_id = $1 AND kind = $2 AND channel = 'dm' ORDER BY id"
    )
    .bind(who.get())
    .bind(kind)
    .fetch_all(c)
    .await
    .unwrap()
    });
    rows.into_iter()
        .map(|(d,)| serde_json::from_str(&d).unwrap())
        .collect()
}

#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Lines {
    type Writer = Lines;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Every warning and error Usher logged in this test process so far (the first call installs
/// the process-wide subscriber that records them; tests read the lines they caused by a marker).
pub fn logged() -> String {
    static LINES: OnceLock<Lines> = OnceLock::new();
    let lines = LINES.get_or_init(|| {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(lines.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other test installs a global subscriber");
        lines
    });
    let mut out = lines.clone();
    let _ = out.flush();
    String::from_utf8_lossy(
        &lines
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
    .into_owned()
}
