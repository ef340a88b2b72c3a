//! Payment webhooks: `POST /webhooks/stripe`, `/webhooks/paypal`, `/webhooks/plisio`.
//!
//! Rules it keeps: authenticate first (Stripe's signature, PayPal's verification API, Plisio's
//! `verify_hash`); a bad or missing signature is a 400 with nothing written and a warning logged
//! WITHOUT the body; a verified delivery is handed to [`payments::process`], which records it once
//! and commits everything it causes in one transaction. A replay answers 200. A provider that is
//! not configured answers 404. Failures on our side answer 500 so the provider retries.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use secrecy::ExposeSecret as _;

use crate::app::App;
use crate::domain::Provider;
use crate::integrations::payments::paypal::{self, PayPalEventKind, PayPalTransmission};
use crate::integrations::payments::plisio;
use crate::integrations::payments::stripe::{
    self, CheckoutMode, CheckoutPaymentStatus, StripeEventKind, SubscriptionStatus,
};
use crate::services::payments::{self, PaymentEvent, Processed};

/// Largest body accepted (provider events are a few KiB).
const MAX_BODY: usize = 256 * 1024;

/// The webhook routes.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/webhooks/stripe", post(stripe_webhook))
        .route("/webhooks/paypal", post(paypal_webhook))
        .route("/webhooks/plisio", post(plisio_webhook))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
}

fn refuse(provider: &str, reason: &dyn std::fmt::Display) -> Response {
    tracing::warn!(provider, reason = %reason, "webhook refused");
    (StatusCode::BAD_REQUEST, "refused\n").into_response()
}

async fn finish(
    app: &App,
    provider: Provider,
    event_id: &str,
    event_type: &str,
    events: &[PaymentEvent],
) -> Response {
    match payments::process(app, provider, event_id, event_type, events).await {
        Ok(Processed::Applied) => (StatusCode::OK, "ok\n").into_response(),
        Ok(Processed::Replay) => (StatusCode::OK, "already processed\n").into_response(),
        Err(err) => {
            tracing::error!(provider = %provider, event_type, error = format!("{err:#}"), "webhook processing failed; the provider will retry");
            (StatusCode::INTERNAL_SERVER_ERROR, "try again\n").into_response()
        }
    }
}

async fn stripe_webhook(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(config) = &app.settings.payments.stripe else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let header = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Err(err) = stripe::verify_signature(
        &body,
        header,
        config.webhook_secret.expose_secret(),
        app.clock.now(),
    ) {
        return refuse("stripe", &err);
    }
    let event = match stripe::parse_event(&body) {
        Ok(event) => event,
        Err(err) => return refuse("stripe", &err),
    };
    let events = stripe_events(event.kind);
    finish(
        &app,
        Provider::Stripe,
        &event.id,
        &event.event_type,
        &events,
    )
    .await
}

/// What a Stripe event means. A subscription-mode checkout only links the subscription: its money
/// arrives as `invoice.paid`, so counting the checkout too would pay twice.
fn stripe_events(kind: StripeEventKind) -> Vec<PaymentEvent> {
    match kind {
        StripeEventKind::CheckoutCompleted(c) => {
            let reference = c.client_reference_id.or(c.metadata_ref);
            match (c.mode, c.subscription) {
                (CheckoutMode::Subscription, Some(subscription)) => {
                    vec![PaymentEvent::SubscriptionStarted {
                        reference,
                        subscription,
                        customer: c.customer,
                        status: "active".into(),
                    }]
                }
                (CheckoutMode::Payment, _) if c.payment_status == CheckoutPaymentStatus::Paid => {
                    vec![PaymentEvent::Paid {
                        txn_id: c.session_id,
                        reference,
                        subscription: None,
                        customer: c.customer,
                        payer_email: c.customer_email,
                        amount_minor: c.amount_total.unwrap_or(0),
                        currency: c
                            .currency
                            .map(|c| c.as_str().to_owned())
                            .unwrap_or_default(),
                    }]
                }
                _ => Vec::new(),
            }
        }
        StripeEventKind::InvoicePaid(i) if i.amount_paid > 0 => vec![PaymentEvent::Paid {
            txn_id: i.invoice_id,
            reference: i.metadata_ref,
            subscription: i.subscription,
            customer: i.customer,
            payer_email: i.customer_email,
            amount_minor: i.amount_paid,
            currency: i.currency.as_str().to_owned(),
        }],
        StripeEventKind::SubscriptionUpdated(s) => vec![PaymentEvent::SubscriptionStatus {
            renewing: matches!(
                s.status,
                SubscriptionStatus::Active
                    | SubscriptionStatus::Trialing
                    | SubscriptionStatus::PastDue
            ) && !s.cancel_at_period_end,
            status: s.status.as_str().to_owned(),
            subscription: s.id,
        }],
        StripeEventKind::SubscriptionDeleted(s) => vec![PaymentEvent::SubscriptionStatus {
            subscription: s.id,
            status: "canceled".into(),
            renewing: false,
        }],
        StripeEventKind::ChargeRefunded(c) => vec![PaymentEvent::Refunded {
            txn_id: c.invoice,
            customer: c.customer,
            full: c.refunded,
        }],
        // Stripe retries a failed renewal by itself: the subscriber is warned, nothing is revoked
        // (the paid time runs to its end; Stripe deletes the subscription when it gives up).
        StripeEventKind::InvoicePaymentFailed(i) => vec![PaymentEvent::PaymentFailed {
            subscription: i.subscription,
            reference: i.metadata_ref,
            txn_id: i.invoice_id,
            amount_minor: i.amount_due,
            currency: i.currency.as_str().to_owned(),
        }],
        StripeEventKind::InvoicePaid(_) | StripeEventKind::Other => Vec::new(),
    }
}

async fn paypal_webhook(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(client) = &app.payments.paypal else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let transmission = match PayPalTransmission::from_headers(&headers) {
        Ok(t) => t,
        Err(err) => return refuse("paypal", &err),
    };
    match client.verify_webhook(&transmission, &body).await {
        Ok(true) => {}
        Ok(false) => return refuse("paypal", &"PayPal says the signature is not valid"),
        Err(err) => {
            tracing::warn!(error = %err, "PayPal verification unavailable; asking PayPal to retry");
            return (StatusCode::SERVICE_UNAVAILABLE, "try again\n").into_response();
        }
    }
    let event = match paypal::parse_event(&body) {
        Ok(event) => event,
        Err(err) => return refuse("paypal", &err),
    };
    let events = match event.kind {
        PayPalEventKind::SubscriptionActivated(s) => vec![PaymentEvent::SubscriptionStarted {
            reference: s.custom_id,
            subscription: s.subscription_id,
            customer: None,
            status: "active".into(),
        }],
        PayPalEventKind::SubscriptionCancelled(s) => paypal_stopped(s, "CANCELLED"),
        PayPalEventKind::SubscriptionSuspended(s) => paypal_stopped(s, "SUSPENDED"),
        PayPalEventKind::SubscriptionExpired(s) => paypal_stopped(s, "EXPIRED"),
        PayPalEventKind::SubscriptionReactivated(s) => vec![PaymentEvent::SubscriptionStatus {
            subscription: s.subscription_id,
            status: "ACTIVE".into(),
            renewing: true,
        }],
        PayPalEventKind::SaleCompleted(sale) => vec![PaymentEvent::Paid {
            txn_id: sale.sale_id,
            reference: sale.custom.filter(|c| !c.is_empty()),
            subscription: sale.billing_agreement_id,
            customer: None,
            payer_email: None,
            amount_minor: sale.amount_minor,
            currency: sale.currency.as_str().to_owned(),
        }],
        PayPalEventKind::Other => Vec::new(),
    };
    finish(
        &app,
        Provider::Paypal,
        &event.id,
        &event.event_type,
        &events,
    )
    .await
}

/// A PayPal subscription that no longer renews, with PayPal's status word.
fn paypal_stopped(s: paypal::PayPalSubscriptionEvent, status: &str) -> Vec<PaymentEvent> {
    vec![PaymentEvent::SubscriptionStatus {
        subscription: s.subscription_id,
        status: status.to_owned(),
        renewing: false,
    }]
}

async fn plisio_webhook(State(app): State<App>, body: Bytes) -> Response {
    let Some(config) = &app.settings.payments.plisio else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let callback = match plisio::verify_callback(&body, config.secret_key.expose_secret()) {
        Ok(callback) => callback,
        Err(err) => return refuse("plisio", &err),
    };
    // Plisio calls back at each status change of an invoice: one event per (txn, status).
    let event_id = format!("{}:{}", callback.txn_id, callback.status.as_str());
    let events = if callback.status.is_paid() {
        vec![PaymentEvent::Paid {
            txn_id: callback.txn_id.clone(),
            reference: Some(callback.order_number.clone()),
            subscription: None,
            customer: None,
            payer_email: None,
            amount_minor: callback.source_amount_minor.unwrap_or(0),
            currency: callback
                .source_currency
                .map(|c| c.as_str().to_owned())
                .unwrap_or_default(),
        }]
    } else {
        Vec::new()
    };
    finish(
        &app,
        Provider::Plisio,
        &event_id,
        callback.status.as_str(),
        &events,
    )
    .await
}
