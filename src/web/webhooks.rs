//! Payment webhooks: `POST /webhooks/stripe`, `/webhooks/paypal`, `/webhooks/plisio`.
//!
//! Rules it keeps: authenticate first (Stripe's signature, PayPal's verification API, Plisio's
//! `verify_hash`); a bad or missing signature is a 400 with nothing written and a warning logged
//! WITHOUT the body. A verified delivery is read into what it means and handed to
//! [`payments::process`], which records it once and commits everything it causes in one
//! transaction; a verified delivery that cannot be read or stored is recorded as rejected and
//! answered 200, so the provider does not retry it for days. A replay answers 200. A provider
//! that is not configured answers 404. PayPal refusing to verify (a 4xx: Usher's configuration or
//! the request is wrong) is a 400 with a log line naming the setting to check; PayPal or a
//! provider Usher must ask being unavailable is a 503; failures on our side answer 500 so the
//! provider retries.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret as _;

use crate::app::App;
use crate::domain::{Money, Provider, RefundKind};
use crate::integrations::payments::paypal::{
    self, PayPalEvent, PayPalEventKind, PayPalRefund, PayPalTransmission, Standing,
};
use crate::integrations::payments::stripe::{
    self, CheckoutMode, CheckoutPaymentStatus, StripeEvent, StripeEventKind,
};
use crate::integrations::payments::{check_depth, delivery_key, plisio};
use crate::services::payments::{
    self, Paid, PaidInPart, PaymentEvent, ProcessError, Processed, Refund,
};

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

fn answer(
    provider: Provider,
    event_type: &str,
    result: Result<Processed, ProcessError>,
) -> Response {
    match result {
        Ok(Processed::Applied) => (StatusCode::OK, "ok\n").into_response(),
        Ok(Processed::Replay) => (StatusCode::OK, "already processed\n").into_response(),
        Ok(Processed::Rejected) => {
            (StatusCode::OK, "rejected; kept for the admins\n").into_response()
        }
        Err(ProcessError::ProviderUnavailable(who, why)) => {
            tracing::warn!(provider = %provider, event_type, asked = who, error = %why, "a provider Usher had to ask is not answering; the provider will retry");
            (StatusCode::SERVICE_UNAVAILABLE, "try again\n").into_response()
        }
        Err(ProcessError::Unexpected(err)) => {
            tracing::error!(provider = %provider, event_type, error = format!("{err:#}"), "webhook processing failed; the provider will retry");
            (StatusCode::INTERNAL_SERVER_ERROR, "try again\n").into_response()
        }
    }
}

/// Processes what a verified delivery means, or records it as rejected when it cannot be read.
async fn finish(
    app: &App,
    provider: Provider,
    (event_id, event_type): (&str, &str),
    events: Result<Vec<PaymentEvent>, String>,
) -> Response {
    let result = match events {
        Ok(events) => payments::process(app, provider, event_id, event_type, events).await,
        Err(reason) => payments::reject(app, provider, event_id, event_type, &reason).await,
    };
    answer(provider, event_type, result)
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
    match stripe::parse_event(&body) {
        Ok(event) => {
            let (id, kind) = (event.id.clone(), event.event_type.clone());
            let events = stripe_events(event);
            finish(&app, Provider::Stripe, (&id, &kind), events).await
        }
        Err(err) => {
            let (id, kind) = delivery_key(&body, "/id", "/type");
            finish(&app, Provider::Stripe, (&id, &kind), Err(err.to_string())).await
        }
    }
}

/// What a Stripe event means. A subscription-mode checkout only links the subscription: its money
/// arrives as `invoice.paid` (and again as `invoice.payment_succeeded`, the same invoice), so
/// counting the checkout too would pay twice.
fn stripe_events(event: StripeEvent) -> Result<Vec<PaymentEvent>, String> {
    let at = event.created;
    Ok(match event.kind {
        StripeEventKind::CheckoutCompleted(c) => {
            let reference = c.client_reference_id.or(c.metadata_ref);
            match (c.mode, c.subscription) {
                (CheckoutMode::Subscription, Some(subscription)) => {
                    vec![PaymentEvent::SubscriptionStarted {
                        reference,
                        subscription,
                        customer: c.customer,
                        at,
                    }]
                }
                (CheckoutMode::Payment, _) if c.payment_status == CheckoutPaymentStatus::Paid => {
                    let currency = c
                        .currency
                        .ok_or("a paid checkout session without a currency")?;
                    let mut paid = Paid::new(
                        c.session_id,
                        Money::new(c.amount_total.unwrap_or(0), currency),
                        at,
                    );
                    paid.reference = reference;
                    paid.customer = c.customer;
                    paid.payer_email = c.customer_email;
                    paid.payment_ref = c.payment_intent;
                    vec![PaymentEvent::Paid(paid)]
                }
                _ => Vec::new(),
            }
        }
        StripeEventKind::InvoicePaid(i) if i.amount_paid > 0 => {
            let awaits_activation = i.opens_subscription();
            let mut paid = Paid::new(
                i.invoice_id,
                Money::new(i.amount_paid, i.currency),
                i.created.unwrap_or(at),
            );
            paid.reference = i.metadata_ref;
            paid.subscription = i.subscription;
            paid.customer = i.customer;
            paid.payer_email = i.customer_email;
            paid.payment_ref = i.payment_intent;
            // A subscription's first invoice may race the checkout that started it; a renewal of
            // a subscription Usher never linked is one from before Usher.
            paid.awaits_activation = awaits_activation;
            vec![PaymentEvent::Paid(paid)]
        }
        StripeEventKind::SubscriptionUpdated(s) => vec![PaymentEvent::SubscriptionStatus {
            renewing: s.renewing(),
            ended: s.ended(),
            status: s.status.as_str().to_owned(),
            subscription: s.id,
            at,
        }],
        StripeEventKind::SubscriptionDeleted(s) => vec![PaymentEvent::SubscriptionStatus {
            status: s.status.as_str().to_owned(),
            subscription: s.id,
            renewing: false,
            ended: true,
            at,
        }],
        StripeEventKind::ChargeRefunded(c) => vec![PaymentEvent::Refunded(Refund {
            // Each charge.refunded reports the charge's running total: one report per total.
            refund_id: format!("{}:{}", c.charge_id, c.amount_refunded),
            txn_id: c.invoice,
            payment_ref: c.payment_intent,
            kind: RefundKind::Refund,
            amount: Money::new(c.amount_refunded, c.currency),
            cumulative: true,
            full: c.refunded,
            may_wait: true,
        })],
        // Stripe retries a failed renewal by itself: the subscriber is warned, nothing is revoked
        // (the paid time runs to its end; Stripe deletes the subscription when it gives up).
        StripeEventKind::InvoicePaymentFailed(i) => vec![PaymentEvent::PaymentFailed {
            subscription: i.subscription,
            reference: i.metadata_ref,
            txn_id: i.invoice_id,
            amount: Money::new(i.amount_due, i.currency),
        }],
        StripeEventKind::InvoicePaid(_) | StripeEventKind::Other => Vec::new(),
    })
}

async fn paypal_webhook(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(client) = &app.payments.paypal else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let transmission = match PayPalTransmission::from_headers(&headers) {
        Ok(t) => t,
        Err(err) => return refuse("paypal", &err),
    };
    // An absurd body is no PayPal event: refused before PayPal is asked about it.
    if let Err(err) = check_depth(&body) {
        return refuse("paypal", &err);
    }
    match client.verify_webhook(&transmission, &body).await {
        Ok(true) => {}
        Ok(false) => return refuse("paypal", &"PayPal says the signature is not valid"),
        Err(err) if err.is_refusal() => {
            tracing::error!(
                setting = "payments.paypal.webhook_id",
                error = %err,
                "PayPal refused to verify a webhook delivery: check `payments.paypal.webhook_id` \
                 (the id of the webhook in the PayPal app whose client id and secret Usher uses); \
                 answering 400"
            );
            return (StatusCode::BAD_REQUEST, "verification refused\n").into_response();
        }
        Err(err) => {
            tracing::warn!(error = %err, "PayPal verification unavailable; asking PayPal to retry");
            return (StatusCode::SERVICE_UNAVAILABLE, "try again\n").into_response();
        }
    }
    let now = app.clock.now();
    match paypal::parse_event(&body) {
        Ok(event) => {
            let (id, kind) = (event.id.clone(), event.event_type.clone());
            let events = paypal_events(event, now);
            finish(&app, Provider::Paypal, (&id, &kind), Ok(events)).await
        }
        Err(err) => {
            let (id, kind) = delivery_key(&body, "/id", "/event_type");
            finish(&app, Provider::Paypal, (&id, &kind), Err(err.to_string())).await
        }
    }
}

/// What a PayPal event means. Its own time orders it: the resource's time, else the event's,
/// else its arrival (PayPal's simulator sends an impossible `create_time`).
fn paypal_events(event: PayPalEvent, now: DateTime<Utc>) -> Vec<PaymentEvent> {
    let sent = event.create_time;
    let status = |s: paypal::PayPalSubscriptionEvent, standing: Standing| {
        vec![PaymentEvent::SubscriptionStatus {
            at: s.status_time.or(sent).unwrap_or(now),
            subscription: s.subscription_id,
            status: standing.status.to_owned(),
            renewing: standing.renewing,
            ended: standing.ended,
        }]
    };
    let refund = |r: PayPalRefund, kind: RefundKind, may_wait: bool| {
        vec![PaymentEvent::Refunded(Refund {
            refund_id: r.refund_id,
            txn_id: r.txn_id,
            payment_ref: None,
            kind,
            amount: Money::new(r.total_refunded_minor.unwrap_or(r.amount_minor), r.currency),
            cumulative: r.total_refunded_minor.is_some(),
            full: false,
            may_wait,
        })]
    };
    match event.kind {
        PayPalEventKind::SubscriptionActivated(s) => vec![PaymentEvent::SubscriptionStarted {
            at: s.status_time.or(sent).unwrap_or(now),
            reference: s.custom_id,
            subscription: s.subscription_id,
            customer: None,
        }],
        PayPalEventKind::SubscriptionCancelled(s) => status(s, Standing::CANCELLED),
        PayPalEventKind::SubscriptionExpired(s) => status(s, Standing::EXPIRED),
        PayPalEventKind::SubscriptionSuspended(s) => status(s, Standing::SUSPENDED),
        PayPalEventKind::SubscriptionReactivated(s) => status(s, Standing::REACTIVATED),
        PayPalEventKind::SaleCompleted(sale) => {
            let mut paid = Paid::new(
                sale.sale_id,
                Money::new(sale.amount_minor, sale.currency),
                sale.create_time.or(sent).unwrap_or(now),
            );
            paid.reference = sale.custom.filter(|c| !c.is_empty());
            paid.subscription = sale.billing_agreement_id;
            vec![PaymentEvent::Paid(paid)]
        }
        // Usher records sales (subscription payments) as they complete; captures come from
        // one-off orders Usher never records, so a capture's refund cannot wait for one.
        PayPalEventKind::SaleRefunded(r) => refund(r, RefundKind::Refund, true),
        PayPalEventKind::SaleReversed(r) => refund(r, RefundKind::Reversal, true),
        PayPalEventKind::CaptureRefunded(r) => refund(r, RefundKind::Refund, false),
        PayPalEventKind::CaptureReversed(r) => refund(r, RefundKind::Reversal, false),
        PayPalEventKind::Other => Vec::new(),
    }
}

async fn plisio_webhook(State(app): State<App>, body: Bytes) -> Response {
    let Some(config) = &app.settings.payments.plisio else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let callback = match plisio::verify_callback(&body, config.secret_key.expose_secret()) {
        Ok(callback) => callback,
        Err(plisio::CallbackError::Parse(err)) => {
            // Signed by the shop's key, but unreadable: kept for the admins.
            let (id, kind) = delivery_key(&body, "/txn_id", "/status");
            return finish(&app, Provider::Plisio, (&id, &kind), Err(err.to_string())).await;
        }
        Err(err) => return refuse("plisio", &err),
    };
    // Plisio calls back at each status change of an invoice: one event per (txn, status).
    let event_id = format!("{}:{}", callback.txn_id, callback.status.as_str());
    let events = plisio_events(&callback, app.clock.now());
    finish(
        &app,
        Provider::Plisio,
        (&event_id, callback.status.as_str()),
        events,
    )
    .await
}

/// What a Plisio callback means: paid (`completed`, `mismatch`), or an invoice that expired
/// after part of it was paid; anything else changes nothing.
fn plisio_events(
    callback: &plisio::PlisioCallback,
    now: DateTime<Utc>,
) -> Result<Vec<PaymentEvent>, String> {
    if callback.status.is_paid() {
        let (Some(minor), Some(currency)) =
            (callback.source_amount_minor, callback.source_currency)
        else {
            return Err("a paid callback without source_amount and source_currency".into());
        };
        let mut paid = Paid::new(callback.txn_id.clone(), Money::new(minor, currency), now);
        paid.reference = Some(callback.order_number.clone());
        return Ok(vec![PaymentEvent::Paid(paid)]);
    }
    Ok(callback
        .paid_before_expiry()
        .map(|part| {
            PaymentEvent::PaidInPart(PaidInPart {
                txn_id: callback.txn_id.clone(),
                reference: Some(callback.order_number.clone()),
                worth: part
                    .worth_minor
                    .zip(callback.source_currency)
                    .map(|(minor, currency)| Money::new(minor, currency)),
                paid: part.paid,
                paid_currency: part.currency,
            })
        })
        .into_iter()
        .collect())
}
