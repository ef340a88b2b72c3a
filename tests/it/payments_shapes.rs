//! Every event type Usher handles, built from the providers' own published example objects
//! (`tests/fixtures/`, origins in its README) in the current and the previous API shape, signed
//! and sent through the web door, on both databases. Each object keeps every field the provider
//! publishes; the test overlays only the ids, amounts, statuses and references that tie it to a
//! subscriber of the test (each overlay is named below).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use usher::clock::Clock as _;
use usher::domain::{BillingPeriod, Provider, SubscriberId};
use usher::fakes::stripe::{BASIL_API_VERSION, LEGACY_API_VERSION};
use usher::integrations::payments::plisio::sign_callback;
use usher::services::payments::{self, PaymentNotice};

use crate::helpers::Backend;
use crate::payments_support::{
    checkout, count, dms, linked, paid_until, payment, paypal, plisio, refunds, spawn, stripe,
    stripe_subscription,
};

fn fixture(path: &str) -> Value {
    let file = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap()
}

/// Sets `fields` (JSON pointers without the leading slash, one level or nested) on `object`.
fn overlay(mut object: Value, fields: &[(&str, Value)]) -> Value {
    for (path, value) in fields {
        let mut at = &mut object;
        let parts: Vec<&str> = path.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            if at.get(*part).is_none_or(|v| !v.is_object()) {
                at[*part] = json!({});
            }
            at = &mut at[*part];
        }
        at[parts[parts.len() - 1]] = value.clone();
    }
    object
}

/// A Stripe event envelope (as Stripe's `event` resource) around `object`.
fn stripe_event(kind: &str, version: &str, created: DateTime<Utc>, object: &Value) -> Value {
    json!({
        "id": format!("evt_fx_{}", uuid::Uuid::new_v4().simple()),
        "object": "event",
        "api_version": version,
        "created": created.timestamp(),
        "data": {"object": object},
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null},
        "type": kind,
    })
}

/// One Stripe shape: the fixture folder and the API version its events are stamped with.
#[derive(Clone, Copy)]
struct StripeShape {
    folder: &'static str,
    version: &'static str,
    current: bool,
}

const STRIPE_SHAPES: [StripeShape; 2] = [
    StripeShape {
        folder: "stripe/current",
        version: BASIL_API_VERSION,
        current: true,
    },
    StripeShape {
        folder: "stripe/2024-06-20",
        version: LEGACY_API_VERSION,
        current: false,
    },
];

/// Stripe's invoice fixture as the paid (or failed) invoice `id` of subscription `sub`, in the
/// shape's place for the subscription.
fn stripe_invoice(
    shape: StripeShape,
    id: &str,
    sub: &str,
    customer: &str,
    paid: bool,
    created: DateTime<Utc>,
) -> Value {
    let invoice = fixture(&format!("{}/invoice.json", shape.folder));
    let mut fields = vec![
        ("id", json!(id)),
        ("customer", json!(customer)),
        ("customer_email", json!("payer@example.com")),
        ("status", json!(if paid { "paid" } else { "open" })),
        ("amount_due", json!(800)),
        ("amount_paid", json!(if paid { 800 } else { 0 })),
        ("amount_remaining", json!(if paid { 0 } else { 800 })),
        ("currency", json!("usd")),
        ("billing_reason", json!("subscription_cycle")),
        ("created", json!(created.timestamp())),
    ];
    if shape.current {
        fields.push((
            "parent",
            json!({"type": "subscription_details", "quote_details": null,
                   "subscription_details": {"metadata": {}, "subscription": sub}}),
        ));
    } else {
        fields.push(("subscription", json!(sub)));
    }
    overlay(invoice, &fields)
}

async fn every_stripe_event_type_in_both_shapes(backend: Backend) {
    let (app, fakes, world) = spawn(backend, 2).await;
    for (i, shape) in STRIPE_SHAPES.into_iter().enumerate() {
        let who = world.subscribers[i].0;
        let t0 = app.clock.now();
        // The subscription and its invoices are made by the fake Stripe (so its invoice payments
        // list knows them); what is delivered is Stripe's published object carrying their ids.
        let (made, sub) = stripe_subscription(&app, &fakes, who).await;
        let made = &made["data"]["object"];
        let customer = made["customer"].as_str().unwrap().to_owned();
        let session = overlay(
            fixture(&format!("{}/checkout.session.json", shape.folder)),
            &[
                ("id", made["id"].clone()),
                ("mode", json!("subscription")),
                ("status", json!("complete")),
                ("payment_status", json!("paid")),
                ("client_reference_id", made["client_reference_id"].clone()),
                ("customer", json!(customer)),
                ("subscription", json!(sub)),
                ("currency", json!("usd")),
                ("amount_total", json!(800)),
            ],
        );
        let completed = stripe_event("checkout.session.completed", shape.version, t0, &session);
        assert_eq!(stripe(&app, &fakes, &completed).await, 200);
        assert_eq!(linked(&app, &sub).await, Some(("active".into(), true)));

        // invoice.paid and invoice.payment_succeeded: one payment of one period.
        fakes.stripe.event_invoice_paid(&sub, t0, t0);
        let made_invoice = fakes.stripe.invoices().pop().unwrap();
        let mut invoice = stripe_invoice(shape, &made_invoice.id, &sub, &customer, true, t0);
        if !shape.current {
            invoice["payment_intent"] = json!(made_invoice.payment_intent);
            invoice["charge"] = json!(made_invoice.charge);
        }
        for kind in ["invoice.paid", "invoice.payment_succeeded"] {
            let event = stripe_event(kind, shape.version, t0, &invoice);
            assert_eq!(stripe(&app, &fakes, &event).await, 200, "{kind}");
        }
        let stored = payment(&app, &made_invoice.id).await;
        assert_eq!(stored.1, "applied");
        assert_eq!(
            paid_until(&app, who).await,
            Some(BillingPeriod::Month.after(t0))
        );

        // invoice.payment_failed: a warning, no change.
        let failed = stripe_invoice(
            shape,
            &format!("in_fx_failed_{i}"),
            &sub,
            &customer,
            false,
            t0,
        );
        let event = stripe_event("invoice.payment_failed", shape.version, t0, &failed);
        assert_eq!(stripe(&app, &fakes, &event).await, 200);
        assert_eq!(dms(&app, who, "payment_failed").await.len(), 1);

        // customer.subscription.updated: ends on a date (Stripe's fixture has cancel_at set).
        let later = t0 + chrono::Duration::seconds(10);
        let subscription = overlay(
            fixture(&format!("{}/subscription.json", shape.folder)),
            &[
                ("id", json!(sub)),
                ("customer", json!(customer)),
                ("status", json!("active")),
                ("cancel_at_period_end", json!(false)),
            ],
        );
        assert!(
            subscription["cancel_at"].is_number(),
            "the fixture ends on a date"
        );
        let event = stripe_event(
            "customer.subscription.updated",
            shape.version,
            later,
            &subscription,
        );
        assert_eq!(stripe(&app, &fakes, &event).await, 200);
        assert_eq!(linked(&app, &sub).await, Some(("active".into(), false)));

        // charge.refunded of that invoice's charge: the current shape names no invoice (mapped
        // through the payment intent and Stripe's invoice payments), the old one does.
        let mut charge_fields = vec![
            ("id", json!(made_invoice.charge)),
            ("amount", json!(800)),
            ("amount_captured", json!(800)),
            ("amount_refunded", json!(800)),
            ("refunded", json!(true)),
            ("currency", json!("usd")),
            ("customer", json!(customer)),
            ("payment_intent", json!(made_invoice.payment_intent)),
        ];
        if !shape.current {
            charge_fields.push(("invoice", json!(made_invoice.id)));
        }
        let charge = overlay(
            fixture(&format!("{}/charge.json", shape.folder)),
            &charge_fields,
        );
        assert!(shape.current == charge.get("invoice").is_none());
        let event = stripe_event("charge.refunded", shape.version, later, &charge);
        assert_eq!(stripe(&app, &fakes, &event).await, 200);
        assert_eq!(payment(&app, &made_invoice.id).await.1, "refunded");
        assert_eq!(paid_until(&app, who).await, None);
        assert_eq!(dms(&app, who, "refunded").await.len(), 1);

        // customer.subscription.deleted: over for good.
        let deleted = overlay(
            subscription,
            &[
                ("status", json!("canceled")),
                ("ended_at", json!(later.timestamp())),
            ],
        );
        let event = stripe_event(
            "customer.subscription.deleted",
            shape.version,
            later,
            &deleted,
        );
        assert_eq!(stripe(&app, &fakes, &event).await, 200);
        assert_eq!(linked(&app, &sub).await, Some(("canceled".into(), false)));

        // checkout.session.completed in payment mode: a one-off payment by our reference.
        let one_off = checkout(&app, &fakes, who, Provider::Stripe).await;
        let reference = fakes
            .stripe
            .sessions()
            .into_iter()
            .find(|s| s.id == one_off)
            .unwrap()
            .client_reference_id
            .unwrap();
        let session = overlay(
            fixture(&format!("{}/checkout.session.json", shape.folder)),
            &[
                ("id", json!(one_off)),
                ("mode", json!("payment")),
                ("status", json!("complete")),
                ("payment_status", json!("paid")),
                ("client_reference_id", json!(reference)),
                ("currency", json!("usd")),
                ("amount_total", json!(800)),
            ],
        );
        let event = stripe_event("checkout.session.completed", shape.version, later, &session);
        assert_eq!(stripe(&app, &fakes, &event).await, 200);
        assert_eq!(payment(&app, &one_off).await.1, "applied");
    }
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM webhook_event WHERE rejected_reason IS NOT NULL"
        )
        .await,
        0
    );
}

/// A PayPal event from a fixture with its own fresh id.
fn paypal_event(file: &str, fields: &[(&str, Value)]) -> Value {
    let mut event = overlay(fixture(&format!("paypal/{file}")), fields);
    event["id"] = json!(format!("WH-FX{}", uuid::Uuid::new_v4().simple()).to_uppercase());
    event
}

async fn every_paypal_event_type_in_both_shapes(backend: Backend) {
    let (app, fakes, world) = spawn(backend, 2).await;
    let who = world.subscribers[0].0;
    let t0 = app.clock.now();
    let sub = checkout(&app, &fakes, who, Provider::Paypal).await;
    let reference = fakes
        .paypal
        .subscriptions()
        .pop()
        .unwrap()
        .custom_id
        .unwrap();
    let subscription_event = |kind: &str, status: &str| {
        paypal_event(
            "billing.subscription.v2.json",
            &[
                ("event_type", json!(kind)),
                ("resource/id", json!(sub)),
                ("resource/custom_id", json!(reference)),
                ("resource/status", json!(status)),
            ],
        )
    };
    // The simulator's impossible create_time (2018-19-12) refuses nothing.
    let activated = subscription_event("BILLING.SUBSCRIPTION.ACTIVATED", "ACTIVE");
    assert_eq!(activated["create_time"], "2018-19-12T22:20:32.000Z");
    assert_eq!(paypal(&app, &fakes, &activated).await, 200);
    assert_eq!(linked(&app, &sub).await, Some(("active".into(), true)));

    // PAYMENT.SALE.COMPLETED (v1 sale resource): one period.
    let sale = paypal_event(
        "payment.sale.completed.json",
        &[
            ("resource/id", json!("FXSALE0000000001")),
            ("resource/billing_agreement_id", json!(sub)),
            ("resource/amount/total", json!("8.00")),
            ("resource/amount/details/subtotal", json!("8.00")),
        ],
    );
    assert_eq!(paypal(&app, &fakes, &sale).await, 200);
    assert_eq!(payment(&app, "FXSALE0000000001").await.1, "applied");
    assert_eq!(
        paid_until(&app, who).await,
        Some(BillingPeriod::Month.after(t0))
    );

    // PAYMENT.SALE.REFUNDED of 3.00 of it (PayPal writes it negative): partial, access unchanged.
    let refund = paypal_event(
        "payment.sale.refunded.json",
        &[
            ("resource/sale_id", json!("FXSALE0000000001")),
            ("resource/amount/total", json!("-3.00")),
        ],
    );
    assert_eq!(paypal(&app, &fakes, &refund).await, 200);
    assert_eq!(payment(&app, "FXSALE0000000001").await.1, "applied");
    assert_eq!(
        refunds(&app).await.last().unwrap().1,
        "partial",
        "{:?}",
        refunds(&app).await
    );
    // PAYMENT.SALE.REVERSED of the whole sale: its interval stops.
    let reversal = paypal_event(
        "payment.sale.reversed.json",
        &[
            ("resource/id", json!("FXSALE0000000001")),
            ("resource/amount/total", json!("-8.00")),
        ],
    );
    assert_eq!(paypal(&app, &fakes, &reversal).await, 200);
    assert_eq!(payment(&app, "FXSALE0000000001").await.1, "refunded");
    assert_eq!(paid_until(&app, who).await, None);
    assert_eq!(dms(&app, who, "refunded").await.len(), 2);

    // PAYMENT.CAPTURE.REFUNDED / .REVERSED of captures Usher never recorded: for the admins.
    for file in [
        "payment.capture.refunded.json",
        "payment.capture.reversed.json",
    ] {
        assert_eq!(paypal(&app, &fakes, &paypal_event(file, &[])).await, 200);
    }
    let unmatched = payments::notices(&app.app)
        .await
        .unwrap()
        .into_iter()
        .filter(|n| matches!(n, PaymentNotice::UnmatchedRefund { .. }))
        .count();
    assert_eq!(unmatched, 2);

    // The subscription's statuses, current shape.
    for (kind, status, expected) in [
        (
            "BILLING.SUBSCRIPTION.SUSPENDED",
            "SUSPENDED",
            ("SUSPENDED", false),
        ),
        (
            "BILLING.SUBSCRIPTION.RE-ACTIVATED",
            "ACTIVE",
            ("ACTIVE", true),
        ),
        (
            "BILLING.SUBSCRIPTION.EXPIRED",
            "EXPIRED",
            ("EXPIRED", false),
        ),
    ] {
        assert_eq!(
            paypal(&app, &fakes, &subscription_event(kind, status)).await,
            200
        );
        assert_eq!(
            linked(&app, &sub).await,
            Some((expected.0.into(), expected.1)),
            "{kind}"
        );
    }

    // The previous shape (a v1 billing agreement): a cancellation ends it.
    let other = world.subscribers[1].0;
    let old_sub = checkout(&app, &fakes, other, Provider::Paypal).await;
    let old_reference = fakes
        .paypal
        .subscriptions()
        .pop()
        .unwrap()
        .custom_id
        .unwrap();
    let activated = paypal_event(
        "billing.subscription.v2.json",
        &[
            ("resource/id", json!(old_sub)),
            ("resource/custom_id", json!(old_reference)),
        ],
    );
    assert_eq!(paypal(&app, &fakes, &activated).await, 200);
    let cancelled = paypal_event(
        "billing.subscription.v1-agreement.json",
        &[("resource/id", json!(old_sub))],
    );
    assert_eq!(cancelled["resource"]["state"], "Cancelled");
    assert_eq!(paypal(&app, &fakes, &cancelled).await, 200);
    assert_eq!(
        linked(&app, &old_sub).await,
        Some(("CANCELLED".into(), false))
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM webhook_event WHERE rejected_reason IS NOT NULL"
        )
        .await,
        0
    );
}

async fn every_plisio_status_of_its_one_shape(backend: Backend) {
    let (app, fakes, world) = spawn(backend, 1).await;
    let who: SubscriberId = world.subscribers[0].0;
    let t0 = app.clock.now();
    let secret = fakes.plisio.secret_key();
    let callback = |order: &str, txn: &str, status: &str, pending: &str| {
        let Value::Object(map) = overlay(
            fixture("plisio/callback.json"),
            &[
                ("order_number", json!(order)),
                ("txn_id", json!(txn)),
                ("status", json!(status)),
                ("pending_amount", json!(pending)),
            ],
        ) else {
            unreachable!("the fixture is an object")
        };
        let fields: Vec<(&str, Value)> = map.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        sign_callback(&fields, &secret)
    };
    let paid_order = checkout(&app, &fakes, who, Provider::Plisio).await;
    let txn = fakes.plisio.invoices().pop().unwrap().txn_id;
    for status in ["new", "pending"] {
        assert_eq!(
            plisio(&app, callback(&paid_order, &txn, status, "0.00012345")).await,
            200
        );
    }
    assert_eq!(paid_until(&app, who).await, None);
    for status in ["mismatch", "completed"] {
        assert_eq!(
            plisio(&app, callback(&paid_order, &txn, status, "0.00000000")).await,
            200
        );
    }
    assert_eq!(payment(&app, &txn).await.1, "applied");
    assert_eq!(
        paid_until(&app, who).await,
        Some(BillingPeriod::Month.after(t0))
    );

    // Expired unpaid: nothing. Expired after part was paid: kept for the admins.
    let unpaid = checkout(&app, &fakes, who, Provider::Plisio).await;
    let unpaid_txn = fakes.plisio.invoices().pop().unwrap().txn_id;
    assert_eq!(
        plisio(
            &app,
            callback(&unpaid, &unpaid_txn, "expired", "0.00012345")
        )
        .await,
        200
    );
    let part = checkout(&app, &fakes, who, Provider::Plisio).await;
    let part_txn = fakes.plisio.invoices().pop().unwrap().txn_id;
    assert_eq!(
        plisio(&app, callback(&part, &part_txn, "expired", "0.00004115")).await,
        200
    );
    let kept: Vec<PaymentNotice> = payments::notices(&app.app)
        .await
        .unwrap()
        .into_iter()
        .filter(|n| matches!(n, PaymentNotice::PaidInPart { .. }))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let PaymentNotice::PaidInPart { txn_id, paid, .. } = &kept[0] else {
        unreachable!()
    };
    assert_eq!(
        (txn_id.as_str(), paid.as_str()),
        (part_txn.as_str(), "0.00008230 BTC")
    );
    assert_eq!(
        paid_until(&app, who).await,
        Some(BillingPeriod::Month.after(t0))
    );
}

crate::on_both_backends!(
    every_stripe_event_type_in_both_shapes,
    every_paypal_event_type_in_both_shapes,
    every_plisio_status_of_its_one_shape,
);
