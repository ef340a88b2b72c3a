//! Payments end to end on both backends: a checkout link from the fake Stripe, signed webhooks
//! through the web door, paid intervals, replays (sequential and concurrent), events out of order,
//! refused deliveries that write nothing, and a flagged subscriber who cannot subscribe.

use chrono::Duration;
use serde_json::Value;
use usher::clock::Clock as _;
use usher::config::StripeSettings;
use usher::domain::{Actor, PlanId, Provider, SubscriberId};
use usher::fakes::stripe::FakeStripe;
use usher::services::checkout::{self, CheckoutError};
use usher::services::{account, account_change};

use crate::helpers::world::{admin, banned_world, drain};
use crate::helpers::{Backend, TestApp};

const PRICE: &str = "price_standard_monthly";

async fn with_stripe(backend: Backend) -> (TestApp, FakeStripe) {
    let stripe = FakeStripe::start().await;
    stripe.add_price(PRICE, true, 800, "usd");
    let (key, secret, base) = (
        stripe.secret_key(),
        stripe.webhook_secret(),
        stripe.base_url(),
    );
    let app = TestApp::spawn_with(backend, move |s| {
        s.payments.stripe = Some(StripeSettings {
            secret_key: key.into(),
            webhook_secret: secret.into(),
            api_base_url: base,
        });
    })
    .await;
    (app, stripe)
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let mut tx = app.app.db.read().await.unwrap();
    usher::on_tx!(&mut tx, |c| sqlx::query_scalar(sql)
        .fetch_one(c)
        .await
        .unwrap())
}

/// Rows a refused delivery must not have written.
async fn payment_rows(app: &TestApp) -> (i64, i64, i64) {
    (
        count(app, "SELECT COUNT(*) FROM webhook_event").await,
        count(app, "SELECT COUNT(*) FROM payment").await,
        count(app, "SELECT COUNT(*) FROM provider_subscription").await,
    )
}

async fn deliver(app: &TestApp, body: Vec<u8>, header: &str) -> reqwest::StatusCode {
    reqwest::Client::new()
        .post(app.url("/webhooks/stripe"))
        .header("stripe-signature", header)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
}

async fn deliver_event(app: &TestApp, stripe: &FakeStripe, event: &Value) -> reqwest::StatusCode {
    let (body, header) = stripe.signed_at(event, app.clock.now().timestamp());
    deliver(app, body, &header).await
}

/// A world after a ban, with the Standard plan priced at Stripe; returns the first subscriber.
async fn subscriber_with_plan(app: &TestApp) -> SubscriberId {
    let world = banned_world(app, 2).await;
    let mut tx = app.app.db.begin().await.unwrap();
    usher::store::payments::update_plan_provider_ids(&mut tx, PlanId::new(1), Some(PRICE), None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    world.subscribers[0].0
}

/// Starts a checkout for `who` and completes it at the fake; returns (session event, sub id).
async fn checkout_completed(
    app: &TestApp,
    stripe: &FakeStripe,
    who: SubscriberId,
) -> (Value, String) {
    let url = checkout::start_checkout(
        &app.app,
        &Actor::Subscriber(who),
        who,
        PlanId::new(1),
        Provider::Stripe,
    )
    .await
    .unwrap();
    let session = stripe.sessions().pop().unwrap();
    assert!(url.as_str().contains(&session.id), "{url}");
    let event = stripe.complete_checkout(&session.id);
    let sub = event["data"]["object"]["subscription"]
        .as_str()
        .unwrap()
        .to_owned();
    (event, sub)
}

async fn paid_until(app: &TestApp, who: SubscriberId) -> Option<chrono::DateTime<chrono::Utc>> {
    account::status_of(&app.app, who)
        .await
        .unwrap()
        .unwrap()
        .paid_until
}

async fn a_checkout_then_payment_extends_once_however_often_it_is_delivered(backend: Backend) {
    let (app, stripe) = with_stripe(backend).await;
    let me = subscriber_with_plan(&app).await;
    let (completed, sub) = checkout_completed(&app, &stripe, me).await;
    let session = &stripe.sessions()[0];
    assert_eq!(
        session.client_reference_id,
        session.metadata.get("usher_ref").cloned()
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM checkout WHERE provider_ref IS NOT NULL"
        )
        .await,
        1
    );

    assert_eq!(deliver_event(&app, &stripe, &completed).await, 200);
    let now = app.clock.now();
    let invoice = stripe.event_invoice_paid(&sub, now, now + Duration::days(30));
    // 1,000 deliveries of the same invoice: half one after another, half at once.
    for _ in 0..500 {
        assert_eq!(deliver_event(&app, &stripe, &invoice).await, 200);
    }
    let (body, header) = stripe.signed_at(&invoice, now.timestamp());
    let client = reqwest::Client::new();
    let url = app.url("/webhooks/stripe");
    let results = futures::future::join_all((0..500).map(|_| {
        client
            .post(&url)
            .header("stripe-signature", &header)
            .body(body.clone())
            .send()
    }))
    .await;
    assert!(results.iter().all(|r| r.as_ref().unwrap().status() == 200));

    assert_eq!(count(&app, "SELECT COUNT(*) FROM payment").await, 1);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM payment WHERE status = 'applied'"
        )
        .await,
        1
    );
    // One month from now, exactly once (the plan's period, from max(now, end)).
    let until = paid_until(&app, me).await.unwrap();
    assert_eq!(until, usher::domain::BillingPeriod::Month.after(now));
    assert!(
        account::status_of(&app.app, me)
            .await
            .unwrap()
            .unwrap()
            .active
    );

    // A failed renewal charge warns the subscriber once (replays add nothing) and changes no
    // paid time: Stripe retries by itself.
    app.clock.advance(Duration::days(29));
    let failed = stripe.event_invoice_payment_failed(&sub, until, until + Duration::days(30));
    for _ in 0..3 {
        assert_eq!(deliver_event(&app, &stripe, &failed).await, 200);
    }
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM notification WHERE kind = 'payment_failed' AND channel = 'dm'"
        )
        .await,
        1
    );
    assert_eq!(paid_until(&app, me).await.unwrap(), until);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM payment").await, 1);

    // A renewal extends from the end, contiguous.
    let renewal = stripe.event_invoice_paid(&sub, until, until + Duration::days(30));
    assert_eq!(deliver_event(&app, &stripe, &renewal).await, 200);
    assert_eq!(
        paid_until(&app, me).await.unwrap(),
        usher::domain::BillingPeriod::Month.after(until)
    );
    drain(&app).await;
}

async fn a_renewal_before_the_activation_ends_in_the_same_interval(backend: Backend) {
    let (app, stripe) = with_stripe(backend).await;
    let me = subscriber_with_plan(&app).await;
    let (completed, sub) = checkout_completed(&app, &stripe, me).await;
    let now = app.clock.now();
    // The invoice comes first, in the old shape and without our reference: nobody to give it to
    // yet, so it waits unmatched...
    let mut invoice = stripe.event_invoice_paid_legacy(&sub, now, now + Duration::days(30));
    invoice["data"]["object"]["subscription_details"]["metadata"] = serde_json::json!({});
    invoice["data"]["object"]["metadata"] = serde_json::json!({});
    assert_eq!(deliver_event(&app, &stripe, &invoice).await, 200);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM payment WHERE status = 'unmatched'"
        )
        .await,
        1
    );
    assert_eq!(paid_until(&app, me).await, None);
    // ...and the activation links the subscription and applies it.
    assert_eq!(deliver_event(&app, &stripe, &completed).await, 200);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM payment WHERE status = 'applied'"
        )
        .await,
        1
    );
    assert_eq!(
        paid_until(&app, me).await.unwrap(),
        usher::domain::BillingPeriod::Month.after(now)
    );
}

async fn forged_stale_and_tampered_deliveries_are_refused_and_write_nothing(backend: Backend) {
    let (app, stripe) = with_stripe(backend).await;
    let me = subscriber_with_plan(&app).await;
    let (completed, _) = checkout_completed(&app, &stripe, me).await;
    let now = app.clock.now().timestamp();
    let (body, good) = stripe.signed_at(&completed, now);

    // Tampered: the body changed after signing.
    let mut tampered = body.clone();
    let at = tampered.iter().position(|b| *b == b'u').unwrap();
    tampered[at] = b'U';
    // Forged: signed with another secret.
    let forged = usher::integrations::payments::stripe::sign_header(&body, "whsec_not_ours", now);
    // Stale and far-future: 6 minutes off either way.
    let (_, stale) = stripe.signed_at(&completed, now - 360);
    let (_, future) = stripe.signed_at(&completed, now + 360);
    for (what, body, header) in [
        ("tampered", tampered, good.clone()),
        ("forged", body.clone(), forged),
        ("stale", body.clone(), stale),
        ("future", body.clone(), future),
        ("unsigned", body.clone(), String::new()),
        ("garbage header", body.clone(), "t=1,v1=zz".to_owned()),
    ] {
        assert_eq!(deliver(&app, body, &header).await, 400, "{what}");
    }
    assert_eq!(payment_rows(&app).await, (0, 0, 0));
    // The genuine one still goes through.
    assert_eq!(deliver(&app, body, &good).await, 200);
    assert_eq!(payment_rows(&app).await, (1, 0, 1));
}

async fn a_flagged_subscriber_cannot_subscribe_or_renew(backend: Backend) {
    let (app, stripe) = with_stripe(backend).await;
    let me = subscriber_with_plan(&app).await;
    account_change::set_flag(&app.app, &admin(), me, true)
        .await
        .unwrap();
    let refused = checkout::start_checkout(
        &app.app,
        &Actor::Subscriber(me),
        me,
        PlanId::new(1),
        Provider::Stripe,
    )
    .await;
    assert!(
        matches!(refused, Err(CheckoutError::Flagged)),
        "{refused:?}"
    );
    assert!(
        refused
            .unwrap_err()
            .to_string()
            .contains("must be changed before you can subscribe or renew")
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM checkout").await, 0);
    assert_eq!(stripe.total_calls(), 0, "Stripe was not asked");

    // Unflagged, a plan without a Stripe price and an unknown plan are refused by name.
    account_change::set_flag(&app.app, &admin(), me, false)
        .await
        .unwrap();
    let unknown = checkout::start_checkout(
        &app.app,
        &Actor::Subscriber(me),
        me,
        PlanId::new(99),
        Provider::Stripe,
    )
    .await;
    assert!(matches!(unknown, Err(CheckoutError::PlanNotOffered)));
    let off = checkout::start_checkout(
        &app.app,
        &Actor::Subscriber(me),
        me,
        PlanId::new(1),
        Provider::Plisio,
    )
    .await;
    assert!(matches!(off, Err(CheckoutError::ProviderOff("Plisio"))));
}

crate::on_both_backends!(
    a_checkout_then_payment_extends_once_however_often_it_is_delivered,
    a_renewal_before_the_activation_ends_in_the_same_interval,
    forged_stale_and_tampered_deliveries_are_refused_and_write_nothing,
    a_flagged_subscriber_cannot_subscribe_or_renew,
);
