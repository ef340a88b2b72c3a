//! The PayPal and Plisio webhook routes end to end on both backends: deliveries verified for real
//! (PayPal by postback to the fake PayPal, Plisio by `verify_hash`), asserted through the
//! database. Activation then sale, sale before activation (in order and racing), replays
//! (sequential and concurrent), refused deliveries that write nothing, the subscription stopping,
//! Plisio's `mismatch` and `expired`, and payers nobody can be found for.

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use secrecy::SecretString;
use serde_json::{Value, json};
use usher::clock::Clock as _;
use usher::config::{PayPalSettings, PlisioSettings, StripeSettings};
use usher::domain::{Actor, BillingPeriod, PlanId, Provider, SubscriberId};
use usher::fakes::paypal::FakePayPal;
use usher::fakes::plisio::FakePlisio;
use usher::fakes::stripe::FakeStripe;
use usher::integrations::payments::plisio::sign_callback;
use usher::integrations::payments::stripe::{CheckoutRequest, StripeClient};
use usher::services::{account, checkout};

use crate::helpers::world::banned_world;
use crate::helpers::{Backend, TestApp};

const PAYPAL_PLAN: &str = "P-5ML4271244454362WXNWU5NQ";
const STRIPE_ONE_OFF: &str = "price_one_month_once";
/// The Standard plan of the test world: USD 8 a month.
const PRICE: &str = "8.00";

/// The fakes behind one app.
struct Providers {
    paypal: FakePayPal,
    plisio: FakePlisio,
    stripe: FakeStripe,
}

/// An app with PayPal, Plisio and Stripe pointed at their fakes, and the world of
/// [`banned_world`] (two subscribers on the Standard plan, which has a PayPal plan id); returns
/// the first subscriber.
async fn with_providers(backend: Backend) -> (TestApp, Providers, SubscriberId) {
    let paypal = FakePayPal::start().await;
    paypal.add_plan(PAYPAL_PLAN);
    let plisio = FakePlisio::start().await;
    let stripe = FakeStripe::start().await;
    stripe.add_price(STRIPE_ONE_OFF, false, 800, "usd");
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
    let stripe_settings = StripeSettings {
        secret_key: stripe.secret_key().into(),
        webhook_secret: stripe.webhook_secret().into(),
        api_base_url: stripe.base_url(),
    };
    let app = TestApp::spawn_with(backend, move |s| {
        s.payments.paypal = Some(paypal_settings);
        s.payments.plisio = Some(plisio_settings);
        s.payments.stripe = Some(stripe_settings);
    })
    .await;
    let world = banned_world(&app, 2).await;
    let mut tx = app.app.db.begin().await.unwrap();
    usher::store::payments::update_plan_provider_ids(
        &mut tx,
        PlanId::new(1),
        None,
        Some(PAYPAL_PLAN),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let providers = Providers {
        paypal,
        plisio,
        stripe,
    };
    (app, providers, world.subscribers[0].0)
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let mut tx = app.app.db.read().await.unwrap();
    usher::on_tx!(&mut tx, |c| sqlx::query_scalar(sql)
        .fetch_one(c)
        .await
        .unwrap())
}

/// (webhook events, payments, provider subscriptions): what a refused delivery must not write.
async fn rows(app: &TestApp) -> (i64, i64, i64) {
    (
        count(app, "SELECT COUNT(*) FROM webhook_event").await,
        count(app, "SELECT COUNT(*) FROM payment").await,
        count(app, "SELECT COUNT(*) FROM provider_subscription").await,
    )
}

/// One payment as stored.
#[derive(Debug, PartialEq, Eq, sqlx::FromRow)]
struct PaymentRow {
    subscriber_id: Option<i64>,
    plan_id: Option<i64>,
    amount_minor: i64,
    currency: String,
    status: String,
    paid_from: Option<DateTime<Utc>>,
    paid_to: Option<DateTime<Utc>>,
    reference: Option<String>,
}

async fn payments(app: &TestApp, provider: &str) -> Vec<PaymentRow> {
    const SQL: &str = "SELECT subscriber_id, plan_id, amount_minor, currency, status, paid_from, \
                       paid_to, reference FROM payment WHERE provider = $1 ORDER BY id";
    let mut tx = app.app.db.read().await.unwrap();
    usher::on_tx!(&mut tx, |c| sqlx::query_as(SQL)
        .bind(provider)
        .fetch_all(c)
        .await
        .unwrap())
}

/// A provider subscription's (subscriber, plan, status, renewing), if linked.
async fn provider_subscription(app: &TestApp, id: &str) -> Option<(i64, i64, String, bool)> {
    const SQL: &str = "SELECT subscriber_id, plan_id, status, renewing FROM provider_subscription \
                       WHERE provider_subscription_id = $1";
    let mut tx = app.app.db.read().await.unwrap();
    usher::on_tx!(&mut tx, |c| sqlx::query_as(SQL)
        .bind(id)
        .fetch_optional(c)
        .await
        .unwrap())
}

async fn paid_until(app: &TestApp, who: SubscriberId) -> Option<DateTime<Utc>> {
    account::status_of(&app.app, who)
        .await
        .unwrap()
        .unwrap()
        .paid_until
}

/// The payment an applied period of the Standard plan from `from` looks like.
fn applied(who: SubscriberId, from: DateTime<Utc>, reference: Option<&str>) -> PaymentRow {
    PaymentRow {
        subscriber_id: Some(who.get()),
        plan_id: Some(1),
        amount_minor: 800,
        currency: "USD".into(),
        status: "applied".into(),
        paid_from: Some(from),
        paid_to: Some(BillingPeriod::Month.after(from)),
        reference: reference.map(str::to_owned),
    }
}

/// A payment nobody could be found for.
fn unmatched(amount_minor: i64, reference: Option<&str>) -> PaymentRow {
    PaymentRow {
        subscriber_id: None,
        plan_id: None,
        amount_minor,
        currency: "USD".into(),
        status: "unmatched".into(),
        paid_from: None,
        paid_to: None,
        reference: reference.map(str::to_owned),
    }
}

async fn post(app: &TestApp, path: &str, body: Vec<u8>, headers: HeaderMap) -> reqwest::StatusCode {
    reqwest::Client::new()
        .post(app.url(path))
        .headers(headers)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
}

/// Sends the same delivery `n` times one after another, then `n` times at once; every answer
/// must be 200.
async fn replay(app: &TestApp, path: &str, body: &[u8], headers: &HeaderMap, n: usize) {
    for _ in 0..n {
        assert_eq!(post(app, path, body.to_vec(), headers.clone()).await, 200);
    }
    let client = reqwest::Client::new();
    let url = app.url(path);
    let answers = futures::future::join_all((0..n).map(|_| {
        client
            .post(&url)
            .headers(headers.clone())
            .body(body.to_vec())
            .send()
    }))
    .await;
    for answer in answers {
        assert_eq!(answer.unwrap().status(), 200);
    }
}

fn json_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    headers
}

/// Starts a checkout for `who` with `provider`; returns our reference (the fake's last
/// subscription's `custom_id` or invoice's `order_number`) and the provider's id.
async fn start(
    app: &TestApp,
    fakes: &Providers,
    who: SubscriberId,
    provider: Provider,
) -> (String, String) {
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
        Provider::Paypal => {
            let sub = fakes.paypal.subscriptions().pop().unwrap();
            (sub.custom_id.unwrap(), sub.id)
        }
        Provider::Plisio => {
            let invoice = fakes.plisio.invoices().pop().unwrap();
            (invoice.order_number, invoice.txn_id)
        }
        _ => unreachable!("PayPal and Plisio only"),
    }
}

async fn paypal(app: &TestApp, fakes: &Providers, event: &Value) -> reqwest::StatusCode {
    let (body, headers) = fakes.paypal.signed(event);
    post(app, "/webhooks/paypal", body, headers).await
}

async fn plisio(app: &TestApp, body: Vec<u8>) -> reqwest::StatusCode {
    post(app, "/webhooks/plisio", body, json_headers()).await
}

async fn a_paypal_activation_links_and_its_sale_pays_one_period_however_often_delivered(
    backend: Backend,
) {
    let (app, fakes, me) = with_providers(backend).await;
    let (reference, sub) = start(&app, &fakes, me, Provider::Paypal).await;
    let activated = fakes
        .paypal
        .event_subscription("BILLING.SUBSCRIPTION.ACTIVATED", &sub, None);
    assert_eq!(activated["resource"]["custom_id"], json!(reference));
    let (activation_body, activation_headers) = fakes.paypal.signed(&activated);
    assert_eq!(
        post(
            &app,
            "/webhooks/paypal",
            activation_body.clone(),
            activation_headers.clone()
        )
        .await,
        200
    );
    assert_eq!(
        provider_subscription(&app, &sub).await,
        Some((me.get(), 1, "active".into(), true))
    );
    assert_eq!(payments(&app, "paypal").await, vec![]);

    let now = app.clock.now();
    let sale = fakes.paypal.event_sale_completed(&sub, PRICE, "USD");
    assert_eq!(sale["resource"]["billing_agreement_id"], json!(sub));
    let (sale_body, sale_headers) = fakes.paypal.signed(&sale);
    assert_eq!(
        post(
            &app,
            "/webhooks/paypal",
            sale_body.clone(),
            sale_headers.clone()
        )
        .await,
        200
    );
    let once = vec![applied(me, now, None)];
    assert_eq!(payments(&app, "paypal").await, once);
    assert_eq!(
        paid_until(&app, me).await,
        Some(BillingPeriod::Month.after(now))
    );
    assert_eq!(rows(&app).await, (2, 1, 1));

    // The same deliveries again, 50 one after another and 50 at once each: nothing changes.
    replay(&app, "/webhooks/paypal", &sale_body, &sale_headers, 50).await;
    replay(
        &app,
        "/webhooks/paypal",
        &activation_body,
        &activation_headers,
        50,
    )
    .await;
    assert_eq!(payments(&app, "paypal").await, once);
    assert_eq!(rows(&app).await, (2, 1, 1));
    assert_eq!(
        provider_subscription(&app, &sub).await,
        Some((me.get(), 1, "active".into(), true))
    );
    assert_eq!(
        paid_until(&app, me).await,
        Some(BillingPeriod::Month.after(now))
    );
    // Every delivery was verified with PayPal, with one token.
    assert_eq!(fakes.paypal.verify_calls(), 2 + 4 * 50);
    assert_eq!(fakes.paypal.tokens_issued(), 1);
}

async fn a_paypal_sale_before_its_activation_ends_in_the_same_interval(backend: Backend) {
    let (app, fakes, me) = with_providers(backend).await;
    let (reference, sub) = start(&app, &fakes, me, Provider::Paypal).await;
    let now = app.clock.now();
    let sale = fakes.paypal.event_sale_completed(&sub, PRICE, "USD");
    assert_eq!(paypal(&app, &fakes, &sale).await, 200);
    // Nobody to give it to yet: it waits, unmatched, and nobody's time moved.
    assert_eq!(payments(&app, "paypal").await, vec![unmatched(800, None)]);
    assert_eq!(paid_until(&app, me).await, None);
    assert_eq!(provider_subscription(&app, &sub).await, None);

    let activated = fakes
        .paypal
        .event_subscription("BILLING.SUBSCRIPTION.ACTIVATED", &sub, None);
    assert_eq!(activated["resource"]["custom_id"], json!(reference));
    assert_eq!(paypal(&app, &fakes, &activated).await, 200);
    assert_eq!(payments(&app, "paypal").await, vec![applied(me, now, None)]);
    assert_eq!(
        paid_until(&app, me).await,
        Some(BillingPeriod::Month.after(now))
    );
    assert_eq!(
        provider_subscription(&app, &sub).await,
        Some((me.get(), 1, "active".into(), true))
    );
}

async fn a_paypal_sale_racing_its_activation_is_applied_whichever_commits_first(backend: Backend) {
    let (app, fakes, me) = with_providers(backend).await;
    let start_at = app.clock.now();
    let rounds: u32 = 10;
    for _ in 0..rounds {
        let (_, sub) = start(&app, &fakes, me, Provider::Paypal).await;
        let sale = fakes.paypal.event_sale_completed(&sub, PRICE, "USD");
        let activated =
            fakes
                .paypal
                .event_subscription("BILLING.SUBSCRIPTION.ACTIVATED", &sub, None);
        let (a, b) = tokio::join!(
            paypal(&app, &fakes, &sale),
            paypal(&app, &fakes, &activated)
        );
        assert_eq!(a, 200);
        assert_eq!(b, 200);
    }
    let stored = payments(&app, "paypal").await;
    assert_eq!(stored.len(), usize::try_from(rounds).unwrap());
    assert!(
        stored.iter().all(|p| p.status == "applied"),
        "a sale was left unmatched beside its own activation: {stored:#?}"
    );
    assert_eq!(
        paid_until(&app, me).await,
        Some(
            start_at
                .checked_add_months(chrono::Months::new(rounds))
                .unwrap()
        )
    );
}

async fn paypal_deliveries_it_does_not_verify_get_400_and_write_nothing(backend: Backend) {
    let (app, fakes, me) = with_providers(backend).await;
    let (_, sub) = start(&app, &fakes, me, Provider::Paypal).await;
    let activated = fakes
        .paypal
        .event_subscription("BILLING.SUBSCRIPTION.ACTIVATED", &sub, None);
    let (body, headers) = fakes.paypal.signed(&activated);
    let sale = fakes.paypal.event_sale_completed(&sub, PRICE, "USD");
    let (sale_body, sale_headers) = fakes.paypal.signed(&sale);

    // Still JSON after tampering, so each of these is asked of PayPal, which answers FAILURE.
    let text = String::from_utf8(sale_body.clone()).unwrap();
    let cheaper = text.replace("\"total\":\"8.00\"", "\"total\":\"0.01\"");
    assert_ne!(cheaper, text);
    let with = |name: &'static str, value: &str| {
        let mut h = headers.clone();
        h.insert(name, value.parse().unwrap());
        h
    };
    let refused_by_paypal = [
        ("tampered body", cheaper.into_bytes(), sale_headers.clone()),
        (
            "another delivery's headers",
            sale_body.clone(),
            headers.clone(),
        ),
        (
            "another transmission id",
            body.clone(),
            with(
                "paypal-transmission-id",
                "69cd13f0-d67a-11e5-baa3-778b53f4ae55",
            ),
        ),
        (
            "forged signature",
            body.clone(),
            with("paypal-transmission-sig", "bG9uZ3NpZw=="),
        ),
        (
            "another certificate",
            body.clone(),
            with(
                "paypal-cert-url",
                "https://evil.example/v1/notifications/certs/CERT-1",
            ),
        ),
        (
            "another time",
            body.clone(),
            with("paypal-transmission-time", "2026-01-01T00:00:00Z"),
        ),
    ];
    let asked = refused_by_paypal.len();
    for (what, body, headers) in refused_by_paypal {
        assert_eq!(
            post(&app, "/webhooks/paypal", body, headers).await,
            400,
            "{what}"
        );
    }
    assert_eq!(fakes.paypal.verify_calls(), asked);
    // Refused without asking: a header missing, a body that is not JSON.
    let mut missing = headers.clone();
    missing.remove("paypal-transmission-sig");
    assert_eq!(
        post(&app, "/webhooks/paypal", body.clone(), missing).await,
        400
    );
    assert_eq!(
        post(
            &app,
            "/webhooks/paypal",
            b"not json".to_vec(),
            headers.clone()
        )
        .await,
        400
    );
    assert_eq!(fakes.paypal.verify_calls(), asked);
    assert_eq!(rows(&app).await, (0, 0, 0));
    assert_eq!(paid_until(&app, me).await, None);

    // The genuine ones still go through.
    assert_eq!(post(&app, "/webhooks/paypal", body, headers).await, 200);
    assert_eq!(
        post(&app, "/webhooks/paypal", sale_body, sale_headers).await,
        200
    );
    assert_eq!(rows(&app).await, (2, 1, 1));
}

async fn a_stopped_paypal_subscription_stops_renewing_and_keeps_the_time_paid(backend: Backend) {
    let (app, fakes, me) = with_providers(backend).await;
    let now = app.clock.now();
    let mut subs = Vec::new();
    for _ in 0..3 {
        let (_, sub) = start(&app, &fakes, me, Provider::Paypal).await;
        let activated =
            fakes
                .paypal
                .event_subscription("BILLING.SUBSCRIPTION.ACTIVATED", &sub, None);
        assert_eq!(paypal(&app, &fakes, &activated).await, 200);
        subs.push(sub);
    }
    let sale = fakes.paypal.event_sale_completed(&subs[0], PRICE, "USD");
    assert_eq!(paypal(&app, &fakes, &sale).await, 200);
    let until = Some(BillingPeriod::Month.after(now));
    assert_eq!(paid_until(&app, me).await, until);

    // Suspended, then cancelled: the status in PayPal's words, and no longer renewing.
    let suspended =
        fakes
            .paypal
            .event_subscription("BILLING.SUBSCRIPTION.SUSPENDED", &subs[0], None);
    assert_eq!(paypal(&app, &fakes, &suspended).await, 200);
    assert_eq!(
        provider_subscription(&app, &subs[0]).await,
        Some((me.get(), 1, "SUSPENDED".into(), false))
    );
    // Re-activated: renewing again (so no reminders), then suspended once more.
    let reactivated =
        fakes
            .paypal
            .event_subscription("BILLING.SUBSCRIPTION.RE-ACTIVATED", &subs[0], None);
    assert_eq!(paypal(&app, &fakes, &reactivated).await, 200);
    assert_eq!(
        provider_subscription(&app, &subs[0]).await,
        Some((me.get(), 1, "ACTIVE".into(), true))
    );
    let again = fakes
        .paypal
        .event_subscription("BILLING.SUBSCRIPTION.SUSPENDED", &subs[0], None);
    assert_eq!(paypal(&app, &fakes, &again).await, 200);
    assert_eq!(
        provider_subscription(&app, &subs[0]).await,
        Some((me.get(), 1, "SUSPENDED".into(), false))
    );
    let cancelled =
        fakes
            .paypal
            .event_subscription("BILLING.SUBSCRIPTION.CANCELLED", &subs[0], None);
    let (body, headers) = fakes.paypal.signed(&cancelled);
    assert_eq!(
        post(&app, "/webhooks/paypal", body.clone(), headers.clone()).await,
        200
    );
    replay(&app, "/webhooks/paypal", &body, &headers, 10).await;
    assert_eq!(
        provider_subscription(&app, &subs[0]).await,
        Some((me.get(), 1, "CANCELLED".into(), false))
    );
    // Each event touches its own subscription only.
    let cancelled =
        fakes
            .paypal
            .event_subscription("BILLING.SUBSCRIPTION.CANCELLED", &subs[1], None);
    assert_eq!(paypal(&app, &fakes, &cancelled).await, 200);
    assert_eq!(
        provider_subscription(&app, &subs[1]).await,
        Some((me.get(), 1, "CANCELLED".into(), false))
    );
    let expired = fakes
        .paypal
        .event_subscription("BILLING.SUBSCRIPTION.EXPIRED", &subs[2], None);
    assert_eq!(paypal(&app, &fakes, &expired).await, 200);
    assert_eq!(
        provider_subscription(&app, &subs[2]).await,
        Some((me.get(), 1, "EXPIRED".into(), false))
    );

    // The time already paid is honoured.
    assert_eq!(paid_until(&app, me).await, until);
    assert!(
        account::status_of(&app.app, me)
            .await
            .unwrap()
            .unwrap()
            .active
    );
    assert_eq!(payments(&app, "paypal").await, vec![applied(me, now, None)]);
}

async fn a_completed_plisio_invoice_pays_one_period_however_often_delivered(backend: Backend) {
    let (app, fakes, me) = with_providers(backend).await;
    let (order, _) = start(&app, &fakes, me, Provider::Plisio).await;
    let now = app.clock.now();
    let completed = fakes.plisio.callback(&order, "completed");
    assert_eq!(plisio(&app, completed.clone()).await, 200);
    let once = vec![applied(me, now, Some(&order))];
    assert_eq!(payments(&app, "plisio").await, once);
    assert_eq!(
        paid_until(&app, me).await,
        Some(BillingPeriod::Month.after(now))
    );

    replay(&app, "/webhooks/plisio", &completed, &json_headers(), 50).await;
    assert_eq!(payments(&app, "plisio").await, once);
    assert_eq!(rows(&app).await, (1, 1, 0));
    assert_eq!(
        paid_until(&app, me).await,
        Some(BillingPeriod::Month.after(now))
    );
}

/// Plisio's `mismatch` is an overpaid invoice, which counts as paid (`PlisioStatus::is_paid`):
/// one period at the invoice's price, once per invoice whatever else it was called back with.
/// `expired` (and the statuses before payment) are recorded as events and change nothing; an
/// invoice paid after it expired is still paid.
async fn plisio_mismatch_pays_like_completed_and_expired_changes_nothing(backend: Backend) {
    let (app, fakes, me) = with_providers(backend).await;
    let now = app.clock.now();

    // An invoice overpaid: mismatch pays it; a later `completed` for it adds nothing.
    let (overpaid, _) = start(&app, &fakes, me, Provider::Plisio).await;
    for status in ["new", "pending"] {
        assert_eq!(
            plisio(&app, fakes.plisio.callback(&overpaid, status)).await,
            200
        );
    }
    assert_eq!(rows(&app).await, (2, 0, 0));
    let mismatch = fakes.plisio.callback(&overpaid, "mismatch");
    assert_eq!(plisio(&app, mismatch.clone()).await, 200);
    replay(&app, "/webhooks/plisio", &mismatch, &json_headers(), 10).await;
    assert_eq!(
        plisio(&app, fakes.plisio.callback(&overpaid, "completed")).await,
        200
    );
    let first = applied(me, now, Some(&overpaid));
    assert_eq!(payments(&app, "plisio").await, vec![first]);
    assert_eq!(rows(&app).await, (4, 1, 0));
    let until = BillingPeriod::Month.after(now);
    assert_eq!(paid_until(&app, me).await, Some(until));

    // An invoice left to expire: the event is kept, nothing else moves.
    let (late, _) = start(&app, &fakes, me, Provider::Plisio).await;
    let expired = fakes.plisio.callback(&late, "expired");
    assert_eq!(plisio(&app, expired.clone()).await, 200);
    replay(&app, "/webhooks/plisio", &expired, &json_headers(), 10).await;
    assert_eq!(rows(&app).await, (5, 1, 0));
    assert_eq!(paid_until(&app, me).await, Some(until));
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM webhook_event WHERE provider = 'plisio' AND event_type = 'expired'"
        )
        .await,
        1
    );

    // Paid after all: that counts, from the end of the time already paid.
    assert_eq!(
        plisio(&app, fakes.plisio.callback(&late, "completed")).await,
        200
    );
    let stored = payments(&app, "plisio").await;
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[1], applied(me, until, Some(&late)));
    assert_eq!(
        paid_until(&app, me).await,
        Some(BillingPeriod::Month.after(until))
    );
}

async fn plisio_callbacks_with_a_bad_verify_hash_get_400_and_write_nothing(backend: Backend) {
    let (app, fakes, me) = with_providers(backend).await;
    let (order, _) = start(&app, &fakes, me, Provider::Plisio).await;
    let genuine = fakes.plisio.callback(&order, "completed");
    let text = String::from_utf8(genuine.clone()).unwrap();

    let tampered = text.replace("\"8.00\"", "\"0.01\"");
    assert_ne!(tampered, text);
    let (unsigned, _) = text.rsplit_once(",\"verify_hash\":").unwrap();
    let unsigned = format!("{unsigned}}}");
    let fields: Vec<(String, Value)> = {
        let Value::Object(map) = serde_json::from_slice(&genuine).unwrap() else {
            panic!("an object");
        };
        map.into_iter()
            .filter(|(k, _)| k != "verify_hash")
            .collect()
    };
    let fields: Vec<(&str, Value)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let other_key = sign_callback(&fields, "not-the-shop-key");
    let form = format!("txn_id=1&order_number={order}&status=completed&verify_hash=00");
    for (what, body) in [
        ("tampered", tampered.into_bytes()),
        ("unsigned", unsigned.into_bytes()),
        ("signed with another key", other_key),
        ("form-encoded", form.into_bytes()),
        ("empty", Vec::new()),
    ] {
        assert_eq!(plisio(&app, body).await, 400, "{what}");
    }
    assert_eq!(rows(&app).await, (0, 0, 0));
    assert_eq!(paid_until(&app, me).await, None);

    assert_eq!(plisio(&app, genuine).await, 200);
    assert_eq!(rows(&app).await, (1, 1, 0));
}

async fn a_payer_nobody_can_be_found_for_is_kept_unmatched(backend: Backend) {
    let (app, fakes, me) = with_providers(backend).await;
    let other = SubscriberId::new(me.get() + 1);

    // PayPal: a sale with no custom reference and no billing agreement.
    let (_, sub) = start(&app, &fakes, me, Provider::Paypal).await;
    let mut sale = fakes.paypal.event_sale_completed(&sub, "9.50", "USD");
    let resource = sale["resource"].as_object_mut().unwrap();
    resource.remove("billing_agreement_id");
    resource.insert("custom".into(), json!(""));
    assert_eq!(paypal(&app, &fakes, &sale).await, 200);
    assert_eq!(payments(&app, "paypal").await, vec![unmatched(950, None)]);

    // Plisio: an invoice of this shop that Usher did not make (its order number is not ours).
    let client = usher::integrations::payments::plisio::PlisioClient::new(
        fakes.plisio.base_url(),
        SecretString::from(fakes.plisio.secret_key()),
    )
    .unwrap();
    client
        .create_invoice(&usher::integrations::payments::plisio::InvoiceRequest {
            order_number: "not-ours-1".into(),
            order_name: "Something else".into(),
            source: usher::domain::Money::parse(
                "12",
                usher::domain::Currency::parse("USD").unwrap(),
            )
            .unwrap(),
            callback_url: app.app.settings.public_link("webhooks/plisio"),
            email: None,
            expire_min: None,
        })
        .await
        .unwrap();
    let completed = fakes.plisio.callback("not-ours-1", "completed");
    assert_eq!(plisio(&app, completed).await, 200);
    assert_eq!(
        payments(&app, "plisio").await,
        vec![unmatched(1200, Some("not-ours-1"))]
    );

    // Stripe: a one-off payment without our reference, by an email no subscriber has.
    let client = StripeClient::new(
        fakes.stripe.base_url(),
        SecretString::from(fakes.stripe.secret_key()),
    )
    .unwrap();
    let session = client
        .create_checkout_session(&CheckoutRequest {
            price_id: STRIPE_ONE_OFF.into(),
            recurring: false,
            usher_ref: "elsewhere-1".into(),
            customer_email: Some("stranger@example.com".into()),
            success_url: app.app.settings.public_link("account"),
            cancel_url: app.app.settings.public_link("account"),
            idempotency_key: "elsewhere-1".into(),
        })
        .await
        .unwrap();
    let mut paid = fakes.stripe.complete_checkout(&session.id);
    let object = &mut paid["data"]["object"];
    object["client_reference_id"] = Value::Null;
    object["metadata"] = json!({});
    assert_eq!(object["customer_email"], json!("stranger@example.com"));
    let (body, header) = fakes.stripe.signed_at(&paid, app.clock.now().timestamp());
    let mut headers = json_headers();
    headers.insert("stripe-signature", header.parse().unwrap());
    assert_eq!(post(&app, "/webhooks/stripe", body, headers).await, 200);
    assert_eq!(payments(&app, "stripe").await, vec![unmatched(800, None)]);

    // Kept for the admins, given to nobody.
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'payment.unmatched'"
        )
        .await,
        3
    );
    assert_eq!(paid_until(&app, me).await, None);
    assert_eq!(paid_until(&app, other).await, None);
}

/// A Plisio invoice that expired after part of it was paid bought nothing, but the money is kept
/// for the admins (with its worth in the invoice's currency); an unpaid expiry keeps nothing.
async fn a_plisio_invoice_expired_after_a_partial_payment_is_kept_for_the_admins(backend: Backend) {
    let (app, fakes, me) = with_providers(backend).await;
    let (order, txn) = start(&app, &fakes, me, Provider::Plisio).await;
    let expired = fakes
        .plisio
        .callback_expired_after_partial(&order, "0.00004115");
    assert_eq!(plisio(&app, expired.clone()).await, 200);
    replay(&app, "/webhooks/plisio", &expired, &json_headers(), 5).await;
    assert_eq!(payments(&app, "plisio").await, vec![]);
    assert_eq!(paid_until(&app, me).await, None);
    let notices = usher::services::payments::notices(&app.app).await.unwrap();
    match notices.as_slice() {
        [
            usher::services::payments::PaymentNotice::PaidInPart {
                txn_id,
                paid,
                worth,
                subscriber,
                ..
            },
        ] => {
            assert_eq!(txn_id, &txn);
            assert_eq!(paid, "0.00008230 BTC");
            // 8.00 USD × 8230 / 12345, rounded down.
            assert_eq!(worth.map(|w| w.to_string()).as_deref(), Some("5.33 USD"));
            assert_eq!(*subscriber, Some(me));
        }
        other => panic!("expected one partial payment, got {other:?}"),
    }
    let (unpaid, _) = start(&app, &fakes, me, Provider::Plisio).await;
    assert_eq!(
        plisio(&app, fakes.plisio.callback(&unpaid, "expired")).await,
        200
    );
    assert_eq!(
        usher::services::payments::notices(&app.app)
            .await
            .unwrap()
            .len(),
        1
    );
}

crate::on_both_backends!(
    a_plisio_invoice_expired_after_a_partial_payment_is_kept_for_the_admins,
    a_paypal_activation_links_and_its_sale_pays_one_period_however_often_delivered,
    a_paypal_sale_before_its_activation_ends_in_the_same_interval,
    a_paypal_sale_racing_its_activation_is_applied_whichever_commits_first,
    paypal_deliveries_it_does_not_verify_get_400_and_write_nothing,
    a_stopped_paypal_subscription_stops_renewing_and_keeps_the_time_paid,
    a_completed_plisio_invoice_pays_one_period_however_often_delivered,
    plisio_mismatch_pays_like_completed_and_expired_changes_nothing,
    plisio_callbacks_with_a_bad_verify_hash_get_400_and_write_nothing,
    a_payer_nobody_can_be_found_for_is_kept_unmatched,
);
