//! PayPal deliveries as PayPal sends them, on both databases: a sale refunded or reversed stops
//! its interval (access ends at the next sweep, the subscriber is told), a partial refund is kept
//! for the admins and changes no access, a capture's refund matches nothing of Usher's; PayPal
//! refusing to verify (a 4xx) is a 400 naming the setting to check, PayPal failing (5xx, or not
//! reachable) a 503, and neither writes anything; an absurdly nested body is refused before
//! PayPal is asked; the simulator's impossible `create_time` refuses nothing.

use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::json;
use usher::clock::Clock as _;
use usher::config::PayPalSettings;
use usher::domain::{BillingPeriod, Provider, SubscriberId};
use usher::fakes::paypal::{FakePayPal, SIMULATOR_CREATE_TIME, routes};
use usher::jobs::AppDispatch;
use usher::services::lifecycle;
use usher::services::payments::{self, PaymentNotice};

use crate::helpers::world::{banned_world, drain};
use crate::helpers::{Backend, TestApp};
use crate::payments_support::{
    PAYPAL_PLAN, Providers, active, checkout, count, dms, linked, logged, paid_until, payment,
    paypal, post, refunds, spawn, stripe, stripe_subscription,
};

/// A PayPal subscription for `who`, activated; returns its id.
async fn activated(app: &TestApp, fakes: &Providers, who: SubscriberId) -> String {
    let sub = checkout(app, fakes, who, Provider::Paypal).await;
    let event = fakes
        .paypal
        .event_subscription("BILLING.SUBSCRIPTION.ACTIVATED", &sub, None);
    assert_eq!(paypal(app, fakes, &event).await, 200);
    sub
}

/// A completed sale of 8.00 USD of `sub`; returns the sale id.
async fn sold(app: &TestApp, fakes: &Providers, sub: &str) -> String {
    let sale = fakes.paypal.event_sale_completed(sub, "8.00", "USD");
    assert_eq!(paypal(app, fakes, &sale).await, 200);
    sale["resource"]["id"].as_str().unwrap().to_owned()
}

async fn suspended_shares(app: &TestApp, who: SubscriberId) -> i64 {
    let mut tx = app.app.db.read().await.unwrap();
    usher::on_tx!(&mut tx, |c| {
        sqlx::query_scalar(
        "SELECT COUNT(*) FROM share WHERE subscriber_id = $1 AND state <> 'removed' AND suspended_at IS NOT NULL"
    )
    .bind(who.get())
    .fetch_one(c)
    .await
    .unwrap()
    })
}

async fn a_refunded_or_reversed_sale_stops_its_interval_and_access_ends_at_the_sweep(
    backend: Backend,
) {
    let (app, fakes, world) = spawn(backend, 2).await;
    let now = app.clock.now();
    let (refunded, reversed) = (world.subscribers[0].0, world.subscribers[1].0);
    let mut sales = Vec::new();
    for who in [refunded, reversed] {
        let sub = activated(&app, &fakes, who).await;
        sales.push(sold(&app, &fakes, &sub).await);
        assert_eq!(
            paid_until(&app, who).await,
            Some(BillingPeriod::Month.after(now))
        );
    }
    drain(&app).await; // The invites of the paid subscribers reach plex.tv.
    let live = app.clock.now();
    let refund = fakes.paypal.event_sale_refunded(&sales[0], "8.00");
    let reversal = fakes.paypal.event_sale_reversed(&sales[1]);
    for event in [&refund, &reversal, &refund, &reversal] {
        assert_eq!(paypal(&app, &fakes, event).await, 200);
    }
    for (i, who) in [refunded, reversed].into_iter().enumerate() {
        assert_eq!(payment(&app, &sales[i]).await.1, "refunded");
        assert_eq!(paid_until(&app, who).await, None);
        assert!(!active(&app, who).await);
        let told = dms(&app, who, "refunded").await;
        assert_eq!(told.len(), 1, "{told:?}");
        assert_eq!(
            (told[0]["full"].clone(), told[0]["reversal"].clone()),
            (json!(true), json!(i == 1))
        );
    }
    assert_eq!(refunds(&app).await.len(), 2);
    // Nothing else covers now: the next sweep takes their access.
    for who in [refunded, reversed] {
        assert_eq!(suspended_shares(&app, who).await, 0);
    }
    assert!(app.clock.now() >= live);
    let swept = lifecycle::sweep(&app.app).await.unwrap();
    assert_eq!(swept.suspended, 2, "{swept:?}");
    let dispatch = AppDispatch::new(app.app.clone());
    while app.app.queue.run_due(&dispatch).await.unwrap() > 0 {}
    for who in [refunded, reversed] {
        assert_eq!(suspended_shares(&app, who).await, 1);
    }
}

async fn a_partial_refund_is_kept_for_the_admins_and_changes_no_access(backend: Backend) {
    let (app, fakes, world) = spawn(backend, 1).await;
    let who = world.subscribers[0].0;
    let now = app.clock.now();
    let sub = activated(&app, &fakes, who).await;
    let sale = sold(&app, &fakes, &sub).await;
    let partial = fakes.paypal.event_sale_refunded(&sale, "3.00");
    assert_eq!(partial["resource"]["amount"]["total"], "-3.00");
    assert_eq!(paypal(&app, &fakes, &partial).await, 200);
    assert_eq!(paypal(&app, &fakes, &partial).await, 200);
    assert_eq!(payment(&app, &sale).await.1, "applied");
    assert_eq!(
        paid_until(&app, who).await,
        Some(BillingPeriod::Month.after(now))
    );
    assert_eq!(refunds(&app).await[0].1, "partial");
    let told = dms(&app, who, "refunded").await;
    assert_eq!(told.len(), 1);
    assert_eq!(told[0]["full"], false);
    assert_eq!(told[0]["amount"], "3.00 USD");
    let dm = app
        .app
        .templates
        .render("dms/refunded.md.j2", told[0].clone())
        .unwrap();
    assert!(
        dm.contains("PayPal refunded **3.00 USD** of your payment of **8.00 USD**")
            && dm.contains("does not change"),
        "{dm}"
    );
    assert!(matches!(
        payments::notices(&app.app).await.unwrap().as_slice(),
        [PaymentNotice::PartialRefund { .. }]
    ));
    // The rest of it goes back too: the sale is refunded whole.
    let rest = fakes.paypal.event_sale_refunded(&sale, "5.00");
    assert_eq!(paypal(&app, &fakes, &rest).await, 200);
    assert_eq!(payment(&app, &sale).await.1, "refunded");
    assert_eq!(paid_until(&app, who).await, None);
    assert!(payments::notices(&app.app).await.unwrap().is_empty());
    let whole = dms(&app, who, "refunded").await;
    let dm = app
        .app
        .templates
        .render("dms/refunded.md.j2", whole[1].clone())
        .unwrap();
    assert!(
        dm.contains("no longer counts") && dm.contains("no paid time left"),
        "{dm}"
    );

    // A capture's refund: Usher records no captures, so it matches nothing.
    let capture =
        fakes
            .paypal
            .event_capture_refunded("0JF852973C016714D", "8.00", "8.00", "USD", false);
    assert_eq!(paypal(&app, &fakes, &capture).await, 200);
    assert!(matches!(
        payments::notices(&app.app).await.unwrap().as_slice(),
        [PaymentNotice::UnmatchedRefund { .. }]
    ));
}

/// An app whose PayPal is `fake`, configured with `webhook_id`.
async fn app_with_webhook_id(backend: Backend, fake: &FakePayPal, webhook_id: &str) -> TestApp {
    let settings = PayPalSettings {
        client_id: fake.client_id(),
        client_secret: SecretString::from(fake.client_secret()),
        webhook_id: webhook_id.to_owned(),
        api_base_url: fake.base_url(),
    };
    let app = TestApp::spawn_with(backend, move |s| s.payments.paypal = Some(settings)).await;
    banned_world(&app, 1).await;
    app
}

async fn writes(app: &TestApp) -> (i64, i64) {
    (
        count(app, "SELECT COUNT(*) FROM webhook_event").await,
        count(app, "SELECT COUNT(*) FROM payment").await,
    )
}

async fn verification_refused_is_400_naming_the_setting_and_paypal_failing_is_503(
    backend: Backend,
) {
    logged();
    let fake = FakePayPal::start().await;
    fake.add_plan(PAYPAL_PLAN);
    let sub = fake.add_subscription(PAYPAL_PLAN, "nobody@example.com");
    let sale = fake.event_sale_completed(&sub, "8.00", "USD");

    // A webhook id that is not one (copied from the wrong place): PayPal answers 400.
    let misconfigured = app_with_webhook_id(backend, &fake, "wh-not-an-id").await;
    let (body, headers) = fake.signed(&sale);
    assert_eq!(
        post(
            &misconfigured,
            "/webhooks/paypal",
            body.clone(),
            headers.clone()
        )
        .await,
        StatusCode::BAD_REQUEST
    );
    assert!(
        logged()
            .lines()
            .any(|l| l.contains("payments.paypal.webhook_id") && l.contains("VALIDATION_ERROR")),
        "a log line names the setting"
    );
    assert_eq!(writes(&misconfigured).await, (0, 0));

    // PayPal refusing for its own reasons (4xx) is the same; PayPal failing (5xx) asks for a retry.
    let app = app_with_webhook_id(backend, &fake, &fake.webhook_id()).await;
    for (status, expected) in [
        (StatusCode::UNPROCESSABLE_ENTITY, StatusCode::BAD_REQUEST),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::SERVICE_UNAVAILABLE,
        ),
    ] {
        fake.fail_verification(Some(status));
        assert_eq!(
            post(&app, "/webhooks/paypal", body.clone(), headers.clone()).await,
            expected,
            "PayPal answered {status}"
        );
    }
    assert_eq!(writes(&app).await, (0, 0));
    // Working again: the same delivery goes through.
    fake.fail_verification(None);
    assert_eq!(
        post(&app, "/webhooks/paypal", body.clone(), headers.clone()).await,
        StatusCode::OK
    );
    assert_eq!(writes(&app).await, (1, 1));

    // PayPal not reachable at all (nothing listens where it should be): 503, nothing written.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let settings = PayPalSettings {
        client_id: fake.client_id(),
        client_secret: SecretString::from(fake.client_secret()),
        webhook_id: fake.webhook_id(),
        api_base_url: format!("http://{closed}/").parse().unwrap(),
    };
    let unreachable =
        TestApp::spawn_with(backend, move |s| s.payments.paypal = Some(settings)).await;
    let (body, headers) = fake.signed(&fake.event_sale_completed(&sub, "8.00", "USD"));
    assert_eq!(
        post(&unreachable, "/webhooks/paypal", body, headers).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(writes(&unreachable).await, (0, 0));
}

async fn an_absurdly_nested_body_is_refused_before_paypal_is_asked(backend: Backend) {
    let (app, fakes, _) = spawn(backend, 1).await;
    // Deeper than any event (32 levels), shallower than serde_json's own limit (128), so only
    // Usher's check stands between it and PayPal.
    let deep = format!(
        "{{\"id\":\"WH-1\",\"event_type\":\"PAYMENT.SALE.COMPLETED\",\"resource\":{}{}}}",
        "[".repeat(100),
        "]".repeat(100)
    );
    let (_, headers) = fakes.paypal.signed(&json!({"id": "WH-1"}));
    assert_eq!(
        post(&app, "/webhooks/paypal", deep.into_bytes(), headers).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        fakes.paypal.calls(routes::VERIFY),
        0,
        "PayPal was not asked"
    );
    assert_eq!(writes(&app).await, (0, 0));
}

async fn the_simulators_impossible_create_time_refuses_nothing(backend: Backend) {
    let (app, fakes, world) = spawn(backend, 1).await;
    let who = world.subscribers[0].0;
    let now = app.clock.now();
    fakes.paypal.send_simulator_dates(true);
    let sub = activated(&app, &fakes, who).await;
    let sale = fakes.paypal.event_sale_completed(&sub, "8.00", "USD");
    assert_eq!(sale["create_time"], SIMULATOR_CREATE_TIME);
    assert_eq!(paypal(&app, &fakes, &sale).await, 200);
    assert_eq!(
        paid_until(&app, who).await,
        Some(BillingPeriod::Month.after(now))
    );
    let cancelled = fakes
        .paypal
        .event_subscription("BILLING.SUBSCRIPTION.CANCELLED", &sub, None);
    assert_eq!(paypal(&app, &fakes, &cancelled).await, 200);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM webhook_event WHERE rejected_reason IS NULL"
        )
        .await,
        3
    );
}

/// Statuses converge by the provider's own time: an older report is ignored, and an ended
/// subscription stays ended whatever arrives after, even an activation stamped later (or with
/// no usable time at all, which orders it by its arrival).
async fn status_reports_are_ordered_by_their_own_time_and_an_ended_subscription_stays_ended(
    backend: Backend,
) {
    let (app, fakes, world) = spawn(backend, 2).await;
    let t0 = app.clock.now();
    let stamp =
        |at: chrono::DateTime<chrono::Utc>| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);

    // PayPal: cancelled at t0, then its activation arrives a minute later without a usable time.
    let who = world.subscribers[0].0;
    let sub = checkout(&app, &fakes, who, Provider::Paypal).await;
    let mut cancelled =
        fakes
            .paypal
            .event_subscription("BILLING.SUBSCRIPTION.CANCELLED", &sub, None);
    cancelled["resource"]["status_update_time"] = json!(stamp(t0));
    assert_eq!(paypal(&app, &fakes, &cancelled).await, 200);
    app.clock.advance(chrono::Duration::minutes(1));
    let mut activated =
        fakes
            .paypal
            .event_subscription("BILLING.SUBSCRIPTION.ACTIVATED", &sub, None);
    let resource = activated["resource"].as_object_mut().unwrap();
    resource.remove("status_update_time");
    resource.remove("update_time");
    activated["create_time"] = json!(SIMULATOR_CREATE_TIME);
    assert_eq!(paypal(&app, &fakes, &activated).await, 200);
    assert_eq!(linked(&app, &sub).await, Some(("CANCELLED".into(), false)));

    // Stripe: set to cancel at the period end at t0 + 10 s; a report from t0 + 5 s saying it
    // renews arrives after and is ignored.
    let other = world.subscribers[1].0;
    let (mut completed, stripe_sub) = stripe_subscription(&app, &fakes, other).await;
    completed["created"] = json!(t0.timestamp());
    assert_eq!(stripe(&app, &fakes, &completed).await, 200);
    let end = BillingPeriod::Month.after(t0);
    let mut stops = fakes
        .stripe
        .event_subscription_updated(&stripe_sub, "active", true, end);
    stops["created"] = json!((t0 + chrono::Duration::seconds(10)).timestamp());
    let mut older = fakes
        .stripe
        .event_subscription_updated(&stripe_sub, "active", false, end);
    older["created"] = json!((t0 + chrono::Duration::seconds(5)).timestamp());
    for event in [&stops, &older] {
        assert_eq!(stripe(&app, &fakes, event).await, 200);
    }
    assert_eq!(
        linked(&app, &stripe_sub).await,
        Some(("active".into(), false))
    );
}

crate::on_both_backends!(
    status_reports_are_ordered_by_their_own_time_and_an_ended_subscription_stays_ended,
    a_refunded_or_reversed_sale_stops_its_interval_and_access_ends_at_the_sweep,
    a_partial_refund_is_kept_for_the_admins_and_changes_no_access,
    verification_refused_is_400_naming_the_setting_and_paypal_failing_is_503,
    an_absurdly_nested_body_is_refused_before_paypal_is_asked,
    the_simulators_impossible_create_time_refuses_nothing,
);
