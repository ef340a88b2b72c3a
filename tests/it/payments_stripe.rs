//! The Stripe client against the fake Stripe, the fake's strictness, and the fake's webhook
//! deliveries through Usher's verification and parsing.

use chrono::{Duration, Utc};
use secrecy::SecretString;
use url::Url;
use usher::fakes::stripe::{CHECKOUT_ROUTE, FakeStripe};
use usher::integrations::payments::stripe::{
    CheckoutMode, CheckoutPaymentStatus, CheckoutRequest, SignatureError, StripeClient,
    StripeError, StripeEventKind, SubscriptionStatus, parse_event, verify_signature,
};

const MONTHLY: &str = "price_1PmonthlyUSD";
const ONE_OFF: &str = "price_1PoneoffUSD";

async fn fake() -> FakeStripe {
    let fake = FakeStripe::start().await;
    fake.add_price(MONTHLY, true, 1000, "usd");
    fake.add_price(ONE_OFF, false, 2500, "usd");
    fake
}

fn client(fake: &FakeStripe) -> StripeClient {
    StripeClient::new(fake.base_url(), SecretString::from(fake.secret_key())).unwrap()
}

fn request(price_id: &str, recurring: bool, key: &str) -> CheckoutRequest {
    CheckoutRequest {
        price_id: price_id.into(),
        recurring,
        usher_ref: "sub-42".into(),
        customer_email: Some("buyer@example.com".into()),
        success_url: Url::parse("https://usher.example/paid?session_id={CHECKOUT_SESSION_ID}")
            .unwrap(),
        cancel_url: Url::parse("https://usher.example/plans").unwrap(),
        idempotency_key: key.into(),
    }
}

fn raw_http() -> reqwest::Client {
    reqwest::Client::new()
}

#[tokio::test]
async fn a_subscription_checkout_carries_the_reference_to_the_session_and_the_subscription() {
    let fake = fake().await;
    let session = client(&fake)
        .create_checkout_session(&request(MONTHLY, true, "checkout-1"))
        .await
        .unwrap();
    assert!(session.id.starts_with("cs_test_"), "{}", session.id);
    assert_eq!(session.url.host_str(), Some("checkout.stripe.com"));
    let recorded = fake.sessions();
    assert_eq!(recorded.len(), 1);
    let recorded = &recorded[0];
    assert_eq!(recorded.id, session.id);
    assert_eq!(recorded.mode, "subscription");
    assert_eq!(recorded.quantity, 1);
    assert_eq!(recorded.client_reference_id.as_deref(), Some("sub-42"));
    assert_eq!(recorded.metadata["usher_ref"], "sub-42");
    assert_eq!(recorded.subscription_metadata["usher_ref"], "sub-42");
    assert_eq!(
        recorded.customer_email.as_deref(),
        Some("buyer@example.com")
    );
    assert_eq!(
        recorded.success_url,
        "https://usher.example/paid?session_id={CHECKOUT_SESSION_ID}"
    );
    assert_eq!(recorded.idempotency_key.as_deref(), Some("checkout-1"));
    assert_eq!(fake.calls(CHECKOUT_ROUTE), 1);
}

#[tokio::test]
async fn a_one_off_checkout_is_payment_mode_without_subscription_data() {
    let fake = fake().await;
    client(&fake)
        .create_checkout_session(&request(ONE_OFF, false, "checkout-2"))
        .await
        .unwrap();
    let recorded = &fake.sessions()[0];
    assert_eq!(recorded.mode, "payment");
    assert!(recorded.subscription_metadata.is_empty());
    assert_eq!(recorded.amount_total, 2500);
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_same_session_and_creates_one() {
    let fake = fake().await;
    let client = client(&fake);
    let first = client
        .create_checkout_session(&request(MONTHLY, true, "same-key"))
        .await
        .unwrap();
    let again = client
        .create_checkout_session(&request(MONTHLY, true, "same-key"))
        .await
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(fake.sessions().len(), 1);
    assert_eq!(fake.calls(CHECKOUT_ROUTE), 2);
}

#[tokio::test]
async fn the_same_idempotency_key_with_another_request_is_refused() {
    let fake = fake().await;
    let client = client(&fake);
    client
        .create_checkout_session(&request(MONTHLY, true, "same-key"))
        .await
        .unwrap();
    let err = client
        .create_checkout_session(&request(ONE_OFF, false, "same-key"))
        .await
        .unwrap_err();
    match err {
        StripeError::Refused { status, code, .. } => {
            assert_eq!(status, 400);
            assert_eq!(code.as_deref(), Some("idempotency_error"));
        }
        other => panic!("expected an idempotency refusal, got {other:?}"),
    }
    assert_eq!(fake.sessions().len(), 1);
}

#[tokio::test]
async fn a_wrong_secret_key_is_an_auth_error_that_does_not_show_the_key() {
    let fake = fake().await;
    let wrong = "sk_test_wrong_key_value_123456";
    let client = StripeClient::new(fake.base_url(), SecretString::from(wrong.to_owned())).unwrap();
    let err = client
        .create_checkout_session(&request(MONTHLY, true, "k"))
        .await
        .unwrap_err();
    assert!(matches!(err, StripeError::Unauthorized), "{err:?}");
    assert!(!err.is_transient());
    let shown = format!("{err} {err:?} {client:?}");
    assert!(!shown.contains(wrong), "{shown}");
    assert!(fake.sessions().is_empty());
}

#[tokio::test]
async fn an_unknown_price_is_refused_with_stripes_message() {
    let fake = fake().await;
    let err = client(&fake)
        .create_checkout_session(&request("price_nope", true, "k"))
        .await
        .unwrap_err();
    match err {
        StripeError::Refused {
            status,
            error_type,
            code,
            param,
            message,
        } => {
            assert_eq!(status, 400);
            assert_eq!(error_type, "invalid_request_error");
            assert_eq!(code.as_deref(), Some("resource_missing"));
            assert_eq!(param.as_deref(), Some("line_items[0][price]"));
            assert!(message.contains("price_nope"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_recurring_price_in_payment_mode_is_refused() {
    let fake = fake().await;
    let err = client(&fake)
        .create_checkout_session(&request(MONTHLY, false, "k"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StripeError::Refused { status: 400, .. }),
        "{err:?}"
    );
    let err = client(&fake)
        .create_checkout_session(&request(ONE_OFF, true, "k2"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StripeError::Refused { status: 400, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_fake_refuses_json_bodies_missing_keys_unknown_and_missing_parameters() {
    let fake = fake().await;
    let url = fake.base_url().join("v1/checkout/sessions").unwrap();
    let http = raw_http();
    let status_and_body = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        (status, response.json::<serde_json::Value>().await.unwrap())
    };

    let (status, body) = status_and_body(
        http.post(url.clone())
            .form(&[("mode", "payment")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["type"], "invalid_request_error");

    let (status, _) = status_and_body(
        http.post(url.clone())
            .bearer_auth(fake.secret_key())
            .json(&serde_json::json!({"mode": "payment"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);

    let full = [
        ("mode", "payment"),
        ("line_items[0][price]", ONE_OFF),
        ("line_items[0][quantity]", "1"),
        ("success_url", "https://usher.example/ok"),
    ];
    for (drop, param) in [
        ("mode", "mode"),
        ("success_url", "success_url"),
        ("line_items[0][price]", "line_items"),
        ("line_items[0][quantity]", "line_items[0][quantity]"),
    ] {
        let form: Vec<_> = full.iter().filter(|(k, _)| *k != drop).collect();
        let (status, body) = status_and_body(
            http.post(url.clone())
                .bearer_auth(fake.secret_key())
                .form(&form)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 400, "without {drop}");
        assert_eq!(body["error"]["code"], "parameter_missing", "without {drop}");
        assert_eq!(body["error"]["param"], param, "without {drop}");
    }

    let mut unknown = full.to_vec();
    unknown.push(("colour", "blue"));
    let (status, body) = status_and_body(
        http.post(url.clone())
            .bearer_auth(fake.secret_key())
            .form(&unknown)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("parameter_unknown"))
    );

    let mut with_subscription_data = full.to_vec();
    with_subscription_data.push(("subscription_data[metadata][usher_ref]", "x"));
    let (status, _) = status_and_body(
        http.post(url.clone())
            .bearer_auth(fake.secret_key())
            .form(&with_subscription_data)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);

    let (status, _) = status_and_body(
        http.post(url)
            .bearer_auth(fake.secret_key())
            .form(&full)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(fake.sessions().len(), 1);
    assert_eq!(fake.calls(CHECKOUT_ROUTE), 9);
}

#[tokio::test]
async fn a_completed_subscription_checkout_and_its_events_verify_and_parse() {
    let fake = fake().await;
    let session = client(&fake)
        .create_checkout_session(&request(MONTHLY, true, "k"))
        .await
        .unwrap();
    let secret = fake.webhook_secret();
    let now = Utc::now();

    let (body, header) = fake.signed(&fake.complete_checkout(&session.id));
    verify_signature(&body, &header, &secret, now).unwrap();
    let StripeEventKind::CheckoutCompleted(checkout) = parse_event(&body).unwrap().kind else {
        panic!("not a checkout");
    };
    assert_eq!(checkout.session_id, session.id);
    assert_eq!(checkout.client_reference_id.as_deref(), Some("sub-42"));
    assert_eq!(checkout.metadata_ref.as_deref(), Some("sub-42"));
    assert_eq!(checkout.mode, CheckoutMode::Subscription);
    assert_eq!(checkout.payment_status, CheckoutPaymentStatus::Paid);
    assert_eq!(checkout.amount_total, Some(1000));
    let subscription = checkout.subscription.expect("a subscription id");
    let customer = checkout.customer.expect("a customer id");
    assert!(subscription.starts_with("sub_") && customer.starts_with("cus_"));
    assert_eq!(
        fake.sessions()[0].subscription.as_deref(),
        Some(subscription.as_str())
    );

    let (start, end) = (now, now + Duration::days(30));
    for (event, reason) in [
        (
            fake.event_invoice_paid(&subscription, start, end),
            "subscription_create",
        ),
        (
            fake.event_invoice_paid_legacy(&subscription, start, end),
            "subscription_cycle",
        ),
    ] {
        let (body, header) = fake.signed(&event);
        verify_signature(&body, &header, &secret, now).unwrap();
        let parsed = parse_event(&body).unwrap();
        assert!(parsed.id.starts_with("evt_"));
        let StripeEventKind::InvoicePaid(invoice) = parsed.kind else {
            panic!("not an invoice");
        };
        assert_eq!(invoice.subscription.as_deref(), Some(subscription.as_str()));
        assert_eq!(invoice.customer.as_deref(), Some(customer.as_str()));
        assert_eq!(invoice.metadata_ref.as_deref(), Some("sub-42"));
        assert_eq!(invoice.amount_paid, 1000);
        assert_eq!(invoice.currency.as_str(), "USD");
        assert_eq!(
            invoice.period_end.map(|t| t.timestamp()),
            Some(end.timestamp())
        );
        assert_eq!(invoice.billing_reason.as_deref(), Some(reason));
    }

    let failed = fake.event_invoice_payment_failed(&subscription, end, end + Duration::days(30));
    let StripeEventKind::InvoicePaymentFailed(invoice) =
        parse_event(&fake.signed(&failed).0).unwrap().kind
    else {
        panic!("not a failed invoice");
    };
    assert_eq!((invoice.amount_paid, invoice.amount_due), (0, 1000));

    let updated = fake.event_subscription_updated(&subscription, "active", true, end);
    let StripeEventKind::SubscriptionUpdated(updated) =
        parse_event(&fake.signed(&updated).0).unwrap().kind
    else {
        panic!("not an update");
    };
    assert!(updated.cancel_at_period_end);
    assert_eq!(updated.status, SubscriptionStatus::Active);
    assert_eq!(updated.metadata_ref.as_deref(), Some("sub-42"));
    assert_eq!(
        updated.current_period_end.map(|t| t.timestamp()),
        Some(end.timestamp())
    );

    let deleted = fake.event_subscription_deleted(&subscription, end);
    let StripeEventKind::SubscriptionDeleted(deleted) =
        parse_event(&fake.signed(&deleted).0).unwrap().kind
    else {
        panic!("not a deletion");
    };
    assert_eq!(
        deleted.ended_at.map(|t| t.timestamp()),
        Some(end.timestamp())
    );
    assert_eq!(deleted.status, SubscriptionStatus::Canceled);

    let refunded = fake.event_charge_refunded(&subscription, 1000);
    let StripeEventKind::ChargeRefunded(charge) =
        parse_event(&fake.signed(&refunded).0).unwrap().kind
    else {
        panic!("not a refund");
    };
    assert!(charge.refunded);
    assert_eq!(charge.customer.as_deref(), Some(customer.as_str()));
    assert_eq!(charge.invoice, None);
}

#[tokio::test]
async fn deliveries_signed_too_early_or_too_late_or_with_another_secret_are_refused() {
    let fake = fake().await;
    let event = serde_json::json!({"id": "evt_1", "object": "event", "type": "customer.created",
        "created": 1, "data": {"object": {"id": "cus_1", "object": "customer"}}});
    let now = Utc::now();
    let (body, header) = fake.signed_at(&event, now.timestamp() - 301);
    assert!(matches!(
        verify_signature(&body, &header, &fake.webhook_secret(), now),
        Err(SignatureError::OutsideTolerance { .. })
    ));
    let (body, header) = fake.signed_at(&event, now.timestamp() + 301);
    assert!(matches!(
        verify_signature(&body, &header, &fake.webhook_secret(), now),
        Err(SignatureError::OutsideTolerance { .. })
    ));
    let (body, header) = fake.signed(&event);
    assert_eq!(
        verify_signature(&body, &header, "whsec_someone_else", now),
        Err(SignatureError::NoMatch)
    );
}

#[tokio::test]
async fn concurrent_requests_with_one_idempotency_key_make_one_session() {
    let fake = fake().await;
    let client = client(&fake);
    let request = request(MONTHLY, true, "racing-key");
    let sessions =
        futures::future::join_all((0..6).map(|_| client.create_checkout_session(&request))).await;
    let ids: std::collections::HashSet<_> = sessions.into_iter().map(|s| s.unwrap().id).collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(fake.sessions().len(), 1);
    assert_eq!(fake.calls(CHECKOUT_ROUTE), 6);
}
