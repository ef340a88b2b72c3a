//! Payment links: a subscriber picks a plan and a provider and gets the provider's page to pay on.
//!
//! Rules it keeps: refused while the subscriber is flagged for a Plex account change (PRODUCT.md
//! "Ban recovery" 5: no subscribing or renewing until the change is done), for a plan not offered,
//! and for a provider not configured. Our reference goes to the provider (Stripe
//! `client_reference_id` and metadata, PayPal `custom_id`, Plisio `order_number`) and is recorded
//! before the call, so the webhook finds the subscriber and plan whatever order things happen in.

use url::Url;

use crate::app::App;
use crate::crypto::random_token;
use crate::domain::{Actor, Currency, Money, PlanId, Provider, SubscriberId};
use crate::integrations::payments::paypal::SubscriptionRequest;
use crate::integrations::payments::plisio::InvoiceRequest;
use crate::integrations::payments::stripe::CheckoutRequest;
use crate::store::{audit, payments, subscribers};

/// Why no payment link was made; each is a message for the subscriber.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    /// Not a subscriber.
    #[error("you are not a subscriber here yet; ask the admins how to join")]
    NotSubscriber,
    /// Flagged.
    #[error(
        "your Plex account must be changed before you can subscribe or renew; run /plex change-account first"
    )]
    Flagged,
    /// Unknown or retired plan.
    #[error("that plan is not offered")]
    PlanNotOffered,
    /// Provider off.
    #[error("{0} payments are not set up here")]
    ProviderOff(&'static str),
    /// The plan has no id at that provider.
    #[error("the plan {0} cannot be paid with {1} yet; ask the admins")]
    NotAtProvider(String, &'static str),
    /// The provider failed.
    #[error("{0} is not answering right now; try again in a few minutes")]
    ProviderDown(&'static str),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for CheckoutError {
    fn from(err: sqlx::Error) -> Self {
        Self::Unexpected(anyhow::Error::new(err).context("database"))
    }
}

fn provider_name(provider: Provider) -> &'static str {
    match provider {
        Provider::Stripe => "Stripe",
        Provider::Paypal => "PayPal",
        Provider::Plisio => "Plisio",
        Provider::Manual => "manual",
    }
}

/// A payment link for `subscriber` to pay `plan` with `provider`.
pub async fn start_checkout(
    app: &App,
    actor: &Actor,
    subscriber: SubscriberId,
    plan: PlanId,
    provider: Provider,
) -> Result<Url, CheckoutError> {
    let name = provider_name(provider);
    let now = app.clock.now();
    let reference = format!("u{}", random_token(12));
    let (offer, email) = {
        let mut tx = app.db.begin().await?;
        let row = subscribers::find_subscriber(&mut tx, subscriber)
            .await?
            .ok_or(CheckoutError::NotSubscriber)?;
        if row.requires_plex_change {
            return Err(CheckoutError::Flagged);
        }
        let offer = payments::find_plan_offer(&mut tx, plan)
            .await?
            .filter(|o| o.active)
            .ok_or(CheckoutError::PlanNotOffered)?;
        let email = subscribers::find_active_identity(&mut tx, subscriber)
            .await?
            .map(|i| i.email_norm);
        payments::insert_checkout(
            &mut tx,
            &reference,
            subscriber,
            plan,
            provider.as_str(),
            now,
        )
        .await?;
        let detail = serde_json::json!({ "reference": reference, "plan": plan, "provider": provider.as_str() });
        audit::insert_audit(
            &mut tx,
            actor,
            Some(subscriber),
            "checkout.started",
            &detail,
            now,
        )
        .await?;
        tx.commit().await?;
        (offer, email)
    };
    let back = app.settings.public_link("account");
    let (provider_ref, url) = match provider {
        Provider::Stripe => {
            let client = app
                .payments
                .stripe
                .as_ref()
                .ok_or(CheckoutError::ProviderOff(name))?;
            let price = offer
                .stripe_price_id
                .clone()
                .ok_or_else(|| CheckoutError::NotAtProvider(offer.name.clone(), name))?;
            let request = CheckoutRequest {
                price_id: price,
                recurring: true,
                usher_ref: reference.clone(),
                customer_email: email,
                success_url: back.clone(),
                cancel_url: back,
                idempotency_key: reference.clone(),
            };
            let session = client
                .create_checkout_session(&request)
                .await
                .map_err(|e| {
                    tracing::warn!(error = %e, "Stripe checkout failed");
                    CheckoutError::ProviderDown(name)
                })?;
            (session.id, session.url)
        }
        Provider::Paypal => {
            let client = app
                .payments
                .paypal
                .as_ref()
                .ok_or(CheckoutError::ProviderOff(name))?;
            let plan_id = offer
                .paypal_plan_id
                .clone()
                .ok_or_else(|| CheckoutError::NotAtProvider(offer.name.clone(), name))?;
            let request = SubscriptionRequest {
                plan_id,
                custom_id: reference.clone(),
                email,
                return_url: back.clone(),
                cancel_url: back,
                request_id: reference.clone(),
            };
            let sub = client.create_subscription(&request).await.map_err(|e| {
                tracing::warn!(error = %e, "PayPal subscription failed");
                CheckoutError::ProviderDown(name)
            })?;
            (sub.id, sub.approve_url)
        }
        Provider::Plisio => {
            let client = app
                .payments
                .plisio
                .as_ref()
                .ok_or(CheckoutError::ProviderOff(name))?;
            let currency = Currency::parse(&offer.currency)
                .map_err(|_| anyhow::anyhow!("stored plan currency"))?;
            let request = InvoiceRequest {
                order_number: reference.clone(),
                order_name: offer.name.clone(),
                source: Money::new(offer.price_minor, currency),
                callback_url: app.settings.public_link("webhooks/plisio"),
                email,
                expire_min: Some(60),
            };
            let invoice = client.create_invoice(&request).await.map_err(|e| {
                tracing::warn!(error = %e, "Plisio invoice failed");
                CheckoutError::ProviderDown(name)
            })?;
            (invoice.txn_id, invoice.invoice_url)
        }
        Provider::Manual => return Err(CheckoutError::ProviderOff(name)),
    };
    let mut tx = app.db.begin().await?;
    payments::update_checkout_provider_ref(&mut tx, &reference, &provider_ref).await?;
    tx.commit().await?;
    Ok(url)
}
