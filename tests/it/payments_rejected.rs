//! Validly signed deliveries Usher cannot store (issue 19), on both databases: a NUL byte in a
//! field, an unknown currency, an object that is not what its type says, a value a CHECK refuses.
//! Each is answered 200 (a 500 would make the provider retry it for days), recorded once as
//! rejected with the reason, listed for the admins, and changes nothing else.

use serde_json::json;
use usher::clock::Clock as _;
use usher::domain::BillingPeriod;
use usher::fakes::stripe::Shape;
use usher::integrations::payments::plisio::sign_callback;
use usher::services::payments::{self, PaymentNotice};

use crate::helpers::{Backend, TestApp};
use crate::payments_support::{
    count, paid_until, payments, plisio, spawn, stripe, stripe_subscription,
};

async fn rejected(app: &TestApp) -> Vec<(String, String, String)> {
    let mut tx = app.app.db.read().await.unwrap();
    usher::on_tx!(&mut tx, |c| sqlx::query_as(
        "SELECT provider, event_type, rejected_reason FROM webhook_event \
         WHERE rejected_reason IS NOT NULL ORDER BY id"
    )
    .fetch_all(c)
    .await
    .unwrap())
}

async fn signed_deliveries_that_cannot_be_stored_are_kept_as_rejected_not_retried(
    backend: Backend,
) {
    let (app, fakes, world) = spawn(backend, 1).await;
    let who = world.subscribers[0].0;
    let now = app.clock.now();
    let (completed, sub) = stripe_subscription(&app, &fakes, who).await;
    assert_eq!(stripe(&app, &fakes, &completed).await, 200);
    let paid = fakes
        .stripe
        .event_invoice_paid(&sub, now, BillingPeriod::Month.after(now));
    assert_eq!(stripe(&app, &fakes, &paid).await, 200);
    let invoice = paid["data"]["object"]["id"].as_str().unwrap().to_owned();
    let before = payments(&app).await;

    // A NUL byte in the payer's email (PostgreSQL cannot hold one; SQLite could, and must not).
    let mut nul = fakes
        .stripe
        .event_invoice_paid(&sub, now, BillingPeriod::Month.after(now));
    nul["data"]["object"]["customer_email"] = json!("payer\u{0}@example.com");
    // An unknown currency.
    let mut currency = fakes
        .stripe
        .event_invoice_paid(&sub, now, BillingPeriod::Month.after(now));
    currency["data"]["object"]["currency"] = json!("dollars");
    // An invoice event whose object is not an object.
    let mut shapeless = fakes
        .stripe
        .event_invoice_paid(&sub, now, BillingPeriod::Month.after(now));
    shapeless["data"]["object"] = json!("in_123");
    // A refund the parser takes but a CHECK refuses (a negative amount refunded).
    let negative = fakes
        .stripe
        .event_invoice_refunded(&invoice, -100, Shape::Legacy);
    for event in [&nul, &currency, &shapeless, &negative] {
        for _ in 0..3 {
            assert_eq!(stripe(&app, &fakes, event).await, 200, "{}", event["type"]);
        }
    }
    // A Plisio callback signed with the shop's key but without its order number.
    let order =
        crate::payments_support::checkout(&app, &fakes, who, usher::domain::Provider::Plisio).await;
    let txn = fakes.plisio.invoices().pop().unwrap().txn_id;
    let unreadable = sign_callback(
        &[
            ("txn_id", json!(txn)),
            ("status", json!("completed")),
            ("source_currency", json!("USD")),
            ("source_amount", json!("8.00")),
        ],
        &fakes.plisio.secret_key(),
    );
    assert!(!order.is_empty());
    assert_eq!(plisio(&app, unreadable.clone()).await, 200);
    assert_eq!(plisio(&app, unreadable).await, 200);

    let kept = rejected(&app).await;
    assert_eq!(kept.len(), 5, "{kept:#?}");
    let reasons: Vec<&str> = kept.iter().map(|k| k.2.as_str()).collect();
    assert!(
        reasons[0].contains("/customer_email") && reasons[0].contains("control character"),
        "{reasons:?}"
    );
    assert!(reasons[1].contains("/currency"), "{reasons:?}");
    assert!(reasons[2].contains("/data/object"), "{reasons:?}");
    assert!(reasons[3].contains("database refused"), "{reasons:?}");
    assert!(reasons[4].contains("/order_number"), "{reasons:?}");
    assert_eq!(
        kept.iter().map(|k| k.0.as_str()).collect::<Vec<_>>(),
        ["stripe", "stripe", "stripe", "stripe", "plisio"]
    );
    // Nothing else moved, and the admins see them.
    assert_eq!(payments(&app).await, before);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM refund").await, 0);
    assert_eq!(
        paid_until(&app, who).await,
        Some(BillingPeriod::Month.after(now))
    );
    let notices = payments::notices(&app.app).await.unwrap();
    assert_eq!(
        notices
            .iter()
            .filter(|n| matches!(n, PaymentNotice::RejectedEvent { .. }))
            .count(),
        5
    );
}

crate::on_both_backends!(signed_deliveries_that_cannot_be_stored_are_kept_as_rejected_not_retried);
