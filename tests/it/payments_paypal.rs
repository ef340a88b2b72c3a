//! The PayPal client against the fake PayPal: token caching, webhook verification (genuine,
//! forged, altered), subscriptions, and the fake's strictness.

use reqwest::header::{HeaderMap, HeaderValue};
use secrecy::SecretString;
use url::Url;
use usher::fakes::paypal::{FakePayPal, routes};
use usher::integrations::payments::paypal::{
    PayPalClient, PayPalError, PayPalEventKind, PayPalTransmission, SubscriptionRequest,
    parse_event,
};

const PLAN: &str = "P-5ML4271244454362WXNWU5NQ";

async fn fake() -> FakePayPal {
    let fake = FakePayPal::start().await;
    fake.add_plan(PLAN);
    fake
}

fn client(fake: &FakePayPal) -> PayPalClient {
    PayPalClient::new(
        fake.base_url(),
        fake.client_id(),
        SecretString::from(fake.client_secret()),
        fake.webhook_id(),
    )
    .unwrap()
}

fn subscription_request(request_id: &str) -> SubscriptionRequest {
    SubscriptionRequest {
        plan_id: PLAN.into(),
        custom_id: "sub-42".into(),
        email: Some("buyer@example.com".into()),
        return_url: Url::parse("https://usher.example/paypal/return").unwrap(),
        cancel_url: Url::parse("https://usher.example/plans").unwrap(),
        request_id: request_id.into(),
    }
}

fn sample_event() -> serde_json::Value {
    serde_json::json!({
        "id": "WH-1TEST", "event_version": "1.0", "event_type": "PAYMENT.SALE.COMPLETED",
        "resource_type": "sale", "summary": "Payment completed",
        "resource": {"id": "S1", "amount": {"total": "10.00", "currency": "USD"}},
    })
}

#[tokio::test]
async fn a_delivery_signed_by_the_fake_verifies_and_one_token_serves_many_verifications() {
    let fake = fake().await;
    let client = client(&fake);
    for _ in 0..5 {
        let (body, headers) = fake.signed(&sample_event());
        let transmission = PayPalTransmission::from_headers(&headers).unwrap();
        assert!(client.verify_webhook(&transmission, &body).await.unwrap());
    }
    assert_eq!(fake.tokens_issued(), 1);
    assert_eq!(fake.verify_calls(), 5);
}

#[tokio::test]
async fn concurrent_verifications_share_one_token_fetch() {
    let fake = fake().await;
    let client = client(&fake);
    let deliveries: Vec<_> = (0..8).map(|_| fake.signed(&sample_event())).collect();
    let checks = deliveries.iter().map(|(body, headers)| {
        let client = client.clone();
        async move {
            let transmission = PayPalTransmission::from_headers(headers).unwrap();
            client.verify_webhook(&transmission, body).await.unwrap()
        }
    });
    let results = futures::future::join_all(checks).await;
    assert!(results.into_iter().all(|ok| ok));
    assert_eq!(fake.tokens_issued(), 1);
    assert_eq!(fake.calls(routes::TOKEN), 1);
}

#[tokio::test]
async fn the_body_reaches_paypal_byte_for_byte() {
    let fake = fake().await;
    let client = client(&fake);
    let (body, headers) = fake.signed(&sample_event());
    // The same event with other whitespace and key order is not what was signed: a client that
    // re-serialised the body would fail here on a genuine delivery.
    let reparsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let pretty = serde_json::to_vec_pretty(&reparsed).unwrap();
    let transmission = PayPalTransmission::from_headers(&headers).unwrap();
    assert!(client.verify_webhook(&transmission, &body).await.unwrap());
    assert!(!client.verify_webhook(&transmission, &pretty).await.unwrap());
}

#[tokio::test]
async fn a_forged_or_altered_transmission_is_not_verified() {
    let fake = fake().await;
    let client = client(&fake);
    let (body, headers) = fake.signed(&sample_event());
    let genuine = PayPalTransmission::from_headers(&headers).unwrap();

    let mut forged = genuine.clone();
    forged.transmission_sig = "bm90IGEgcmVhbCBzaWduYXR1cmU=".into();
    assert!(!client.verify_webhook(&forged, &body).await.unwrap());

    let mut other_id = genuine.clone();
    other_id.transmission_id = uuid::Uuid::new_v4().to_string();
    assert!(!client.verify_webhook(&other_id, &body).await.unwrap());

    let mut other_cert = genuine.clone();
    other_cert.cert_url = "https://evil.example/cert.pem".into();
    assert!(!client.verify_webhook(&other_cert, &body).await.unwrap());

    let altered = String::from_utf8(body.clone())
        .unwrap()
        .replace("10.00", "99.00");
    assert!(
        !client
            .verify_webhook(&genuine, altered.as_bytes())
            .await
            .unwrap()
    );

    let other_webhook = PayPalClient::new(
        fake.base_url(),
        fake.client_id(),
        SecretString::from(fake.client_secret()),
        "SOME0THERWEBHOOK1D".into(),
    )
    .unwrap();
    assert!(!other_webhook.verify_webhook(&genuine, &body).await.unwrap());

    assert!(!client.verify_webhook(&genuine, b"not json").await.unwrap());
    assert_eq!(
        fake.verify_calls(),
        5,
        "a non-JSON body is refused without a call"
    );
}

#[tokio::test]
async fn a_missing_paypal_header_is_named() {
    let fake = fake().await;
    let (_, mut headers) = fake.signed(&sample_event());
    headers.remove("paypal-transmission-sig");
    let err = PayPalTransmission::from_headers(&headers).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the paypal-transmission-sig header is missing or not text"
    );
}

#[tokio::test]
async fn a_revoked_token_is_refreshed_once_and_the_call_retried() {
    let fake = fake().await;
    let client = client(&fake);
    let (body, headers) = fake.signed(&sample_event());
    let transmission = PayPalTransmission::from_headers(&headers).unwrap();
    assert!(client.verify_webhook(&transmission, &body).await.unwrap());
    fake.revoke_tokens();
    assert!(client.verify_webhook(&transmission, &body).await.unwrap());
    assert_eq!(fake.tokens_issued(), 2);
    assert_eq!(fake.verify_calls(), 3);
}

#[tokio::test]
async fn a_token_about_to_expire_is_replaced_before_use() {
    let fake = fake().await;
    // Within the client's 60-second margin: every call needs a fresh token.
    fake.set_token_lifetime(30);
    let client = client(&fake);
    let (body, headers) = fake.signed(&sample_event());
    let transmission = PayPalTransmission::from_headers(&headers).unwrap();
    for _ in 0..3 {
        assert!(client.verify_webhook(&transmission, &body).await.unwrap());
    }
    assert_eq!(fake.tokens_issued(), 3);
}

#[tokio::test]
async fn wrong_client_credentials_are_an_auth_error_without_the_secret() {
    let fake = fake().await;
    let secret = "wrong-secret-value-0123456789";
    let client = PayPalClient::new(
        fake.base_url(),
        fake.client_id(),
        SecretString::from(secret.to_owned()),
        fake.webhook_id(),
    )
    .unwrap();
    let (body, headers) = fake.signed(&sample_event());
    let transmission = PayPalTransmission::from_headers(&headers).unwrap();
    let err = client
        .verify_webhook(&transmission, &body)
        .await
        .unwrap_err();
    assert!(matches!(err, PayPalError::Unauthorized), "{err:?}");
    let shown = format!("{err} {err:?} {client:?}");
    assert!(!shown.contains(secret), "{shown}");
    assert_eq!(fake.tokens_issued(), 0);
    assert_eq!(fake.verify_calls(), 0);
}

#[tokio::test]
async fn a_subscription_is_created_once_per_request_id_with_an_approve_link() {
    let fake = fake().await;
    let client = client(&fake);
    let first = client
        .create_subscription(&subscription_request("req-1"))
        .await
        .unwrap();
    assert!(first.id.starts_with("I-"), "{}", first.id);
    assert!(
        first.approve_url.as_str().contains("ba_token="),
        "{}",
        first.approve_url
    );
    let again = client
        .create_subscription(&subscription_request("req-1"))
        .await
        .unwrap();
    assert_eq!(first, again);
    let recorded = fake.subscriptions();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].custom_id.as_deref(), Some("sub-42"));
    assert_eq!(recorded[0].email.as_deref(), Some("buyer@example.com"));
    assert_eq!(recorded[0].request_id.as_deref(), Some("req-1"));
    assert_eq!(fake.calls(routes::SUBSCRIPTIONS), 2);
    assert_eq!(fake.tokens_issued(), 1);

    let mut changed = subscription_request("req-1");
    changed.custom_id = "sub-43".into();
    let err = client.create_subscription(&changed).await.unwrap_err();
    assert!(
        matches!(err, PayPalError::Refused { status: 422, ref issue, .. } if issue.as_deref() == Some("DUPLICATE_REQUEST_ID")),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_unknown_plan_is_refused_with_paypals_issue() {
    let fake = fake().await;
    let mut request = subscription_request("req-2");
    request.plan_id = "P-UNKNOWN".into();
    let err = client(&fake)
        .create_subscription(&request)
        .await
        .unwrap_err();
    match err {
        PayPalError::Refused {
            status,
            name,
            issue,
            debug_id,
            ..
        } => {
            assert_eq!(status, 404);
            assert_eq!(name, "RESOURCE_NOT_FOUND");
            assert_eq!(issue.as_deref(), Some("INVALID_RESOURCE_ID"));
            assert!(debug_id.is_some());
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(fake.subscriptions().is_empty());
}

#[tokio::test]
async fn the_fake_wants_basic_auth_a_form_grant_a_live_bearer_and_json() {
    let fake = fake().await;
    let http = reqwest::Client::new();
    let token_url = fake.base_url().join("v1/oauth2/token").unwrap();
    let status = |r: reqwest::Response| r.status().as_u16();

    let no_auth = http
        .post(token_url.clone())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(status(no_auth), 401);
    let json_grant = http
        .post(token_url.clone())
        .basic_auth(fake.client_id(), Some(fake.client_secret()))
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(status(json_grant), 400);
    let token: serde_json::Value = http
        .post(token_url)
        .basic_auth(fake.client_id(), Some(fake.client_secret()))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(token["token_type"], "Bearer");
    assert!(token["expires_in"].as_u64().unwrap() > 60);
    let access_token = token["access_token"].as_str().unwrap();

    let verify_url = fake
        .base_url()
        .join("v1/notifications/verify-webhook-signature")
        .unwrap();
    let made_up = http
        .post(verify_url.clone())
        .bearer_auth("A21AAmadeup")
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(status(made_up), 401);
    let form_body = http
        .post(verify_url.clone())
        .bearer_auth(access_token)
        .form(&[("webhook_id", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(status(form_body), 415);
    let incomplete: serde_json::Value = http
        .post(verify_url)
        .bearer_auth(access_token)
        .json(&serde_json::json!({"webhook_id": fake.webhook_id()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(incomplete["name"], "VALIDATION_ERROR");
    assert_eq!(incomplete["details"][0]["field"], "/auth_algo");
    assert_eq!(fake.tokens_issued(), 1);
}

#[tokio::test]
async fn the_fakes_events_parse_into_the_kinds_usher_acts_on() {
    let fake = fake().await;
    let subscription = client(&fake)
        .create_subscription(&subscription_request("req-3"))
        .await
        .unwrap();
    let next = chrono::Utc::now() + chrono::Duration::days(30);
    let activated = fake.event_subscription(
        "BILLING.SUBSCRIPTION.ACTIVATED",
        &subscription.id,
        Some(next),
    );
    let PayPalEventKind::SubscriptionActivated(event) =
        parse_event(&fake.signed(&activated).0).unwrap().kind
    else {
        panic!("not an activation");
    };
    assert_eq!(event.subscription_id, subscription.id);
    assert_eq!(event.custom_id.as_deref(), Some("sub-42"));
    assert_eq!(event.plan_id.as_deref(), Some(PLAN));
    assert_eq!(event.payer_email.as_deref(), Some("buyer@example.com"));
    assert_eq!(
        event.next_billing_time.map(|t| t.timestamp()),
        Some(next.timestamp())
    );
    assert_eq!(fake.subscriptions()[0].status, "ACTIVE");

    let sale = fake.event_sale_completed(&subscription.id, "10.00", "USD");
    let parsed = parse_event(&fake.signed(&sale).0).unwrap();
    assert!(parsed.id.starts_with("WH-"));
    let PayPalEventKind::SaleCompleted(sale) = parsed.kind else {
        panic!("not a sale");
    };
    assert_eq!(
        sale.billing_agreement_id.as_deref(),
        Some(subscription.id.as_str())
    );
    assert_eq!(sale.amount_minor, 1000);
    assert_eq!(sale.custom, None);

    for (event_type, expected) in [
        ("BILLING.SUBSCRIPTION.CANCELLED", "CANCELLED"),
        ("BILLING.SUBSCRIPTION.SUSPENDED", "SUSPENDED"),
        ("BILLING.SUBSCRIPTION.EXPIRED", "EXPIRED"),
    ] {
        let event = fake.event_subscription(event_type, &subscription.id, None);
        let kind = parse_event(&fake.signed(&event).0).unwrap().kind;
        assert!(
            !matches!(
                kind,
                PayPalEventKind::Other | PayPalEventKind::SaleCompleted(_)
            ),
            "{event_type}"
        );
        assert_eq!(fake.subscriptions()[0].status, expected);
    }
}

#[test]
fn transmission_headers_are_read_case_insensitively() {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("Paypal-Auth-Algo", "SHA256withRSA"),
        (
            "PAYPAL-CERT-URL",
            "https://api.paypal.com/v1/notifications/certs/CERT-1",
        ),
        (
            "paypal-transmission-id",
            "69cd13f0-d67a-11e5-baa3-778b53f4ae55",
        ),
        ("PayPal-Transmission-Sig", "c2ln"),
        ("PAYPAL-TRANSMISSION-TIME", "2025-06-01T10:00:00Z"),
    ] {
        headers.insert(
            reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_static(value),
        );
    }
    let transmission = PayPalTransmission::from_headers(&headers).unwrap();
    assert_eq!(transmission.transmission_time, "2025-06-01T10:00:00Z");
}
