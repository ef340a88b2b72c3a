//! Stripe deliveries as Stripe sends them, on both databases: one invoice as `invoice.paid` and as
//! `invoice.payment_succeeded` is one payment; a refund of the older of two invoices takes back
//! that one only, in the current shape (the charge names no invoice) as in the old; a refund that
//! maps to nothing is kept for the admins and changes no time; a refund that arrives before its
//! payment waits for it; a subscription ending on a date does not renew.

use chrono::Duration;
use usher::clock::Clock as _;
use usher::domain::{BillingPeriod, SubscriberId};
use usher::fakes::stripe::{INVOICE_PAYMENTS_ROUTE, Shape};
use usher::services::payments::{self, PaymentNotice};

use crate::helpers::Backend;
use crate::helpers::TestApp;
use crate::payments_support::{
    Providers, active, count, dms, linked, paid_until, payment, payments, refunds, spawn, stripe,
    stripe_subscription,
};

/// Links a Stripe subscription for `who` (checkout completed and delivered); returns its id.
async fn subscribed(app: &TestApp, fakes: &Providers, who: SubscriberId) -> String {
    let (completed, sub) = stripe_subscription(app, fakes, who).await;
    assert_eq!(stripe(app, fakes, &completed).await, 200);
    sub
}

fn invoice_id(event: &serde_json::Value) -> String {
    event["data"]["object"]["id"].as_str().unwrap().to_owned()
}

async fn one_invoice_as_paid_and_as_payment_succeeded_is_one_payment_in_either_order(
    backend: Backend,
) {
    let (app, fakes, world) = spawn(backend, 3).await;
    let now = app.clock.now();
    for (i, succeeded_first) in [false, true].into_iter().enumerate() {
        let who = world.subscribers[i].0;
        let sub = subscribed(&app, &fakes, who).await;
        let paid = fakes
            .stripe
            .event_invoice_paid(&sub, now, now + Duration::days(30));
        let succeeded = fakes.stripe.also_payment_succeeded(&paid);
        assert_ne!(paid["id"], succeeded["id"], "two events of one invoice");
        let (first, second) = if succeeded_first {
            (&succeeded, &paid)
        } else {
            (&paid, &succeeded)
        };
        for event in [first, second, first, second, second] {
            assert_eq!(stripe(&app, &fakes, event).await, 200);
        }
        let invoice = invoice_id(&paid);
        let stored: Vec<_> = payments(&app)
            .await
            .into_iter()
            .filter(|p| p.0 == invoice)
            .collect();
        assert_eq!(stored.len(), 1, "{stored:?}");
        assert_eq!(stored[0].1, "applied");
        assert_eq!(
            paid_until(&app, who).await,
            Some(BillingPeriod::Month.after(now))
        );
    }
    // An endpoint subscribed to invoice.payment_succeeded only (as many guides say) is paid too.
    let who = world.subscribers[2].0;
    let sub = subscribed(&app, &fakes, who).await;
    let paid = fakes
        .stripe
        .event_invoice_paid(&sub, now, now + Duration::days(30));
    let succeeded = fakes.stripe.also_payment_succeeded(&paid);
    assert_eq!(stripe(&app, &fakes, &succeeded).await, 200);
    assert_eq!(payment(&app, &invoice_id(&paid)).await.1, "applied");
    assert_eq!(
        paid_until(&app, who).await,
        Some(BillingPeriod::Month.after(now))
    );
}

async fn refunding_the_older_of_two_invoices_stops_only_its_interval_in_either_shape(
    backend: Backend,
) {
    let (app, fakes, world) = spawn(backend, 2).await;
    let start = app.clock.now();
    let mut subs = Vec::new();
    for (who, _) in &world.subscribers {
        let sub = subscribed(&app, &fakes, *who).await;
        let first = fakes
            .stripe
            .event_invoice_paid(&sub, start, BillingPeriod::Month.after(start));
        assert_eq!(stripe(&app, &fakes, &first).await, 200);
        subs.push((sub, invoice_id(&first)));
    }
    // A month later each renews, then the first month is refunded.
    let renewed_at = BillingPeriod::Month.after(start);
    app.clock.advance(renewed_at - start);
    let end = BillingPeriod::Month.after(renewed_at);
    let mut second = Vec::new();
    for (sub, _) in &subs {
        let renewal = fakes.stripe.event_invoice_paid(sub, renewed_at, end);
        assert_eq!(stripe(&app, &fakes, &renewal).await, 200);
        second.push(invoice_id(&renewal));
    }
    app.clock.advance(Duration::days(5));
    for (i, shape) in [Shape::Basil, Shape::Legacy].into_iter().enumerate() {
        let who = world.subscribers[i].0;
        let older = &subs[i].1;
        let refund = fakes.stripe.event_invoice_refunded(older, 800, shape);
        assert_eq!(
            refund["data"]["object"].get("invoice").is_some(),
            shape == Shape::Legacy,
            "the current shape names no invoice"
        );
        for _ in 0..3 {
            assert_eq!(stripe(&app, &fakes, &refund).await, 200);
        }
        assert_eq!(payment(&app, older).await.1, "refunded", "{shape:?}");
        let newer = payment(&app, &second[i]).await;
        assert_eq!(newer.1, "applied", "{shape:?}");
        assert_eq!(
            (newer.3, newer.4),
            (Some(renewed_at), Some(end)),
            "{shape:?}"
        );
        assert_eq!(paid_until(&app, who).await, Some(end));
        assert!(active(&app, who).await);
        let told = dms(&app, who, "refunded").await;
        assert_eq!(told.len(), 1, "{told:?}");
        assert_eq!(told[0]["full"], true);
    }
    // Only the current shape had to ask Stripe which invoice the payment intent paid.
    assert_eq!(fakes.stripe.calls(INVOICE_PAYMENTS_ROUTE), 1);
    assert_eq!(refunds(&app).await.len(), 2);
}

async fn a_refund_that_maps_to_nothing_is_kept_for_the_admins_and_changes_no_time(
    backend: Backend,
) {
    let (app, fakes, world) = spawn(backend, 1).await;
    let who = world.subscribers[0].0;
    let now = app.clock.now();
    let sub = subscribed(&app, &fakes, who).await;
    let paid = fakes
        .stripe
        .event_invoice_paid(&sub, now, BillingPeriod::Month.after(now));
    assert_eq!(stripe(&app, &fakes, &paid).await, 200);
    let before = payments(&app).await;

    // A charge outside Usher's invoices (another product of the same Stripe account).
    let outside = fakes.stripe.event_outside_charge_refunded(1500, "usd");
    assert_eq!(stripe(&app, &fakes, &outside).await, 200);
    assert_eq!(stripe(&app, &fakes, &outside).await, 200);
    assert_eq!(payments(&app).await, before, "no interval changed");
    assert_eq!(
        paid_until(&app, who).await,
        Some(BillingPeriod::Month.after(now))
    );
    let stored = refunds(&app).await;
    assert_eq!(stored.len(), 1);
    assert_eq!((stored[0].1.as_str(), stored[0].2), ("unmatched", None));
    let notices = payments::notices(&app.app).await.unwrap();
    assert!(
        matches!(
            notices.as_slice(),
            [PaymentNotice::UnmatchedRefund { amount, .. }] if amount.to_string() == "15.00 USD"
        ),
        "{notices:?}"
    );
    assert_eq!(dms(&app, who, "refunded").await.len(), 0);
}

async fn a_refund_before_its_payment_waits_and_applies_when_the_payment_arrives(backend: Backend) {
    let (app, fakes, world) = spawn(backend, 1).await;
    let who = world.subscribers[0].0;
    let now = app.clock.now();
    let sub = subscribed(&app, &fakes, who).await;
    let first = fakes
        .stripe
        .event_invoice_paid(&sub, now, BillingPeriod::Month.after(now));
    let second_start = BillingPeriod::Month.after(now);
    let second = fakes.stripe.event_invoice_paid(
        &sub,
        second_start,
        BillingPeriod::Month.after(second_start),
    );
    let refund = fakes
        .stripe
        .event_invoice_refunded(&invoice_id(&second), 800, Shape::Basil);
    assert_eq!(stripe(&app, &fakes, &first).await, 200);
    // The refund of the second invoice comes first: it waits, listed for the admins.
    assert_eq!(stripe(&app, &fakes, &refund).await, 200);
    assert_eq!(refunds(&app).await[0].1, "waiting");
    assert!(matches!(
        payments::notices(&app.app).await.unwrap().as_slice(),
        [PaymentNotice::WaitingRefund { .. }]
    ));
    assert_eq!(
        paid_until(&app, who).await,
        Some(BillingPeriod::Month.after(now))
    );
    // The payment arrives: applied, then taken back at once.
    assert_eq!(stripe(&app, &fakes, &second).await, 200);
    assert_eq!(payment(&app, &invoice_id(&second)).await.1, "refunded");
    assert_eq!(refunds(&app).await[0].1, "applied");
    assert_eq!(
        paid_until(&app, who).await,
        Some(BillingPeriod::Month.after(now))
    );
    assert!(payments::notices(&app.app).await.unwrap().is_empty());
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM payment WHERE status = 'applied'"
        )
        .await,
        1
    );
}

async fn a_subscription_ending_on_a_date_does_not_renew(backend: Backend) {
    let (app, fakes, world) = spawn(backend, 1).await;
    let who = world.subscribers[0].0;
    let now = app.clock.now();
    let sub = subscribed(&app, &fakes, who).await;
    assert_eq!(linked(&app, &sub).await, Some(("active".into(), true)));
    let ends = fakes.stripe.event_subscription_cancel_at(
        &sub,
        now + Duration::days(20),
        BillingPeriod::Month.after(now),
    );
    assert_eq!(ends["data"]["object"]["cancel_at_period_end"], false);
    assert_eq!(stripe(&app, &fakes, &ends).await, 200);
    assert_eq!(linked(&app, &sub).await, Some(("active".into(), false)));
}

async fn a_payment_and_its_refund_arriving_at_once_end_refunded(backend: Backend) {
    let (app, fakes, world) = spawn(backend, 1).await;
    let who = world.subscribers[0].0;
    let now = app.clock.now();
    let sub = subscribed(&app, &fakes, who).await;
    let rounds = 25;
    let mut invoices = Vec::new();
    for i in 0..rounds {
        let start = now + Duration::days(i);
        let paid = fakes.stripe.event_invoice_paid(&sub, start, start);
        let id = invoice_id(&paid);
        let refund = fakes.stripe.event_invoice_refunded(&id, 800, Shape::Legacy);
        let (a, b) = tokio::join!(stripe(&app, &fakes, &paid), stripe(&app, &fakes, &refund));
        assert_eq!((a.as_u16(), b.as_u16()), (200, 200));
        invoices.push(id);
    }
    for id in &invoices {
        assert_eq!(payment(&app, id).await.1, "refunded", "{id}");
    }
    let stored = refunds(&app).await;
    assert_eq!(stored.len(), invoices.len());
    assert!(stored.iter().all(|r| r.1 == "applied"), "{stored:?}");
    assert_eq!(paid_until(&app, who).await, None);
}

crate::on_both_backends!(
    a_payment_and_its_refund_arriving_at_once_end_refunded,
    one_invoice_as_paid_and_as_payment_succeeded_is_one_payment_in_either_order,
    refunding_the_older_of_two_invoices_stops_only_its_interval_in_either_shape,
    a_refund_that_maps_to_nothing_is_kept_for_the_admins_and_changes_no_time,
    a_refund_before_its_payment_waits_and_applies_when_the_payment_arrives,
    a_subscription_ending_on_a_date_does_not_renew,
);
