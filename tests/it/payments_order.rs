//! Provider events in any order converge (issue 19): a Stripe activation, two invoices, a refund
//! of the first and the subscription's deletion, each delivered in one of 200 seeded random
//! orders and then replayed in another, end in the same paid time and the same renewal state
//! every time, on both databases. Stripe promises no order; a refund that comes before its
//! payment waits for it, the deletion is a tombstone the activation cannot undo, and paid
//! intervals are laid out by the invoices' own times, not by arrival.

use chrono::{DateTime, Duration, Utc};
use rand::SeedableRng as _;
use rand::seq::SliceRandom as _;
use serde_json::{Value, json};
use usher::clock::Clock as _;
use usher::domain::{BillingPeriod, DiscordId, PlanId, SubscriberId};
use usher::fakes::stripe::Shape;

use crate::helpers::Backend;
use crate::payments_support::{
    linked, paid_until, payment, refunds, spawn, stripe, stripe_subscription,
};

const ORDERS: u64 = 200;

/// `event` stamped with Stripe's creation time `at`.
fn created(mut event: Value, at: DateTime<Utc>) -> Value {
    event["created"] = json!(at.timestamp());
    event
}

async fn stripe_events_in_any_order_end_in_the_same_paid_time_and_renewal(backend: Backend) {
    let (app, fakes, _) = spawn(backend, 1).await;
    let t0 = app.clock.now();
    // One subscriber per order, without a Plex account so no invite is sent (only the payments
    // are under test here).
    let mut tx = app.app.db.begin().await.unwrap();
    let mut people = Vec::new();
    for i in 0..ORDERS {
        let who = usher::store::subscribers::insert_subscriber(
            &mut tx,
            DiscordId::new(10_000 + i).unwrap(),
            &format!("order{i}"),
            t0,
        )
        .await
        .unwrap();
        usher::store::subscribers::update_subscriber_plan(&mut tx, who, Some(PlanId::new(1)), t0)
            .await
            .unwrap();
        people.push(who);
    }
    tx.commit().await.unwrap();

    let second_start = BillingPeriod::Month.after(t0);
    let expected_end = BillingPeriod::Month.after(t0);
    for (seed, who) in (0..ORDERS).zip(people) {
        let who: SubscriberId = who;
        let (completed, sub) = stripe_subscription(&app, &fakes, who).await;
        let first = fakes
            .stripe
            .event_invoice_paid(&sub, t0, BillingPeriod::Month.after(t0));
        let second = fakes.stripe.event_invoice_paid(
            &sub,
            second_start,
            BillingPeriod::Month.after(second_start),
        );
        let first_id = first["data"]["object"]["id"].as_str().unwrap().to_owned();
        let second_id = second["data"]["object"]["id"].as_str().unwrap().to_owned();
        let refund = fakes
            .stripe
            .event_invoice_refunded(&first_id, 800, Shape::Basil);
        let deleted = fakes
            .stripe
            .event_subscription_deleted(&sub, BillingPeriod::Month.after(second_start));
        let mut events = vec![
            created(completed, t0),
            created(first, t0),
            created(second, second_start),
            created(refund, second_start + Duration::days(1)),
            created(deleted, second_start + Duration::days(2)),
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for _pass in 0..2 {
            events.shuffle(&mut rng);
            for event in &events {
                assert_eq!(
                    stripe(&app, &fakes, event).await,
                    200,
                    "order {seed}: {}",
                    event["type"]
                );
            }
        }
        let order: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            paid_until(&app, who).await,
            Some(expected_end),
            "order {seed}: {order:?}"
        );
        assert_eq!(
            linked(&app, &sub).await,
            Some(("canceled".into(), false)),
            "order {seed}: {order:?}"
        );
        assert_eq!(payment(&app, &first_id).await.1, "refunded", "order {seed}");
        let kept = payment(&app, &second_id).await;
        assert_eq!(
            (kept.1.as_str(), kept.3, kept.4),
            ("applied", Some(t0), Some(expected_end)),
            "order {seed}: {order:?}"
        );
    }
    let stored = refunds(&app).await;
    assert_eq!(stored.len(), usize::try_from(ORDERS).unwrap());
    assert!(stored.iter().all(|r| r.1 == "applied"), "{stored:?}");
}

crate::on_both_backends!(stripe_events_in_any_order_end_in_the_same_paid_time_and_renewal);
