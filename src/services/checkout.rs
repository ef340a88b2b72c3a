//! Payment links: a subscriber picks a plan and a provider and gets the provider's page to pay on.
//!
//! Rules it keeps: refused while the subscriber is flagged for a Plex account change (PRODUCT.md
//! "Ban recovery" 5: no subscribing or renewing until the change is done), for a plan not offered,
//! for a provider not configured and for a plan without its id at that provider, all before
//! anything is recorded or any provider is called. Our reference goes to the provider (Stripe
//! `client_reference_id` and metadata, PayPal `custom_id`, Plisio `order_number`) and is recorded
//! before the call, so the webhook finds the subscriber and plan whatever order things happen in.

use url::Url;

use crate::app::App;
use crate::crypto::random_token;
use crate::domain::{Actor, BillingPeriod, Money, PlanId, Provider, SubscriberId};
use crate::integrations::payments::paypal::SubscriptionRequest;
use crate::integrations::payments::plisio::InvoiceRequest;
use crate::integrations::payments::stripe::CheckoutRequest;
use crate::store::payments::PlanOffer;
use crate::store::{Tx, audit, payments, subscribers};

/// Why no payment link was made; each is a message for the subscriber.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    /// Not a subscriber.
    #[error(
        "you are not a subscriber here yet: run `/join` to link your Plex account (or `/plex link` if the admins imported you)"
    )]
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
    /// No provider is configured at all.
    #[error("payments are not set up here yet; ask the admins")]
    NoProviders,
    /// No configured provider sells the plan.
    #[error("the plan {0} cannot be paid for here yet; ask the admins")]
    NotSoldHere(String),
    /// Several providers sell the plan and none was chosen.
    #[error("choose how to pay for {0}: {1}")]
    ChooseProvider(String, String),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for CheckoutError {
    fn from(err: sqlx::Error) -> Self {
        Self::Unexpected(anyhow::Error::new(err).context("database"))
    }
}

/// A provider's name as people write it.
pub fn provider_name(provider: Provider) -> &'static str {
    match provider {
        Provider::Stripe => "Stripe",
        Provider::Paypal => "PayPal",
        Provider::Plisio => "Plisio",
        Provider::Manual => "manual",
    }
}

/// The plan as offered to this subscriber, refusing in the order they can act on: not a
/// subscriber, flagged for a Plex account change (no checkout until it is done), plan not offered.
async fn offer_for(
    tx: &mut Tx,
    subscriber: SubscriberId,
    plan: PlanId,
) -> Result<PlanOffer, CheckoutError> {
    let row = subscribers::find_subscriber(tx, subscriber)
        .await?
        .ok_or(CheckoutError::NotSubscriber)?;
    if row.requires_plex_change {
        return Err(CheckoutError::Flagged);
    }
    payments::find_plan_offer(tx, plan)
        .await?
        .filter(|o| o.active)
        .ok_or(CheckoutError::PlanNotOffered)
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
        let offer = offer_for(&mut tx, subscriber, plan).await?;
        sells(app, provider, &offer)?;
        let email = subscribers::find_active_identity(&mut tx, subscriber)
            .await?
            .map(|i| i.email_norm.as_str().to_owned());
        payments::insert_checkout(&mut tx, &reference, subscriber, plan, provider, now).await?;
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
            let request = InvoiceRequest {
                order_number: reference.clone(),
                order_name: offer.name.clone(),
                source: offer.price,
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

/// Whether `provider` can take payment for `offer` here: configured, and (Stripe, PayPal) the
/// plan has its id there. Plisio invoices any amount, so it sells every plan once configured.
fn sells(app: &App, provider: Provider, offer: &PlanOffer) -> Result<(), CheckoutError> {
    let name = provider_name(provider);
    let (configured, has_id) = match provider {
        Provider::Stripe => (
            app.payments.stripe.is_some(),
            offer.stripe_price_id.is_some(),
        ),
        Provider::Paypal => (
            app.payments.paypal.is_some(),
            offer.paypal_plan_id.is_some(),
        ),
        Provider::Plisio => (app.payments.plisio.is_some(), true),
        Provider::Manual => (false, false),
    };
    if !configured {
        return Err(CheckoutError::ProviderOff(name));
    }
    if !has_id {
        return Err(CheckoutError::NotAtProvider(offer.name.clone(), name));
    }
    Ok(())
}

/// The providers configured here, in a stable order.
pub fn configured_providers(app: &App) -> Vec<Provider> {
    let p = &app.payments;
    [
        (Provider::Stripe, p.stripe.is_some()),
        (Provider::Paypal, p.paypal.is_some()),
        (Provider::Plisio, p.plisio.is_some()),
    ]
    .into_iter()
    .filter_map(|(provider, on)| on.then_some(provider))
    .collect()
}

/// A plan as it is sold: its price and period, its ids at the providers, and the configured
/// providers that can take payment for it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The plan.
    pub plan: PlanId,
    /// Its name.
    pub name: String,
    /// Price per period.
    pub price: Money,
    /// Billing period.
    pub period: BillingPeriod,
    /// Offered to subscribers.
    pub active: bool,
    /// Stripe price id, when set.
    pub stripe_price_id: Option<String>,
    /// PayPal plan id, when set.
    pub paypal_plan_id: Option<String>,
    /// Configured providers that sell it now (none while the plan is not offered).
    pub providers: Vec<Provider>,
}

impl Offer {
    fn from_row(app: &App, id: PlanId, offer: PlanOffer) -> Self {
        let providers = configured_providers(app)
            .into_iter()
            .filter(|p| offer.active && sells(app, *p, &offer).is_ok())
            .collect();
        Self {
            plan: id,
            price: offer.price,
            period: offer.period,
            active: offer.active,
            providers,
            name: offer.name,
            stripe_price_id: offer.stripe_price_id,
            paypal_plan_id: offer.paypal_plan_id,
        }
    }
}

/// Every plan with the providers that sell it, by name (`/subscribe`'s list shows the active ones
/// some provider sells; `/admin plan list` shows them all).
pub async fn offers(app: &App) -> anyhow::Result<Vec<Offer>> {
    let mut tx = app.db.read().await?;
    let rows = payments::find_plan_offers(&mut tx).await?;
    tx.rollback().await?;
    Ok(rows
        .into_iter()
        .map(|row| Offer::from_row(app, row.id, row.offer))
        .collect())
}

/// A payment link and what it buys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutLink {
    /// The provider's page to pay on.
    pub url: Url,
    /// The plan bought.
    pub offer: Offer,
    /// The provider paid with.
    pub provider: Provider,
}

/// `/subscribe`: a payment link for the subscriber's own purchase of `plan`, with `provider` or,
/// when none is chosen, the one provider that sells the plan. Refusals come in the order a
/// subscriber can act on them: not a subscriber, flagged, plan not offered, then the provider.
pub async fn subscribe(
    app: &App,
    subscriber: SubscriberId,
    plan: PlanId,
    provider: Option<Provider>,
) -> Result<CheckoutLink, CheckoutError> {
    let offer = {
        let mut tx = app.db.read().await?;
        let offer = offer_for(&mut tx, subscriber, plan).await?;
        tx.rollback().await?;
        Offer::from_row(app, plan, offer)
    };
    let provider = match (provider, offer.providers.as_slice()) {
        (Some(chosen), _) => chosen,
        (None, [only]) => *only,
        (None, []) if configured_providers(app).is_empty() => {
            return Err(CheckoutError::NoProviders);
        }
        (None, []) => return Err(CheckoutError::NotSoldHere(offer.name)),
        (None, several) => {
            let names: Vec<_> = several.iter().map(|p| provider_name(*p)).collect();
            return Err(CheckoutError::ChooseProvider(offer.name, names.join(", ")));
        }
    };
    let url = start_checkout(
        app,
        &Actor::Subscriber(subscriber),
        subscriber,
        plan,
        provider,
    )
    .await?;
    Ok(CheckoutLink {
        url,
        offer,
        provider,
    })
}
