//! Payments recorded by hand (issues 14 and 15: cash, bank transfers, imports) at the service, on
//! both databases: days from the later of now and the paid end, up to a date, applied exactly like
//! a matched webhook (invite, receipt, audit with the admin) in one transaction; every refusal
//! writes nothing, a transaction id recorded before is refused (also when two admins race), and
//! the variant inside an open transaction leaves it usable. Also: a renewal of a provider
//! subscription Usher never saw (an imported subscriber's) is matched by the payer's email and
//! links the subscription, so the next renewal matches by it.

use chrono::Duration;
use usher::clock::Clock as _;
use usher::domain::{
    Actor, BillingPeriod, Currency, DiscordId, Money, PlanId, PlexEmail, SubscriberId,
};
use usher::fakes::paypal::routes;
use usher::integrations::payments::stripe::{CheckoutRequest, StripeClient};
use usher::services::account_change;
use usher::services::payments::{
    Coverage, ManualPayment, ManualPaymentError, record_manual_payment, record_manual_payment_in,
};

use crate::helpers::world::admin;
use crate::helpers::{Backend, TestApp};
use crate::payments_support::{
    PAYPAL_PLAN, count, dms, linked, paid_until, payment, payments, paypal, spawn, stripe,
};

fn usd(amount: &str) -> Money {
    Money::parse(amount, Currency::parse("USD").unwrap()).unwrap()
}

fn manual(who: SubscriberId, coverage: Coverage, transaction: Option<&str>) -> ManualPayment {
    ManualPayment {
        subscriber: who,
        plan: PlanId::new(1),
        coverage,
        transaction: transaction.map(str::to_owned),
        amount: Some(usd("8")),
        note: Some("paid cash at the club".into()),
        reference: None,
    }
}

/// Rows a refused manual payment must not have written.
async fn written(app: &TestApp) -> (i64, i64, i64, i64) {
    (
        count(app, "SELECT COUNT(*) FROM payment").await,
        count(app, "SELECT COUNT(*) FROM audit_log").await,
        count(app, "SELECT COUNT(*) FROM notification").await,
        count(app, "SELECT COUNT(*) FROM job").await,
    )
}

async fn invites_queued(app: &TestApp, who: SubscriberId) -> i64 {
    let mut tx = app.app.db.read().await.unwrap();
    usher::on_tx!(&mut tx, |c| sqlx::query_scalar(
        "SELECT COUNT(*) FROM share sh JOIN server sv ON sv.id = sh.server_id \
         JOIN owner_account o ON o.id = sv.owner_account_id \
         WHERE sh.subscriber_id = $1 AND sh.state <> 'removed' AND o.state = 'active'"
    )
    .bind(who.get())
    .fetch_one(c)
    .await
    .unwrap())
}

async fn a_manual_payment_extends_from_the_paid_end_and_applies_like_a_webhook(backend: Backend) {
    let (app, _fakes, world) = spawn(backend, 2).await;
    let who = world.subscribers[0].0;
    let now = app.clock.now();
    let first = record_manual_payment(
        &app.app,
        &admin(),
        &manual(who, Coverage::Days(30), Some("bank-2026-001")),
    )
    .await
    .unwrap();
    assert_eq!(first.transaction, "bank-2026-001");
    assert_eq!(
        (first.paid_from, first.paid_to),
        (now, now + Duration::days(30))
    );
    assert_eq!(first.plan, "Standard");
    assert!(!first.flagged);
    // Applied like a webhook: an invite on a server of an active owner, a receipt, the admin audited.
    assert_eq!(invites_queued(&app, who).await, 1);
    let receipts = dms(&app, who, "receipt").await;
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0]["amount"], "8.00 USD");
    assert_eq!(receipts[0]["provider"], "manual");
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM audit_log WHERE action = 'payment.manual' AND actor = 'discord:900'").await,
        1
    );

    // Ten more days, with no transaction id given (one is made) and no amount: from the paid end.
    let mut more = manual(who, Coverage::Days(10), None);
    more.amount = None;
    let second = record_manual_payment(&app.app, &admin(), &more)
        .await
        .unwrap();
    assert!(
        second.transaction.starts_with("manual-"),
        "{}",
        second.transaction
    );
    assert_eq!(
        (second.paid_from, second.paid_to),
        (now + Duration::days(30), now + Duration::days(40))
    );
    assert_eq!(
        dms(&app, who, "receipt").await[1]["amount"],
        serde_json::Value::Null
    );
    assert_eq!(invites_queued(&app, who).await, 1, "no second invite");

    // Up to a date after the paid end.
    let until = now + Duration::days(90);
    let third = record_manual_payment(
        &app.app,
        &admin(),
        &manual(who, Coverage::Until(until), Some("bank-2026-002")),
    )
    .await
    .unwrap();
    assert_eq!(
        (third.paid_from, third.paid_to),
        (now + Duration::days(40), until)
    );
    assert_eq!(paid_until(&app, who).await, Some(until));

    // A flagged subscriber's payment is recorded, extends, invites nobody.
    let flagged = world.subscribers[1].0;
    account_change::set_flag(&app.app, &admin(), flagged, true)
        .await
        .unwrap();
    let paid = record_manual_payment(
        &app.app,
        &admin(),
        &manual(flagged, Coverage::Days(30), Some("cash-7")),
    )
    .await
    .unwrap();
    assert!(paid.flagged);
    assert_eq!(invites_queued(&app, flagged).await, 0);
    assert_eq!(
        paid_until(&app, flagged).await,
        Some(now + Duration::days(30))
    );
}

async fn every_refusal_names_what_is_wrong_and_writes_nothing(backend: Backend) {
    let (app, _fakes, world) = spawn(backend, 1).await;
    let who = world.subscribers[0].0;
    let now = app.clock.now();
    record_manual_payment(
        &app.app,
        &admin(),
        &manual(who, Coverage::Days(30), Some("bank-1")),
    )
    .await
    .unwrap();
    let before = written(&app).await;
    let end = now + Duration::days(30);
    let mut unknown_plan = manual(who, Coverage::Days(3), Some("x-1"));
    unknown_plan.plan = PlanId::new(99);
    let cases: Vec<(ManualPayment, &str)> = vec![
        (
            manual(who, Coverage::Days(0), Some("x-2")),
            "at least 1 (it was 0)",
        ),
        (
            manual(who, Coverage::Days(-5), Some("x-3")),
            "at least 1 (it was -5)",
        ),
        (
            manual(SubscriberId::new(777), Coverage::Days(3), Some("x-4")),
            "not a subscriber",
        ),
        (unknown_plan, "no plan #99"),
        (
            manual(who, Coverage::Until(now - Duration::days(1)), Some("x-5")),
            "not in the future",
        ),
        (
            manual(who, Coverage::Until(end - Duration::days(1)), Some("x-6")),
            "paid until",
        ),
        (manual(who, Coverage::Until(end), Some("x-7")), "paid until"),
        (manual(who, Coverage::Days(3), Some("  ")), "transaction id"),
        (
            manual(who, Coverage::Days(3), Some("bank-1")),
            "bank-1 is recorded already (payment #1)",
        ),
        (
            manual(who, Coverage::Days(3), Some(" bank-1 ")),
            "recorded already",
        ),
    ];
    for (payment, expected) in cases {
        let err = record_manual_payment(&app.app, &admin(), &payment)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains(expected),
            "{err} (expected {expected:?})"
        );
        assert!(!matches!(err, ManualPaymentError::Unexpected(_)), "{err:?}");
        assert_eq!(written(&app).await, before, "{expected}");
    }
    assert_eq!(paid_until(&app, who).await, Some(end));
}

async fn two_admins_entering_one_transaction_at_once_record_it_once(backend: Backend) {
    let (app, _fakes, world) = spawn(backend, 4).await;
    let now = app.clock.now();
    let attempts = world.subscribers.iter().map(|(who, _)| {
        let app = app.app.clone();
        let payment = manual(*who, Coverage::Days(30), Some("wire-0042"));
        async move { record_manual_payment(&app, &admin(), &payment).await }
    });
    let results = futures::future::join_all(attempts).await;
    let recorded: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(recorded.len(), 1, "{results:?}");
    for result in &results {
        if let Err(err) = result {
            assert!(
                matches!(err, ManualPaymentError::DuplicateTransaction { .. }),
                "{err:?}"
            );
        }
    }
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM payment WHERE provider_txn_id = 'wire-0042'"
        )
        .await,
        1
    );
    let paid: Vec<_> = payments(&app)
        .await
        .into_iter()
        .filter(|p| p.1 == "applied")
        .collect();
    assert_eq!(paid.len(), 1);
    assert_eq!(
        (paid[0].3, paid[0].4),
        (Some(now), Some(now + Duration::days(30)))
    );
}

async fn inside_an_open_transaction_a_refusal_leaves_it_usable(backend: Backend) {
    let (app, _fakes, world) = spawn(backend, 2).await;
    let now = app.clock.now();
    let mut tx = app.app.db.begin().await.unwrap();
    for (i, (who, _)) in world.subscribers.iter().enumerate() {
        let mut import = manual(
            *who,
            Coverage::Until(now + Duration::days(60)),
            Some(&format!("import-{i}")),
        );
        import.reference = Some("import".into());
        import.amount = None;
        record_manual_payment_in(&app.app, &mut tx, &Actor::System, &import)
            .await
            .unwrap();
    }
    let again = manual(world.subscribers[0].0, Coverage::Days(5), Some("import-0"));
    let err = record_manual_payment_in(&app.app, &mut tx, &Actor::System, &again)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ManualPaymentError::DuplicateTransaction { .. }),
        "{err:?}"
    );
    tx.commit().await.unwrap();
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM payment WHERE reference = 'import' AND status = 'applied'"
        )
        .await,
        2
    );
    for (who, _) in &world.subscribers {
        assert_eq!(paid_until(&app, *who).await, Some(now + Duration::days(60)));
    }
}

/// A subscriber as an import leaves one: a plan and an active Plex identity, no checkout, no
/// provider subscription. (The import service is being built by the lead; this test creates the
/// subscriber through the store as the import would.)
async fn imported(app: &TestApp, email: &str) -> SubscriberId {
    let now = app.clock.now();
    let mut tx = app.app.db.begin().await.unwrap();
    let who = usher::store::subscribers::insert_subscriber(
        &mut tx,
        DiscordId::new(5_000).unwrap(),
        "imported",
        now,
    )
    .await
    .unwrap();
    usher::store::subscribers::update_subscriber_plan(&mut tx, who, Some(PlanId::new(1)), now)
        .await
        .unwrap();
    usher::store::subscribers::insert_identity(
        &mut tx,
        who,
        &usher::store::subscribers::AccountKeys::email(&PlexEmail::parse(email).unwrap()),
        now,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    who
}

async fn a_never_seen_subscriptions_renewal_matches_by_email_and_links_it(backend: Backend) {
    let (app, fakes, _) = spawn(backend, 1).await;
    let now = app.clock.now();
    let who = imported(&app, "imported@example.com").await;

    // PayPal: a subscription from before Usher, paid by the same person (PayPal keeps the case
    // they typed). The sale names only the subscription: PayPal is asked who pays it.
    let sub = fakes
        .paypal
        .add_subscription(PAYPAL_PLAN, "Imported@Example.com");
    let first = fakes.paypal.event_sale_completed(&sub, "8.00", "USD");
    assert_eq!(paypal(&app, &fakes, &first).await, 200);
    let first_sale = first["resource"]["id"].as_str().unwrap();
    assert_eq!(payment(&app, first_sale).await.2, Some(who.get()));
    assert_eq!(linked(&app, &sub).await, Some(("active".into(), true)));
    assert_eq!(fakes.paypal.calls(routes::SUBSCRIPTION), 1);
    // The next renewal matches by the linked subscription: PayPal is not asked again.
    let second = fakes.paypal.event_sale_completed(&sub, "8.00", "USD");
    assert_eq!(paypal(&app, &fakes, &second).await, 200);
    assert_eq!(
        payment(&app, second["resource"]["id"].as_str().unwrap())
            .await
            .1,
        "applied"
    );
    assert_eq!(fakes.paypal.calls(routes::SUBSCRIPTION), 1);
    let two_months = BillingPeriod::Month.after(BillingPeriod::Month.after(now));
    assert_eq!(paid_until(&app, who).await, Some(two_months));

    // Stripe: a renewal (not the first invoice) of a subscription made outside Usher, by the
    // same email, matches and links the same way.
    let client = StripeClient::new(
        fakes.stripe.base_url(),
        secrecy::SecretString::from(fakes.stripe.secret_key()),
    )
    .unwrap();
    let session = client
        .create_checkout_session(&CheckoutRequest {
            price_id: crate::payments_support::STRIPE_PRICE.into(),
            recurring: true,
            usher_ref: "elsewhere-7".into(),
            customer_email: Some("imported@example.com".into()),
            success_url: app.app.settings.public_link("account"),
            cancel_url: app.app.settings.public_link("account"),
            idempotency_key: "elsewhere-7".into(),
        })
        .await
        .unwrap();
    let completed = fakes.stripe.complete_checkout(&session.id);
    let stripe_sub = completed["data"]["object"]["subscription"]
        .as_str()
        .unwrap()
        .to_owned();
    let _first_invoice = fakes.stripe.event_invoice_paid(&stripe_sub, now, now);
    let renewal = fakes.stripe.event_invoice_paid(&stripe_sub, now, now);
    assert_eq!(
        renewal["data"]["object"]["billing_reason"],
        "subscription_cycle"
    );
    assert_eq!(stripe(&app, &fakes, &renewal).await, 200);
    let renewal_id = renewal["data"]["object"]["id"].as_str().unwrap();
    assert_eq!(payment(&app, renewal_id).await.2, Some(who.get()));
    assert_eq!(
        linked(&app, &stripe_sub).await,
        Some(("active".into(), true))
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'subscription.linked_by_email'"
        )
        .await,
        2
    );
}

async fn a_first_invoice_of_an_unlinked_subscription_still_waits_for_its_activation(
    backend: Backend,
) {
    // The subscription's first invoice may race the checkout that made it: it is not matched by
    // email (the activation links it and applies it).
    let (app, fakes, world) = spawn(backend, 1).await;
    let who = world.subscribers[0].0;
    let now = app.clock.now();
    let (completed, sub) = crate::payments_support::stripe_subscription(&app, &fakes, who).await;
    let mut first = fakes.stripe.event_invoice_paid(&sub, now, now);
    first["data"]["object"]["parent"]["subscription_details"]["metadata"] = serde_json::json!({});
    assert_eq!(
        first["data"]["object"]["billing_reason"],
        "subscription_create"
    );
    assert_eq!(stripe(&app, &fakes, &first).await, 200);
    let id = first["data"]["object"]["id"].as_str().unwrap();
    assert_eq!(payment(&app, id).await.1, "unmatched");
    assert_eq!(stripe(&app, &fakes, &completed).await, 200);
    assert_eq!(payment(&app, id).await.1, "applied");
}

crate::on_both_backends!(
    a_manual_payment_extends_from_the_paid_end_and_applies_like_a_webhook,
    every_refusal_names_what_is_wrong_and_writes_nothing,
    two_admins_entering_one_transaction_at_once_record_it_once,
    inside_an_open_transaction_a_refusal_leaves_it_usable,
    a_never_seen_subscriptions_renewal_matches_by_email_and_links_it,
    a_first_invoice_of_an_unlinked_subscription_still_waits_for_its_activation,
);
