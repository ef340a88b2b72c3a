//! Payments from the providers' webhooks: recorded once, matched to a subscriber, turned into paid
//! time, and access given.
//!
//! Rules it keeps (PRODUCT.md "Everyday lifecycle", "Never"; issue 5):
//! - An event is processed once per (provider, event id) and a payment recorded once per
//!   (provider, transaction id); a replay changes nothing. Everything an event causes (payment,
//!   extension, invite, DM) commits in ONE transaction with the jobs it queues.
//! - Matching, in order: our checkout reference → the linked provider subscription → the payer's
//!   email (exactly one subscriber). Otherwise the payment is kept as **unmatched** for the admins.
//!   A payment that names a provider subscription not linked yet is linked (and applied) when the
//!   subscription's activation arrives, so events arriving out of order end in the same interval.
//! - Paid intervals: a payment adds one plan period [from, to) with from = max(now, current end).
//!   Active = permanent, or now inside an applied interval.
//! - Refunds: a full refund marks the payment `refunded` and its interval stops counting; the other
//!   intervals stay as they are (later ones are not moved earlier). A partial refund is audited and
//!   changes no access. Cancellation (`customer.subscription.deleted`, PayPal `CANCELLED`/
//!   `EXPIRED`/`SUSPENDED`) stops renewal; paid time already bought is honoured to its end.
//! - A flagged subscriber's payment is recorded and extends their time (money is never lost), but
//!   no invite is sent until the Plex account change is done.

use anyhow::Context as _;
use chrono::{DateTime, Utc};

use crate::app::App;
use crate::domain::{
    Actor, BillingPeriod, Currency, Money, PaymentId, PlanId, Provider, SubscriberId,
};
use crate::services::checkout::stored_provider_name;
use crate::services::notify::{self, Kind};
use crate::services::{access, lifecycle};
use crate::store::payments::{self, LinkSubscription, NewPayment, Target};
use crate::store::{Tx, audit, shares, subscribers};

/// What a provider event means to Usher, whatever the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentEvent {
    /// Money came in.
    Paid {
        /// The provider's transaction id (invoice, sale, invoice txn).
        txn_id: String,
        /// Our checkout reference, when the event carries it.
        reference: Option<String>,
        /// The provider subscription it belongs to.
        subscription: Option<String>,
        /// The provider's customer.
        customer: Option<String>,
        /// The payer's email.
        payer_email: Option<String>,
        /// Amount in minor units.
        amount_minor: i64,
        /// ISO currency.
        currency: String,
    },
    /// A provider subscription started (it names our reference).
    SubscriptionStarted {
        /// Our checkout reference.
        reference: Option<String>,
        /// The provider's subscription id.
        subscription: String,
        /// The provider's customer.
        customer: Option<String>,
        /// The provider's status.
        status: String,
    },
    /// A provider subscription changed status.
    SubscriptionStatus {
        /// The provider's subscription id.
        subscription: String,
        /// The provider's status.
        status: String,
        /// It will charge again by itself.
        renewing: bool,
    },
    /// A renewal charge failed; the provider retries by itself. Warns the subscriber, changes no
    /// access (their paid time runs to its end).
    PaymentFailed {
        /// The provider subscription it belongs to.
        subscription: Option<String>,
        /// Our checkout reference, when the event carries it.
        reference: Option<String>,
        /// The provider's transaction (invoice) id.
        txn_id: String,
        /// Amount due, in minor units.
        amount_minor: i64,
        /// ISO currency.
        currency: String,
    },
    /// A payment was refunded.
    Refunded {
        /// The transaction, when the event names it.
        txn_id: Option<String>,
        /// The customer, to find it otherwise.
        customer: Option<String>,
        /// Whole amount refunded (false: partial).
        full: bool,
    },
}

/// What processing a delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Processed {
    /// First delivery: applied.
    Applied,
    /// Seen before: nothing changed.
    Replay,
}

/// Processes one verified delivery: records the event, applies what it means, and commits it all
/// with the jobs it queues, once.
pub async fn process(
    app: &App,
    provider: Provider,
    event_id: &str,
    event_type: &str,
    events: &[PaymentEvent],
) -> anyhow::Result<Processed> {
    let now = app.clock.now();
    let mut tx = app.db.begin().await?;
    if !payments::insert_webhook_event(&mut tx, provider.as_str(), event_id, event_type, now)
        .await?
    {
        return Ok(Processed::Replay);
    }
    for event in events {
        apply(app, &mut tx, provider, event).await?;
    }
    app.queue.commit(tx).await?;
    Ok(Processed::Applied)
}

async fn apply(
    app: &App,
    tx: &mut Tx,
    provider: Provider,
    event: &PaymentEvent,
) -> anyhow::Result<()> {
    let now = app.clock.now();
    let actor = Actor::Webhook(provider);
    let p = provider.as_str();
    match event {
        PaymentEvent::Paid {
            txn_id,
            reference,
            subscription,
            customer,
            payer_email,
            amount_minor,
            currency,
        } => {
            let new = NewPayment {
                provider: p,
                txn_id,
                amount_minor: *amount_minor,
                currency,
                payer_email: payer_email.as_deref(),
                provider_subscription: subscription.as_deref(),
                customer: customer.as_deref(),
                reference: reference.as_deref(),
            };
            let Some(payment) = payments::insert_payment(tx, &new, now).await? else {
                return Ok(()); // The same transaction from another event (e.g. a re-sent invoice).
            };
            let target = match_target(
                tx,
                p,
                reference.as_deref(),
                subscription.as_deref(),
                payer_email.as_deref(),
            )
            .await?;
            if let Some(target) = target {
                apply_payment(app, tx, &actor, payment, target).await?;
            } else {
                let detail = serde_json::json!({ "payment": payment, "txn": txn_id });
                audit::insert_audit(tx, &actor, None, "payment.unmatched", &detail, now).await?;
                tracing::warn!(provider = p, payment, "a payment matched no subscriber");
            }
        }
        PaymentEvent::SubscriptionStarted {
            reference,
            subscription,
            customer,
            status,
        } => {
            let target = match reference {
                Some(reference) => payments::find_checkout(tx, reference).await?,
                None => payments::find_provider_subscription(tx, p, subscription).await?,
            };
            let Some(target) = target else {
                let detail = serde_json::json!({ "subscription": subscription });
                audit::insert_audit(tx, &actor, None, "subscription.unmatched", &detail, now)
                    .await?;
                return Ok(());
            };
            payments::lock_provider_subscription(tx, p, subscription).await?;
            let link = LinkSubscription {
                provider: p,
                subscription,
                target,
                customer: customer.as_deref(),
                status,
                renewing: true,
            };
            payments::upsert_provider_subscription(tx, &link, now).await?;
            // Payments that came before the activation apply now, in the order they came.
            for payment in payments::find_unmatched_of_subscription(tx, p, subscription).await? {
                apply_payment(app, tx, &actor, payment, target).await?;
            }
        }
        PaymentEvent::SubscriptionStatus {
            subscription,
            status,
            renewing,
        } => {
            payments::update_provider_subscription_status(
                tx,
                p,
                subscription,
                status,
                *renewing,
                now,
            )
            .await?;
        }
        PaymentEvent::PaymentFailed {
            subscription,
            reference,
            txn_id,
            amount_minor,
            currency,
        } => {
            let target =
                match_target(tx, p, reference.as_deref(), subscription.as_deref(), None).await?;
            let Some((subscriber, _)) = target else {
                return Ok(()); // Nobody of ours: nothing to warn.
            };
            let subscriber = SubscriberId::new(subscriber);
            let amount = amount_text(*amount_minor, currency);
            let paid_until = payments::find_paid_until(tx, subscriber).await?;
            let detail = serde_json::json!({
                "amount": amount,
                "provider": stored_provider_name(p),
                "paid_until": paid_until.map(lifecycle::human_date),
            });
            let audit_detail = serde_json::json!({ "txn": txn_id });
            audit::insert_audit(
                tx,
                &actor,
                Some(subscriber),
                "payment.failed",
                &audit_detail,
                now,
            )
            .await?;
            notify::enqueue_dm(app, tx, subscriber, Kind::PaymentFailed, &detail, txn_id).await?;
        }
        PaymentEvent::Refunded {
            txn_id,
            customer,
            full,
        } => {
            let detail = serde_json::json!({ "txn": txn_id, "full": full });
            if *full
                && let Some(subscriber) =
                    payments::update_refunded(tx, p, txn_id.as_deref(), customer.as_deref()).await?
            {
                let id = SubscriberId::new(subscriber);
                audit::insert_audit(tx, &actor, Some(id), "payment.refunded", &detail, now).await?;
            } else {
                audit::insert_audit(tx, &actor, None, "payment.refund_noted", &detail, now).await?;
            }
        }
    }
    Ok(())
}

/// A stored amount as people read it (`8.00 USD`); the raw figures if the currency is unknown.
fn amount_text(minor: i64, currency: &str) -> String {
    Currency::parse(currency).map_or_else(
        |_| format!("{minor} {currency}"),
        |c| Money::new(minor, c).to_string(),
    )
}

async fn match_target(
    tx: &mut Tx,
    provider: &str,
    reference: Option<&str>,
    subscription: Option<&str>,
    payer_email: Option<&str>,
) -> anyhow::Result<Option<Target>> {
    if let Some(reference) = reference
        && let Some(target) = payments::find_checkout(tx, reference).await?
    {
        return Ok(Some(target));
    }
    if let Some(subscription) = subscription {
        if let Some(target) =
            payments::find_provider_subscription(tx, provider, subscription).await?
        {
            return Ok(Some(target));
        }
        // Not linked yet as far as we can see: look again under the lock its activation takes, and
        // otherwise wait for the activation rather than guess by email.
        payments::lock_provider_subscription(tx, provider, subscription).await?;
        return Ok(payments::find_provider_subscription(tx, provider, subscription).await?);
    }
    if let Some(email) = payer_email
        && let Some((subscriber, Some(plan))) = payments::find_by_payer_email(tx, email).await?
    {
        return Ok(Some((subscriber, plan)));
    }
    Ok(None)
}

/// Gives an unmatched payment its subscriber, plan and interval, and access when due.
async fn apply_payment(
    app: &App,
    tx: &mut Tx,
    actor: &Actor,
    payment: i64,
    target: Target,
) -> anyhow::Result<()> {
    let now = app.clock.now();
    let subscriber = SubscriberId::new(target.0);
    let plan = PlanId::new(target.1);
    payments::lock_subscriber(tx, subscriber).await?;
    let offer = payments::find_plan_offer(tx, plan)
        .await?
        .context("the paid plan exists")?;
    let period: BillingPeriod = offer.period.parse().context("stored billing period")?;
    let from = payments::find_paid_until(tx, subscriber)
        .await?
        .map_or(now, |end| end.max(now));
    let to = period.after(from);
    let Some((minor, currency, provider)) =
        payments::update_payment_applied(tx, payment, target, from, to).await?
    else {
        return Ok(()); // Applied meanwhile by another delivery or an admin.
    };
    let row = subscribers::find_subscriber(tx, subscriber)
        .await?
        .context("the subscriber exists")?;
    if row.plan_id != Some(plan) {
        subscribers::update_subscriber_plan(tx, subscriber, Some(plan), now).await?;
    }
    let detail = serde_json::json!({ "payment": payment, "plan": plan, "from": from, "to": to });
    audit::insert_audit(tx, actor, Some(subscriber), "payment.applied", &detail, now).await?;

    // The receipt, and the subscriber roles (the job reads their standing when it runs).
    let receipt = serde_json::json!({
        "amount": amount_text(minor, &currency),
        "plan_name": offer.name,
        "provider": stored_provider_name(&provider),
        "paid_until": lifecycle::human_date(to),
        "flagged": row.requires_plex_change,
    });
    let event = format!("payment-{payment}");
    notify::enqueue_dm(app, tx, subscriber, Kind::Receipt, &receipt, &event).await?;
    lifecycle::enqueue_role_sync(app, tx, subscriber, &event).await?;

    // Access: a share whose access was removed when the paid time ended comes back on its server;
    // otherwise invite when they have none on a usable server, unless flagged (the change comes
    // first) or without a Plex account on file.
    let live = shares::find_live_shares_of(tx, subscriber).await?;
    let usable =
        |s: &&shares::SubscriberShare| s.owner_state == crate::domain::OwnerAccountState::Active;
    if !row.requires_plex_change
        && live.iter().filter(usable).any(|s| s.suspended)
        && lifecycle::restore_access(app, tx, subscriber).await? > 0
    {
        return Ok(());
    }
    let has_access = live.iter().filter(usable).any(|s| !s.suspended);
    if !row.requires_plex_change
        && !has_access
        && let Some(identity) = subscribers::find_active_identity(tx, subscriber).await?
    {
        let previous = shares::find_previous_servers(tx, subscriber).await?;
        let placed = access::place_and_invite(
            app,
            tx,
            subscriber,
            identity.id,
            plan,
            previous,
            row.preferred_location,
        )
        .await?;
        if let Err(reason) = placed {
            // Marked waiting: the hourly placement invites them when a server has room.
            let detail = serde_json::json!({
                "plex_account": identity.email_norm, "plan_name": offer.name, "reason": reason,
            });
            let event = format!("paid-{payment}");
            notify::enqueue_admin_alert(
                app,
                tx,
                Some(subscriber),
                Kind::AdminNoRoom,
                &detail,
                &event,
            )
            .await?;
        }
    }
    Ok(())
}

// ---- the admins' side of unmatched payments ---------------------------------------------------

/// A payment no subscriber was found for, as the admins see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmatchedPayment {
    /// Usher's id (what `/admin payments assign` takes).
    pub id: PaymentId,
    /// Provider.
    pub provider: String,
    /// Provider's transaction id.
    pub txn_id: String,
    /// Amount.
    pub amount: Money,
    /// Payer's email, as the provider gave it.
    pub payer_email: Option<String>,
    /// When it arrived.
    pub received_at: DateTime<Utc>,
}

/// Every unmatched payment, oldest first.
pub async fn unmatched(app: &App) -> anyhow::Result<Vec<UnmatchedPayment>> {
    let mut tx = app.db.read().await?;
    let rows = payments::find_unmatched(&mut tx).await?;
    tx.rollback().await?;
    rows.into_iter()
        .map(|r| {
            let currency = Currency::parse(&r.currency)
                .map_err(|_| anyhow::anyhow!("stored currency of payment {}", r.id))?;
            Ok(UnmatchedPayment {
                id: PaymentId::new(r.id),
                provider: r.provider,
                txn_id: r.provider_txn_id,
                amount: Money::new(r.amount_minor, currency),
                payer_email: r.payer_email,
                received_at: r.created_at,
            })
        })
        .collect()
}

/// Why an unmatched payment was not assigned; each is a message for the admin.
#[derive(Debug, thiserror::Error)]
pub enum AssignError {
    /// No such payment.
    #[error("there is no payment #{0}")]
    NoSuchPayment(PaymentId),
    /// Matched already (by an admin or a webhook).
    #[error("payment #{0} is already matched to a subscriber; nothing changed")]
    AlreadyMatched(PaymentId),
    /// Refunded.
    #[error("payment #{0} was refunded; nothing changed")]
    Refunded(PaymentId),
    /// No such subscriber.
    #[error("that user is not a subscriber")]
    NotSubscriber,
    /// The subscriber has no plan and none was given.
    #[error("{0} has no plan yet; give the plan this payment is for")]
    NoPlan(String),
    /// No such plan.
    #[error("there is no plan #{0}")]
    NoSuchPlan(PlanId),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for AssignError {
    fn from(err: sqlx::Error) -> Self {
        Self::Unexpected(anyhow::Error::new(err).context("database"))
    }
}

/// What assigning a payment did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assigned {
    /// The payment.
    pub payment: PaymentId,
    /// Its provider.
    pub provider: String,
    /// Its amount.
    pub amount: Money,
    /// The subscriber's name.
    pub subscriber: String,
    /// The plan it pays for.
    pub plan: String,
    /// The paid interval it added.
    pub paid_from: DateTime<Utc>,
    /// End of that interval.
    pub paid_to: DateTime<Utc>,
    /// The subscriber must change Plex account before any invite.
    pub flagged: bool,
}

/// An admin gives an unmatched payment to `subscriber` for `plan` (default: their plan). In one
/// transaction it locks the subscriber and the payment (in the order webhooks take them), checks
/// the payment is still unmatched (a concurrent assign or a late webhook match then finds it
/// applied and changes nothing), applies it as a webhook match would (interval from max(now,
/// end), invite when due) and audits it with the admin.
pub async fn assign_unmatched(
    app: &App,
    actor: &Actor,
    payment: PaymentId,
    subscriber: SubscriberId,
    plan: Option<PlanId>,
) -> Result<Assigned, AssignError> {
    let now = app.clock.now();
    let mut tx = app.db.begin().await?;
    payments::lock_subscriber(&mut tx, subscriber).await?;
    let who = subscribers::find_subscriber(&mut tx, subscriber)
        .await?
        .ok_or(AssignError::NotSubscriber)?;
    let row = payments::find_payment_locked(&mut tx, payment)
        .await?
        .ok_or(AssignError::NoSuchPayment(payment))?;
    match row.status.as_str() {
        "unmatched" => {}
        "refunded" => return Err(AssignError::Refunded(payment)),
        _ => return Err(AssignError::AlreadyMatched(payment)),
    }
    let plan = plan
        .or(who.plan_id)
        .ok_or_else(|| AssignError::NoPlan(who.display_name.clone()))?;
    let offer = payments::find_plan_offer(&mut tx, plan)
        .await?
        .ok_or(AssignError::NoSuchPlan(plan))?;
    apply_payment(
        app,
        &mut tx,
        actor,
        payment.get(),
        (subscriber.get(), plan.get()),
    )
    .await?;
    let applied = payments::find_payment_locked(&mut tx, payment)
        .await?
        .context("the assigned payment exists")?;
    let (Some(paid_from), Some(paid_to)) = (applied.paid_from, applied.paid_to) else {
        return Err(anyhow::anyhow!("payment {payment} was not applied").into());
    };
    let detail = serde_json::json!({
        "payment": payment, "provider": row.provider, "txn": row.provider_txn_id, "plan": plan,
    });
    audit::insert_audit(
        &mut tx,
        actor,
        Some(subscriber),
        "payment.assigned",
        &detail,
        now,
    )
    .await?;
    app.queue.commit(tx).await?;
    let currency = Currency::parse(&row.currency)
        .map_err(|_| anyhow::anyhow!("stored currency of payment {payment}"))?;
    Ok(Assigned {
        payment,
        provider: row.provider,
        amount: Money::new(row.amount_minor, currency),
        subscriber: who.display_name,
        plan: offer.name,
        paid_from,
        paid_to,
        flagged: who.requires_plex_change,
    })
}
