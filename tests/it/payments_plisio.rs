//! The Plisio client against the fake Plisio, the fake's strictness, and its callbacks through
//! Usher's verification.

use secrecy::SecretString;
use url::Url;
use usher::domain::{Currency, Money};
use usher::fakes::plisio::{FakePlisio, INVOICE_ROUTE};
use usher::integrations::payments::plisio::{
    CallbackError, InvoiceRequest, PlisioClient, PlisioError, PlisioStatus, verify_callback,
};

fn client(fake: &FakePlisio) -> PlisioClient {
    PlisioClient::new(fake.base_url(), SecretString::from(fake.secret_key())).unwrap()
}

fn invoice_request(order_number: &str) -> InvoiceRequest {
    InvoiceRequest {
        order_number: order_number.into(),
        order_name: "Plex access, 1 month".into(),
        source: Money::parse("10.5", Currency::parse("USD").unwrap()).unwrap(),
        callback_url: Url::parse("https://usher.example/webhooks/plisio?shop=main").unwrap(),
        email: Some("buyer@example.com".into()),
        expire_min: Some(60),
    }
}

#[tokio::test]
async fn an_invoice_is_created_with_a_json_callback_and_a_decimal_amount() {
    let fake = FakePlisio::start().await;
    let invoice = client(&fake)
        .create_invoice(&invoice_request("ord-1"))
        .await
        .unwrap();
    assert_eq!(invoice.txn_id.len(), 24);
    assert_eq!(
        invoice.invoice_url.as_str(),
        format!("https://plisio.net/invoice/{}", invoice.txn_id)
    );
    let recorded = fake.invoices();
    assert_eq!(recorded.len(), 1);
    let recorded = &recorded[0];
    assert_eq!(recorded.order_number, "ord-1");
    assert_eq!(recorded.source_currency.as_deref(), Some("USD"));
    assert_eq!(recorded.source_amount.as_deref(), Some("10.50"));
    assert_eq!(
        recorded.callback_url.as_deref(),
        Some("https://usher.example/webhooks/plisio?shop=main&json=true")
    );
    assert_eq!(recorded.email.as_deref(), Some("buyer@example.com"));
    assert_eq!(recorded.expire_min, Some(60));
    assert_eq!(fake.calls(INVOICE_ROUTE), 1);
}

#[tokio::test]
async fn a_callback_url_that_already_asks_for_json_is_not_changed() {
    let fake = FakePlisio::start().await;
    let mut request = invoice_request("ord-2");
    request.callback_url = Url::parse("https://usher.example/webhooks/plisio?json=true").unwrap();
    client(&fake).create_invoice(&request).await.unwrap();
    assert_eq!(
        fake.invoices()[0].callback_url.as_deref(),
        Some("https://usher.example/webhooks/plisio?json=true")
    );
}

#[tokio::test]
async fn a_wrong_key_is_an_auth_error_that_never_shows_the_key() {
    let fake = FakePlisio::start().await;
    let wrong = "wrong-plisio-key-0123456789";
    let client = PlisioClient::new(fake.base_url(), SecretString::from(wrong.to_owned())).unwrap();
    let err = client
        .create_invoice(&invoice_request("ord-3"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, PlisioError::Unauthorized { status: 401, ref message } if message.contains("invalid credentials")),
        "{err:?}"
    );
    let shown = format!("{err} {err:?} {client:?}");
    assert!(!shown.contains(wrong), "{shown}");
    assert!(fake.invoices().is_empty());
}

#[tokio::test]
async fn a_duplicate_order_number_is_refused_with_plisios_message() {
    let fake = FakePlisio::start().await;
    let client = client(&fake);
    client
        .create_invoice(&invoice_request("ord-4"))
        .await
        .unwrap();
    let err = client
        .create_invoice(&invoice_request("ord-4"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, PlisioError::Refused { status: 422, ref message } if message.contains("order_number")),
        "{err:?}"
    );
    assert!(!err.is_transient());
    assert_eq!(fake.invoices().len(), 1);
}

#[tokio::test]
async fn the_fake_wants_the_order_fields_and_an_amount() {
    let fake = FakePlisio::start().await;
    let http = reqwest::Client::new();
    let key = fake.secret_key();
    let complete = [
        ("order_number", "o1"),
        ("order_name", "n"),
        ("source_currency", "USD"),
        ("source_amount", "10.00"),
        ("api_key", key.as_str()),
    ];
    let url = fake.base_url().join("api/v1/invoices/new").unwrap();
    for drop in ["order_number", "order_name", "source_amount"] {
        let query: Vec<_> = complete.iter().filter(|(k, _)| *k != drop).collect();
        let response = http.get(url.clone()).query(&query).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 422, "without {drop}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["status"], "error");
        assert!(body["data"]["message"].is_string());
    }
    let negative: Vec<_> = complete
        .iter()
        .map(|&(k, v)| {
            if k == "source_amount" {
                (k, "-1")
            } else {
                (k, v)
            }
        })
        .collect();
    let response = http.get(url.clone()).query(&negative).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 422);
    let posted = http
        .post(url.clone())
        .query(&complete)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status().as_u16(), 405);
    let ok = http.get(url).query(&complete).send().await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(fake.invoices().len(), 1);
}

#[tokio::test]
async fn the_fakes_callbacks_verify_with_the_shop_key_only() {
    let fake = FakePlisio::start().await;
    let invoice = client(&fake)
        .create_invoice(&invoice_request("ord-5"))
        .await
        .unwrap();
    for (status, expected) in [
        ("pending", PlisioStatus::Pending),
        ("completed", PlisioStatus::Completed),
        ("mismatch", PlisioStatus::Mismatch),
        ("cancelled duplicate", PlisioStatus::CancelledDuplicate),
        ("expired", PlisioStatus::Expired),
    ] {
        let body = fake.callback("ord-5", status);
        let callback = verify_callback(&body, &fake.secret_key()).unwrap();
        assert_eq!(callback.status, expected);
        assert_eq!(callback.txn_id, invoice.txn_id);
        assert_eq!(callback.order_number, "ord-5");
        assert_eq!(callback.source_amount_minor, Some(1050));
        assert_eq!(
            callback.source_currency.map(|c| c.to_string()).as_deref(),
            Some("USD")
        );
        assert_eq!(
            verify_callback(&body, "another-shop-key"),
            Err(CallbackError::HashMismatch)
        );
    }
}
