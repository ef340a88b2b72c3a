//! Payments from the providers' webhooks and from the admins: recorded once, matched to a
//! subscriber, turned into paid time, and access given; refunds taken back from the payment they
//! return.
//!
//! Rules it keeps (PRODUCT.md "Everyday lifecycle", "Never"; issues 5, 14, 18 and 19):
//! - An event is processed once per (provider, event id), a payment recorded once per (provider,
//!   transaction id), a refund report once per (provider, refund id); a replay changes nothing.
//!   Everything an event causes (payment, extension, invite, DM) commits in ONE transaction with
//!   the jobs it queues. A provider is asked nothing while that transaction is open: what a
//!   delivery needs from it (the invoice a Stripe payment intent paid, the payer of a PayPal
//!   subscription) is asked before.
//! - A validly signed delivery Usher cannot store (the parser or a constraint refuses it) is
//!   answered as done, recorded as rejected with the reason, and listed for the admins: the
//!   provider must not retry it for days.
//! - Matching, in order: our checkout reference → the linked provider subscription → the payer's
//!   email (exactly one subscriber, contact or active Plex email, compared as `PlexEmail`s). A
//!   payment naming a provider subscription that is not linked waits for that subscription's
//!   activation when one of Usher's checkouts may have started it (a Stripe first invoice, a PayPal
//!   subscription a checkout made); one Usher never saw (a renewal of a subscription from before
//!   Usher) is matched by the payer's email, and the match links the subscription. Otherwise the
//!   payment is kept as **unmatched** for the admins.
//! - Paid intervals: a payment buys one plan period (or, by hand, a number of days or up to a
//!   date). A subscriber's applied payments are laid out one after another in the order of the
//!   provider's own time of each payment (not the order they arrive in), each starting no earlier
//!   than it was applied: from = max(applied, end of the one before). Active = permanent, or now
//!   inside an applied interval.
//! - Refunds: a refund is mapped to the payment it returns (Stripe: the charge's invoice, else
//!   its payment intent, through Usher's records or the invoice payments Stripe lists; PayPal:
//!   the sale or capture it names). When the whole payment went back (refunds add up to it, or
//!   the provider says so) the payment stops counting and the later intervals close up behind it;
//!   a partial refund is recorded for the admins and changes no access. A refund whose payment has
//!   not arrived yet waits for it; one that maps to nothing of Usher's is kept for the admins.
//!   The subscriber is told either way.
//! - Provider subscriptions: the latest status by the provider's own time stands (an older report
//!   is ignored), and an ended subscription (deleted, cancelled, expired) stays ended whatever
//!   arrives after, its activation included. Paid time already bought is honoured to its end.
//! - A flagged subscriber's payment is recorded and extends their time (money is never lost), but
//!   no invite is sent until the Plex account change is done.
//! - Money of an invoice that expired before it was paid in full is kept for the admins.

use anyhow::Context as _;
use chrono::{DateTime, Utc};

use crate::app::App;
use crate::crypto::random_token;
use crate::domain::{
    Actor, Money, PaymentId, PaymentStatus, PlanId, PlexEmail, Provider, RefundKind, RefundStatus,
    SubscriberId,
};
use crate::services::checkout::provider_name;
use crate::services::notify::{self, Kind};
use crate::services::{access, lifecycle, trials};
use crate::store::payments::{
    self, Cover, LinkSubscription, NewPartialPayment, NewPayment, NewRefund, PaymentRow,
    SubscriptionState, Target,
};
use crate::store::{Tx, audit, servers, shares, subscribers};

/// What a provider event means to Usher, whatever the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentEvent {
    /// Money came in.
    Paid(Paid),
    /// A provider subscription started (it names our reference).
    SubscriptionStarted {
        /// Our checkout reference.
        reference: Option<String>,
        /// The provider's subscription id.
        subscription: String,
        /// The provider's customer.
        customer: Option<String>,
        /// The provider's own time of the event.
        at: DateTime<Utc>,
    },
    /// A provider subscription changed status.
    SubscriptionStatus {
        /// The provider's subscription id.
        subscription: String,
        /// The provider's status word.
        status: String,
        /// It will charge again by itself.
        renewing: bool,
        /// It is over for good (deleted, cancelled, expired).
        ended: bool,
        /// The provider's own time of the report.
        at: DateTime<Utc>,
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
        /// Amount due.
        amount: Money,
    },
    /// Money went back to the payer.
    Refunded(Refund),
    /// An invoice expired after part of it was paid.
    PaidInPart(PaidInPart),
}

/// A payment as a provider reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paid {
    /// The provider's transaction id (invoice, sale, invoice txn).
    pub txn_id: String,
    /// Our checkout reference, when the event carries it.
    pub reference: Option<String>,
    /// The provider subscription it belongs to.
    pub subscription: Option<String>,
    /// The provider's customer.
    pub customer: Option<String>,
    /// The payer's email.
    pub payer_email: Option<String>,
    /// Amount.
    pub amount: Money,
    /// The provider's payment object that paid it (a Stripe payment intent), to map refunds.
    pub payment_ref: Option<String>,
    /// The provider's own time of the payment: the order paid intervals are laid out in.
    pub at: DateTime<Utc>,
    /// The subscription it names may have been started by one of Usher's checkouts whose
    /// activation is on its way: while it is not linked, wait for that activation instead of
    /// matching by email.
    pub awaits_activation: bool,
}

impl Paid {
    /// A payment of `amount` under transaction `txn_id`, made at `at`, that names nothing else
    /// yet (fill in what the provider says).
    pub fn new(txn_id: impl Into<String>, amount: Money, at: DateTime<Utc>) -> Self {
        Self {
            txn_id: txn_id.into(),
            reference: None,
            subscription: None,
            customer: None,
            payer_email: None,
            amount,
            payment_ref: None,
            at,
            awaits_activation: false,
        }
    }
}

/// Money going back, as a provider reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    /// The provider's key for this report (replays carry the same).
    pub refund_id: String,
    /// The transaction of the payment it returns, when the report names it.
    pub txn_id: Option<String>,
    /// The provider payment object it returns (a Stripe payment intent), to find it otherwise.
    pub payment_ref: Option<String>,
    /// A refund, or a reversal (chargeback).
    pub kind: RefundKind,
    /// Amount that went back (everything refunded of that payment so far when `cumulative`).
    pub amount: Money,
    /// `amount` is a running total.
    pub cumulative: bool,
    /// The provider says the whole payment went back.
    pub full: bool,
    /// The payment it names may still arrive (a Stripe invoice, a PayPal sale): wait for it.
    /// Otherwise (a PayPal capture, which Usher never records) it is unmatched at once.
    pub may_wait: bool,
}

/// Money that came in for an invoice that expired before it was paid in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaidInPart {
    /// The provider's invoice.
    pub txn_id: String,
    /// Our checkout reference.
    pub reference: Option<String>,
    /// What came in, as the provider wrote it.
    pub paid: String,
    /// In what (a crypto currency id).
    pub paid_currency: String,
    /// Its worth in the invoice's currency, when known.
    pub worth: Option<Money>,
}

/// What processing a delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Processed {
    /// First delivery: applied.
    Applied,
    /// Seen before: nothing changed.
    Replay,
    /// Validly signed but impossible to store: recorded as rejected for the admins.
    Rejected,
}

/// Why a delivery was not processed; the door asks the provider to retry.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// A provider Usher had to ask is not answering (the delivery can succeed later).
    #[error("{0} is not answering: {1}")]
    ProviderUnavailable(&'static str, String),
    /// Anything else (the database is down…).
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ProcessError {
    fn from(err: sqlx::Error) -> Self {
        Self::Unexpected(anyhow::Error::new(err).context("database"))
    }
}

/// Processes one verified delivery: asks the provider what it must, then records the event,
/// applies what it means, and commits it all with the jobs it queues, once. A delivery the
/// database refuses (a constraint, a value it cannot hold) is recorded as rejected instead.
pub async fn process(
    app: &App,
    provider: Provider,
    event_id: &str,
    event_type: &str,
    events: Vec<PaymentEvent>,
) -> Result<Processed, ProcessError> {
    let mut events = events;
    if events.iter().any(|e| needs_provider(provider, e)) {
        if seen(app, provider, event_id).await? {
            return Ok(Processed::Replay);
        }
        resolve(app, provider, &mut events).await?;
    }
    match write(app, provider, event_id, event_type, &events).await {
        Ok(processed) => Ok(processed),
        Err(err) => match unstorable(&err) {
            Some(reason) => reject(app, provider, event_id, event_type, &reason).await,
            None => Err(ProcessError::Unexpected(err)),
        },
    }
}

/// Records a validly signed delivery that cannot be stored (the parser refused it, or the
/// database did), with the reason, for the admins. A second delivery of it changes nothing.
pub async fn reject(
    app: &App,
    provider: Provider,
    event_id: &str,
    event_type: &str,
    reason: &str,
) -> Result<Processed, ProcessError> {
    let now = app.clock.now();
    let reason: String = reason.chars().take(500).collect();
    let mut tx = app.db.begin().await?;
    if !payments::insert_rejected_event(&mut tx, provider, event_id, event_type, &reason, now)
        .await?
    {
        return Ok(Processed::Replay);
    }
    let detail = serde_json::json!({ "event": event_id, "type": event_type, "reason": reason });
    audit::insert_audit(
        &mut tx,
        &Actor::Webhook(provider),
        None,
        "webhook.rejected",
        &detail,
        now,
    )
    .await?;
    tx.commit().await?;
    tracing::warn!(provider = %provider, event_type, reason = %reason, "a signed delivery could not be stored; kept for the admins");
    Ok(Processed::Rejected)
}

/// Whether an error of the write is the database refusing this delivery's data (a CHECK, NOT
/// NULL or foreign key constraint, or a value it cannot hold such as a NUL byte) rather than a
/// fault that retrying can cure; the reason to record when it is. Unique violations are races
/// (the retry finds the row) and are not rejections.
fn unstorable(err: &anyhow::Error) -> Option<String> {
    let db = err
        .chain()
        .find_map(|e| match e.downcast_ref::<sqlx::Error>() {
            Some(sqlx::Error::Database(db)) => Some(db),
            _ => None,
        })?;
    let refused = match db.kind() {
        sqlx::error::ErrorKind::CheckViolation
        | sqlx::error::ErrorKind::NotNullViolation
        | sqlx::error::ErrorKind::ForeignKeyViolation => true,
        sqlx::error::ErrorKind::UniqueViolation => false,
        // PostgreSQL class 22: data exceptions (a NUL byte, a value out of range…).
        _ => db.code().is_some_and(|code| code.starts_with("22")),
    };
    refused.then(|| format!("the database refused it: {}", db.message()))
}

/// Whether processing this event needs an answer from the provider first.
fn needs_provider(provider: Provider, event: &PaymentEvent) -> bool {
    match event {
        PaymentEvent::Refunded(r) => r.txn_id.is_none() && r.payment_ref.is_some(),
        PaymentEvent::Paid(p) => {
            provider == Provider::Paypal
                && p.reference.is_none()
                && p.payer_email.is_none()
                && p.subscription.is_some()
        }
        _ => false,
    }
}

async fn seen(app: &App, provider: Provider, event_id: &str) -> Result<bool, ProcessError> {
    let mut tx = app.db.read().await?;
    let seen = payments::find_webhook_event(&mut tx, provider, event_id).await?;
    tx.rollback().await?;
    Ok(seen)
}

/// Fills in what only the provider knows, before any write: the transaction a Stripe refund
/// returns (Usher's records of the payment intent, else Stripe's invoice payments), and the payer
/// of a PayPal subscription Usher never saw (or the note that one of Usher's checkouts made it).
async fn resolve(
    app: &App,
    provider: Provider,
    events: &mut [PaymentEvent],
) -> Result<(), ProcessError> {
    for event in events.iter_mut() {
        match event {
            PaymentEvent::Refunded(refund) if refund.txn_id.is_none() => {
                let Some(intent) = refund.payment_ref.clone() else {
                    continue;
                };
                let mut tx = app.db.read().await?;
                let known = payments::find_txn_of_payment_ref(&mut tx, provider, &intent).await?;
                tx.rollback().await?;
                if known.is_some() {
                    refund.txn_id = known;
                    continue;
                }
                if let (Provider::Stripe, Some(stripe)) = (provider, &app.payments.stripe) {
                    match stripe.find_invoice_of_payment_intent(&intent).await {
                        Ok(invoice) => refund.txn_id = invoice,
                        Err(err) if err.is_transient() => {
                            return Err(ProcessError::ProviderUnavailable(
                                "Stripe",
                                err.to_string(),
                            ));
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, "Stripe would not list the invoice payments of a refunded payment intent; the refund stays unmatched");
                        }
                    }
                }
            }
            PaymentEvent::Paid(paid) if provider == Provider::Paypal => {
                let Some(subscription) = paid.subscription.clone() else {
                    continue;
                };
                let mut tx = app.db.read().await?;
                let linked = payments::find_provider_subscription(&mut tx, provider, &subscription)
                    .await?
                    .is_some();
                let ours = payments::find_checkout_naming(&mut tx, provider, &subscription).await?;
                tx.rollback().await?;
                if linked {
                    continue;
                }
                if ours {
                    paid.awaits_activation = true;
                    continue;
                }
                let Some(paypal) = &app.payments.paypal else {
                    continue;
                };
                match paypal.get_subscription(&subscription).await {
                    Ok(details) => {
                        paid.payer_email = details.payer_email;
                        paid.reference = details.custom_id;
                    }
                    Err(err) if err.is_transient() => {
                        return Err(ProcessError::ProviderUnavailable("PayPal", err.to_string()));
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "PayPal would not show a subscription Usher never saw; its payment stays unmatched");
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

async fn write(
    app: &App,
    provider: Provider,
    event_id: &str,
    event_type: &str,
    events: &[PaymentEvent],
) -> anyhow::Result<Processed> {
    let now = app.clock.now();
    let mut tx = app.db.begin().await?;
    if !payments::insert_webhook_event(&mut tx, provider, event_id, event_type, now).await? {
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
    match event {
        PaymentEvent::Paid(paid) => apply_paid(app, tx, provider, paid).await?,
        PaymentEvent::SubscriptionStarted {
            reference,
            subscription,
            customer,
            at,
        } => {
            let target = match reference {
                Some(reference) => payments::find_checkout(tx, reference).await?,
                None => payments::find_provider_subscription(tx, provider, subscription).await?,
            };
            let Some(target) = target else {
                let detail = serde_json::json!({ "subscription": subscription });
                audit::insert_audit(tx, &actor, None, "subscription.unmatched", &detail, now)
                    .await?;
                return Ok(());
            };
            payments::lock_provider_subscription(tx, provider, subscription).await?;
            link(
                tx,
                provider,
                subscription,
                target,
                customer.as_deref(),
                *at,
                now,
            )
            .await?;
            // Payments that came before the activation apply now.
            for payment in
                payments::find_unmatched_of_subscription(tx, provider, subscription).await?
            {
                apply_payment(app, tx, &actor, payment, target, None).await?;
            }
        }
        PaymentEvent::SubscriptionStatus {
            subscription,
            status,
            renewing,
            ended,
            at,
        } => {
            let report = SubscriptionState {
                status: status.clone(),
                renewing: *renewing,
                ended: *ended,
                status_at: *at,
            };
            let stands =
                payments::record_subscription_state(tx, provider, subscription, &report).await?;
            payments::update_provider_subscription_status(tx, provider, subscription, &stands, now)
                .await?;
        }
        PaymentEvent::PaymentFailed {
            subscription,
            reference,
            txn_id,
            amount,
        } => {
            let target =
                match_target(tx, provider, reference.as_deref(), subscription.as_deref()).await?;
            let Some(target) = target else {
                return Ok(()); // Nobody of ours: nothing to warn.
            };
            let paid_until = payments::find_paid_until(tx, target.subscriber).await?;
            let detail = serde_json::json!({
                "amount": amount.to_string(),
                "provider": provider_name(provider),
                "paid_until": paid_until.map(lifecycle::human_date),
            });
            let audit_detail = serde_json::json!({ "txn": txn_id });
            audit::insert_audit(
                tx,
                &actor,
                Some(target.subscriber),
                "payment.failed",
                &audit_detail,
                now,
            )
            .await?;
            notify::enqueue_dm(
                app,
                tx,
                target.subscriber,
                Kind::PaymentFailed,
                &detail,
                txn_id,
            )
            .await?;
        }
        PaymentEvent::Refunded(refund) => apply_refund(app, tx, provider, refund).await?,
        PaymentEvent::PaidInPart(part) => {
            let checkout = match &part.reference {
                Some(reference) => payments::find_checkout(tx, reference).await?,
                None => None,
            };
            let new = NewPartialPayment {
                provider,
                txn_id: &part.txn_id,
                reference: part.reference.as_deref(),
                subscriber: checkout.map(|t| t.subscriber),
                paid: &part.paid,
                paid_currency: &part.paid_currency,
                worth: part.worth,
            };
            if payments::insert_partial_payment(tx, &new, now).await? {
                let detail = serde_json::json!({
                    "txn": part.txn_id, "paid": format!("{} {}", part.paid, part.paid_currency),
                    "worth": part.worth.map(|m| m.to_string()),
                });
                audit::insert_audit(
                    tx,
                    &actor,
                    checkout.map(|t| t.subscriber),
                    "payment.partial",
                    &detail,
                    now,
                )
                .await?;
                tracing::warn!(provider = %provider, "an invoice expired after a partial payment; kept for the admins");
            }
        }
    }
    Ok(())
}

/// Links a provider subscription, with the status that stands once this activation (reported
/// at `at`) is recorded: an ended subscription stays ended, a newer status stays.
async fn link(
    tx: &mut Tx,
    provider: Provider,
    subscription: &str,
    target: Target,
    customer: Option<&str>,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let active = SubscriptionState {
        status: "active".to_owned(),
        renewing: true,
        ended: false,
        status_at: at,
    };
    let stands = payments::record_subscription_state(tx, provider, subscription, &active).await?;
    let link = LinkSubscription {
        provider,
        subscription,
        target,
        customer,
        status: &stands.status,
        renewing: stands.renewing,
    };
    payments::upsert_provider_subscription(tx, &link, now).await?;
    Ok(())
}

async fn apply_paid(app: &App, tx: &mut Tx, provider: Provider, paid: &Paid) -> anyhow::Result<()> {
    let now = app.clock.now();
    let actor = Actor::Webhook(provider);
    let new = NewPayment {
        provider,
        txn_id: &paid.txn_id,
        amount: paid.amount,
        payer_email: paid.payer_email.as_deref(),
        provider_subscription: paid.subscription.as_deref(),
        customer: paid.customer.as_deref(),
        reference: paid.reference.as_deref(),
        payment_ref: paid.payment_ref.as_deref(),
        provider_time: paid.at,
        note: None,
    };
    // A refund of this payment delivered at the same moment either sees it or is seen by it.
    payments::lock_provider_txn(tx, provider, &paid.txn_id).await?;
    let Some(inserted) = payments::insert_payment(tx, &new, now).await? else {
        return Ok(()); // The same transaction from another event (invoice.paid and .payment_succeeded).
    };
    if let Some((target, links)) = match_paid(tx, provider, paid).await? {
        if let Some(subscription) = links {
            link(
                tx,
                provider,
                subscription,
                target,
                paid.customer.as_deref(),
                paid.at,
                now,
            )
            .await?;
            let detail =
                serde_json::json!({ "subscription": subscription, "payment": inserted.id });
            audit::insert_audit(
                tx,
                &actor,
                Some(target.subscriber),
                "subscription.linked_by_email",
                &detail,
                now,
            )
            .await?;
        }
        apply_payment(app, tx, &actor, inserted.id, target, None).await?;
    } else {
        let detail = serde_json::json!({ "payment": inserted.id, "txn": paid.txn_id });
        audit::insert_audit(tx, &actor, None, "payment.unmatched", &detail, now).await?;
        tracing::warn!(provider = %provider, payment = %inserted.id, "a payment matched no subscriber");
    }
    if inserted.refund_waiting {
        let payment = payments::find_payment_by_txn(tx, provider, &paid.txn_id)
            .await?
            .context("the payment just recorded")?;
        let waiting =
            payments::find_waiting_refunds(tx, provider, &paid.txn_id, paid.payment_ref.as_deref())
                .await?;
        for refund in waiting {
            // It returns this payment: counted with the payment's other refunds from now on.
            payments::update_refund(
                tx,
                refund.id,
                RefundStatus::Partial,
                payment.id,
                payment.subscriber_id,
            )
            .await?;
            settle_refund(app, tx, provider, refund.id, &payment).await?;
        }
    }
    Ok(())
}

/// Who a payment is for, and the provider subscription the match links (a subscription Usher
/// never saw, matched by the payer's email).
async fn match_paid<'p>(
    tx: &mut Tx,
    provider: Provider,
    paid: &'p Paid,
) -> anyhow::Result<Option<(Target, Option<&'p str>)>> {
    if let Some(reference) = &paid.reference
        && let Some(target) = payments::find_checkout(tx, reference).await?
    {
        return Ok(Some((target, None)));
    }
    if let Some(subscription) = &paid.subscription {
        if let Some(target) =
            payments::find_provider_subscription(tx, provider, subscription).await?
        {
            return Ok(Some((target, None)));
        }
        // Not linked as far as we can see: look again under the lock its activation takes.
        payments::lock_provider_subscription(tx, provider, subscription).await?;
        if let Some(target) =
            payments::find_provider_subscription(tx, provider, subscription).await?
        {
            return Ok(Some((target, None)));
        }
        if paid.awaits_activation {
            return Ok(None); // Its activation links it and applies this payment.
        }
        let target = by_email(tx, paid.payer_email.as_deref()).await?;
        return Ok(target.map(|t| (t, Some(subscription.as_str()))));
    }
    Ok(by_email(tx, paid.payer_email.as_deref())
        .await?
        .map(|t| (t, None)))
}

/// The one subscriber (with a plan) whose contact or active Plex email is the payer's.
async fn by_email(tx: &mut Tx, email: Option<&str>) -> anyhow::Result<Option<Target>> {
    let Some(email) = email.and_then(|e| PlexEmail::parse(e).ok()) else {
        return Ok(None);
    };
    Ok(match payments::find_by_payer_email(tx, &email).await? {
        Some((subscriber, Some(plan))) => Some(Target { subscriber, plan }),
        _ => None,
    })
}

async fn match_target(
    tx: &mut Tx,
    provider: Provider,
    reference: Option<&str>,
    subscription: Option<&str>,
) -> anyhow::Result<Option<Target>> {
    if let Some(reference) = reference
        && let Some(target) = payments::find_checkout(tx, reference).await?
    {
        return Ok(Some(target));
    }
    if let Some(subscription) = subscription {
        return Ok(payments::find_provider_subscription(tx, provider, subscription).await?);
    }
    Ok(None)
}

/// What applying a payment gave.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Applied {
    amount: Money,
    provider: Provider,
    subscriber: String,
    plan: String,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    flagged: bool,
}

/// Gives an unmatched payment its subscriber, plan and interval (what `cover` buys, by default
/// one period of the plan), and access when due. `None` when it was not unmatched any more.
async fn apply_payment(
    app: &App,
    tx: &mut Tx,
    actor: &Actor,
    payment: PaymentId,
    target: Target,
    cover: Option<Cover>,
) -> anyhow::Result<Option<Applied>> {
    let now = app.clock.now();
    let subscriber = target.subscriber;
    payments::lock_subscriber(tx, subscriber).await?;
    let offer = payments::find_plan_offer(tx, target.plan)
        .await?
        .context("the paid plan exists")?;
    let cover = cover.unwrap_or(Cover::Period(offer.period));
    let paid = payments::find_paid_end(tx, subscriber, payment).await?;
    let from = paid.end.map_or(now, |end| end.max(now));
    let Some(applied) = payments::update_payment_applied(
        tx,
        payment,
        target,
        (from, cover.after(from)),
        cover,
        now,
    )
    .await?
    else {
        return Ok(None); // Applied meanwhile by another delivery or an admin.
    };
    // A payment older (by the provider's time) than some already applied takes its place among
    // them: lay them out again.
    let (from, to) = if paid.later {
        lay_out(tx, subscriber).await?;
        let row = payments::find_payment_locked(tx, payment)
            .await?
            .context("the payment just applied")?;
        (
            row.paid_from
                .context("an applied payment has its interval")?,
            row.paid_to.context("an applied payment has its interval")?,
        )
    } else {
        (from, cover.after(from))
    };
    let payer = payments::find_payer(tx, subscriber)
        .await?
        .context("the subscriber exists")?;
    if payer.plan_id != Some(target.plan) {
        subscribers::update_subscriber_plan(tx, subscriber, Some(target.plan), now).await?;
    }
    let detail =
        serde_json::json!({ "payment": payment, "plan": target.plan, "from": from, "to": to });
    audit::insert_audit(tx, actor, Some(subscriber), "payment.applied", &detail, now).await?;

    // The receipt, and the subscriber roles (the job reads their standing when it runs).
    // In order, this payment's end is the subscriber's; laid out again, the latest end may differ.
    let paid_until = if paid.later {
        payments::find_paid_until(tx, subscriber)
            .await?
            .unwrap_or(to)
    } else {
        to
    };
    let shown_amount = (applied.amount.minor() != 0).then(|| applied.amount.to_string());
    let receipt = serde_json::json!({
        "amount": shown_amount,
        "plan_name": offer.name,
        "provider": provider_name(applied.provider),
        "paid_until": lifecycle::human_date(paid_until),
        "flagged": payer.requires_plex_change,
    });
    let event = format!("payment-{payment}");
    if !quiet_reference(applied.reference.as_deref()) {
        notify::enqueue_dm(app, tx, subscriber, Kind::Receipt, &receipt, &event).await?;
    }
    lifecycle::enqueue_role_sync(app, tx, subscriber, &event).await?;

    // Access: a share whose access was removed when the paid time ended comes back on its server;
    // otherwise invite when they have none on a usable server, unless flagged (the change comes
    // first) or without a Plex account on file.
    let result = Applied {
        amount: applied.amount,
        provider: applied.provider,
        subscriber: payer.display_name.clone(),
        plan: offer.name.clone(),
        from,
        to,
        flagged: payer.requires_plex_change,
    };
    if payer.requires_plex_change {
        return Ok(Some(result));
    }
    // A paid plan after a trial: the trial's share stays, moves or is updated (trials.rs).
    if trials::convert_in(app, tx, subscriber, target.plan, &payer.preferred_location).await? {
        return Ok(Some(result));
    }
    let access = payments::find_access(tx, subscriber).await?;
    if access.suspended && lifecycle::restore_access(app, tx, subscriber).await? > 0 {
        return Ok(Some(result));
    }
    if !access.with_access
        && let (Some(identity), Some(account)) = (payer.identity_id, &payer.identity_email)
    {
        let previous = shares::find_previous_servers(tx, subscriber).await?;
        let placed = access::place_and_invite(
            app,
            tx,
            subscriber,
            identity,
            target.plan,
            previous,
            payer.preferred_location.clone(),
        )
        .await?;
        if let Ok(server) = placed {
            // Where to look for the invite.
            let server_name = servers::find_server(tx, server).await?.map(|s| s.name);
            let detail = serde_json::json!({
                "plex_account": account.as_str(), "server_name": server_name, "waited": false,
            });
            let event = format!("invited-{payment}");
            notify::enqueue_dm(app, tx, subscriber, Kind::Invited, &detail, &event).await?;
        }
        if let Err(reason) = placed {
            // Marked waiting: the hourly placement invites them when a server has room.
            let detail = serde_json::json!({
                "plex_account": account.as_str(), "plan_name": offer.name, "reason": reason,
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
    Ok(Some(result))
}

/// Payments that send no receipt: an import's standing and a trial's time (nobody paid).
fn quiet_reference(reference: Option<&str>) -> bool {
    matches!(reference, Some("import" | "trial"))
}

/// The end of the subscriber's paid time (the latest applied interval), in the caller's
/// transaction.
pub async fn paid_end_in(
    tx: &mut Tx,
    subscriber: SubscriberId,
) -> anyhow::Result<Option<DateTime<Utc>>> {
    Ok(payments::find_counted_payments(tx, subscriber)
        .await?
        .iter()
        .map(|p| p.paid_to)
        .max())
}

/// Takes the subscriber's payment lock in the caller's transaction: paid time changes of one
/// subscriber happen one after another.
pub async fn lock_subscriber_in(tx: &mut Tx, subscriber: SubscriberId) -> anyhow::Result<()> {
    Ok(payments::lock_subscriber(tx, subscriber).await?)
}

/// Adds `secs` of paid time on `plan` after the current end, as a `manual` credit (no money):
/// what a plan change converts into more days. Returns the new end.
pub async fn add_credit_in(
    app: &App,
    tx: &mut Tx,
    subscriber: SubscriberId,
    plan: PlanId,
    secs: i64,
) -> anyhow::Result<DateTime<Utc>> {
    let now = app.clock.now();
    let end = paid_end_in(tx, subscriber).await?.unwrap_or(now).max(now);
    let credit = ManualPayment {
        subscriber,
        plan,
        coverage: Coverage::Until(end + chrono::Duration::seconds(secs.max(1))),
        transaction: None,
        amount: None,
        note: Some("time converted by a plan change".into()),
        reference: Some("plan-change".into()),
    };
    let paid = record_manual_payment_in(app, tx, &Actor::System, &credit)
        .await
        .map_err(|e| anyhow::anyhow!("recording the plan change's credit: {e}"))?;
    Ok(paid.paid_to)
}

/// Keeps only `keep` of the subscriber's paid time from `now` on (all of it when `keep` is as long
/// as what is left): the payments laid out last give back what is cut, by buying a fixed length
/// from then on; a payment wholly in the future keeps one second (its record, and its money,
/// stay). In the caller's transaction. Returns the paid end before and after.
pub async fn keep_paid_time_in(
    tx: &mut Tx,
    subscriber: SubscriberId,
    keep: chrono::Duration,
    now: DateTime<Utc>,
) -> anyhow::Result<(Option<DateTime<Utc>>, Option<DateTime<Utc>>)> {
    payments::lock_subscriber(tx, subscriber).await?;
    let counted = payments::find_counted_payments(tx, subscriber).await?;
    let before = counted.iter().map(|p| p.paid_to).max();
    let Some(end) = before.filter(|end| *end > now) else {
        return Ok((before, before));
    };
    let mut cut = ((end - now) - keep.max(chrono::Duration::zero())).num_seconds();
    for payment in counted.iter().rev() {
        if cut <= 0 {
            break;
        }
        let length = (payment.paid_to - payment.paid_from).num_seconds();
        let usable = (payment.paid_to - payment.paid_from.max(now)).num_seconds();
        if usable <= 0 {
            continue;
        }
        let take = cut.min(usable);
        payments::update_payment_cover_secs(tx, payment.id, (length - take).max(1)).await?;
        cut -= take;
    }
    lay_out(tx, subscriber).await?;
    let after = payments::find_counted_payments(tx, subscriber)
        .await?
        .iter()
        .map(|p| p.paid_to)
        .max();
    Ok((before, after))
}

/// Lays the subscriber's applied payments out again, in the order of their provider time: each
/// starts at the later of when it was applied and the end of the one before, and lasts what it
/// buys. Only intervals that move are written.
async fn lay_out(tx: &mut Tx, subscriber: SubscriberId) -> anyhow::Result<()> {
    let mut end: Option<DateTime<Utc>> = None;
    for payment in payments::find_counted_payments(tx, subscriber).await? {
        let not_before = payment.not_before();
        let from = end.map_or(not_before, |end| end.max(not_before));
        let to = payment.cover().after(from);
        if (from, to) != (payment.paid_from, payment.paid_to) {
            payments::update_payment_interval(tx, payment.id, from, to).await?;
        }
        end = Some(to);
    }
    Ok(())
}

// ---- refunds ------------------------------------------------------------------------------------

async fn apply_refund(
    app: &App,
    tx: &mut Tx,
    provider: Provider,
    refund: &Refund,
) -> anyhow::Result<()> {
    let now = app.clock.now();
    let payment = match &refund.txn_id {
        Some(txn) => {
            payments::lock_provider_txn(tx, provider, txn).await?;
            payments::find_payment_by_txn(tx, provider, txn).await?
        }
        None => None,
    };
    let new = NewRefund {
        provider,
        refund_id: &refund.refund_id,
        txn_id: refund.txn_id.as_deref(),
        payment_ref: refund.payment_ref.as_deref(),
        kind: refund.kind,
        amount: refund.amount,
        cumulative: refund.cumulative,
        provider_full: refund.full,
    };
    if let Some(payment) = payment {
        let found = Some((payment.id, payment.subscriber_id));
        // Recorded partial until settled, in this same transaction.
        if let Some(id) =
            payments::insert_refund(tx, &new, RefundStatus::Partial, found, now).await?
        {
            settle_refund(app, tx, provider, id, &payment).await?;
        }
        return Ok(());
    }
    let status = if refund.txn_id.is_some() && refund.may_wait {
        RefundStatus::Waiting
    } else {
        RefundStatus::Unmatched
    };
    if payments::insert_refund(tx, &new, status, None, now)
        .await?
        .is_some()
    {
        let action = match status {
            RefundStatus::Waiting => "refund.waiting",
            _ => "refund.unmatched",
        };
        let detail = serde_json::json!({
            "refund": refund.refund_id, "txn": refund.txn_id, "payment_ref": refund.payment_ref,
            "amount": refund.amount.to_string(),
        });
        audit::insert_audit(tx, &Actor::Webhook(provider), None, action, &detail, now).await?;
    }
    Ok(())
}

/// Settles a recorded refund against its payment: when the refunds of that payment add up to it
/// (or the provider said it was whole), the payment stops counting, the later intervals close up,
/// and the subscriber is told; otherwise the refund stays partial for the admins and the
/// subscriber is told their time does not change.
async fn settle_refund(
    app: &App,
    tx: &mut Tx,
    provider: Provider,
    refund: i64,
    payment: &PaymentRow,
) -> anyhow::Result<()> {
    let now = app.clock.now();
    let actor = Actor::Webhook(provider);
    let refunds = payments::find_refunds_of_payment(tx, payment.id).await?;
    let this = refunds
        .iter()
        .find(|r| r.id == refund)
        .context("the refund being settled")?
        .clone();
    let same_currency = |r: &&payments::RefundRow| r.amount.currency() == payment.amount.currency();
    let running = refunds
        .iter()
        .filter(same_currency)
        .filter(|r| r.cumulative)
        .map(|r| r.amount.minor())
        .max()
        .unwrap_or(0);
    let summed: i64 = refunds
        .iter()
        .filter(same_currency)
        .filter(|r| !r.cumulative)
        .map(|r| r.amount.minor())
        .sum();
    let whole =
        refunds.iter().any(|r| r.provider_full) || running.max(summed) >= payment.amount.minor();
    let subscriber = payment.subscriber_id;
    if whole {
        for r in refunds.iter().filter(|r| r.status != RefundStatus::Applied) {
            payments::update_refund(tx, r.id, RefundStatus::Applied, payment.id, subscriber)
                .await?;
        }
    } else {
        payments::update_refund(tx, refund, RefundStatus::Partial, payment.id, subscriber).await?;
    }
    let newly_refunded = whole && payments::update_payment_refunded(tx, payment.id).await?;
    if whole && !newly_refunded {
        return Ok(()); // Refunded whole before: nothing more changes.
    }
    if newly_refunded
        && payment.status == PaymentStatus::Applied
        && let Some(subscriber) = subscriber
    {
        payments::lock_subscriber(tx, subscriber).await?;
        lay_out(tx, subscriber).await?;
    }
    let action = if whole {
        "payment.refunded"
    } else {
        "payment.partially_refunded"
    };
    let detail = serde_json::json!({
        "payment": payment.id, "refund": this.provider_refund_id, "kind": this.kind,
        "amount": this.amount.to_string(),
    });
    audit::insert_audit(tx, &actor, subscriber, action, &detail, now).await?;
    if let Some(subscriber) = subscriber
        && payment.status == PaymentStatus::Applied
    {
        let paid_until = payments::find_paid_until(tx, subscriber).await?;
        let dm = serde_json::json!({
            "full": whole,
            "reversal": this.kind == RefundKind::Reversal,
            "provider": provider_name(provider),
            "amount": this.amount.to_string(),
            "payment_amount": payment.amount.to_string(),
            "paid_until": paid_until.filter(|end| *end > now).map(lifecycle::human_date),
        });
        let event = format!("refund-{refund}");
        notify::enqueue_dm(app, tx, subscriber, Kind::Refunded, &dm, &event).await?;
    }
    Ok(())
}

// ---- the admins' side of payments ---------------------------------------------------------------

/// A payment no subscriber was found for, as the admins see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmatchedPayment {
    /// Usher's id (what `/admin payments assign` takes).
    pub id: PaymentId,
    /// Provider.
    pub provider: Provider,
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
    Ok(rows
        .into_iter()
        .map(|r| UnmatchedPayment {
            id: r.id,
            provider: r.provider,
            txn_id: r.provider_txn_id,
            amount: r.amount,
            payer_email: r.payer_email,
            received_at: r.created_at,
        })
        .collect())
}

/// Something about money an admin should look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentNotice {
    /// A refund no payment of Usher's could be found for.
    UnmatchedRefund {
        /// Provider.
        provider: Provider,
        /// Refund or reversal.
        kind: RefundKind,
        /// What went back.
        amount: Money,
        /// The transaction or payment object it names.
        names: Option<String>,
        /// When it came.
        at: DateTime<Utc>,
    },
    /// A refund waiting for its payment to arrive.
    WaitingRefund {
        /// Provider.
        provider: Provider,
        /// What went back.
        amount: Money,
        /// The transaction it waits for.
        txn_id: String,
        /// When it came.
        at: DateTime<Utc>,
    },
    /// Part of a payment went back; access unchanged.
    PartialRefund {
        /// Provider.
        provider: Provider,
        /// Refund or reversal.
        kind: RefundKind,
        /// What went back.
        amount: Money,
        /// The payment.
        payment: Option<PaymentId>,
        /// When it came.
        at: DateTime<Utc>,
    },
    /// An invoice expired after part of it was paid: that money bought nothing.
    PaidInPart {
        /// Provider.
        provider: Provider,
        /// The invoice.
        txn_id: String,
        /// What came in, as the provider wrote it, with its currency.
        paid: String,
        /// Its worth in the invoice's currency, when known.
        worth: Option<Money>,
        /// The subscriber the invoice was for.
        subscriber: Option<SubscriberId>,
        /// When it was recorded.
        at: DateTime<Utc>,
    },
    /// A signed delivery Usher could not store.
    RejectedEvent {
        /// Provider.
        provider: Provider,
        /// The provider's event id.
        event_id: String,
        /// Its type.
        event_type: String,
        /// Why.
        reason: String,
        /// When it came.
        at: DateTime<Utc>,
    },
}

impl PaymentNotice {
    /// When it happened (notices are listed oldest first).
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Self::UnmatchedRefund { at, .. }
            | Self::WaitingRefund { at, .. }
            | Self::PartialRefund { at, .. }
            | Self::PaidInPart { at, .. }
            | Self::RejectedEvent { at, .. } => *at,
        }
    }
}

/// Everything about money the admins should look at besides unmatched payments: refunds that
/// matched nothing, wait for their payment or were partial, money of expired invoices, and signed
/// deliveries that could not be stored. Oldest first.
pub async fn notices(app: &App) -> anyhow::Result<Vec<PaymentNotice>> {
    let mut tx = app.db.read().await?;
    let refunds = payments::find_refund_notices(&mut tx).await?;
    let partials = payments::find_partial_payments(&mut tx).await?;
    let rejected = payments::find_rejected_events(&mut tx).await?;
    tx.rollback().await?;
    let mut notices: Vec<PaymentNotice> = refunds
        .into_iter()
        .map(|r| match r.status {
            RefundStatus::Waiting => PaymentNotice::WaitingRefund {
                provider: r.provider,
                amount: r.amount,
                txn_id: r.provider_txn_id.unwrap_or_default(),
                at: r.created_at,
            },
            RefundStatus::Partial | RefundStatus::Applied => PaymentNotice::PartialRefund {
                provider: r.provider,
                kind: r.kind,
                amount: r.amount,
                payment: r.payment_id,
                at: r.created_at,
            },
            RefundStatus::Unmatched => PaymentNotice::UnmatchedRefund {
                provider: r.provider,
                kind: r.kind,
                amount: r.amount,
                names: r.provider_txn_id.or(r.payment_ref),
                at: r.created_at,
            },
        })
        .collect();
    notices.extend(partials.into_iter().map(|p| PaymentNotice::PaidInPart {
        worth: p.worth(),
        provider: p.provider,
        txn_id: p.provider_txn_id,
        paid: format!("{} {}", p.paid, p.paid_currency),
        subscriber: p.subscriber_id,
        at: p.created_at,
    }));
    notices.extend(rejected.into_iter().map(|e| PaymentNotice::RejectedEvent {
        provider: e.provider,
        event_id: e.event_id,
        event_type: e.event_type,
        reason: e.rejected_reason,
        at: e.received_at,
    }));
    notices.sort_by_key(PaymentNotice::at);
    Ok(notices)
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
    pub provider: Provider,
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
/// applied and changes nothing), applies it as a webhook match would (its interval laid out
/// among theirs, invite when due) and audits it with the admin.
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
    let who = payments::find_payer(&mut tx, subscriber)
        .await?
        .ok_or(AssignError::NotSubscriber)?;
    let row = payments::find_payment_locked(&mut tx, payment)
        .await?
        .ok_or(AssignError::NoSuchPayment(payment))?;
    match row.status {
        PaymentStatus::Unmatched => {}
        PaymentStatus::Refunded => return Err(AssignError::Refunded(payment)),
        PaymentStatus::Applied => return Err(AssignError::AlreadyMatched(payment)),
    }
    let plan = plan
        .or(who.plan_id)
        .ok_or_else(|| AssignError::NoPlan(who.display_name.clone()))?;
    if payments::find_plan_offer(&mut tx, plan).await?.is_none() {
        return Err(AssignError::NoSuchPlan(plan));
    }
    let target = Target { subscriber, plan };
    let applied = apply_payment(app, &mut tx, actor, payment, target, None)
        .await?
        .context("a locked unmatched payment applies")?;
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
    Ok(Assigned {
        payment,
        provider: row.provider,
        amount: row.amount,
        subscriber: applied.subscriber,
        plan: applied.plan,
        paid_from: applied.from,
        paid_to: applied.to,
        flagged: applied.flagged,
    })
}

// ---- payments recorded by hand ------------------------------------------------------------------

/// What a payment recorded by hand buys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// This many days, from the later of now and the end of the time already paid.
    Days(i64),
    /// Up to this moment (it must be in the future and after the time already paid).
    Until(DateTime<Utc>),
}

/// A payment an admin (or an import) records: cash, a bank transfer, a payment made elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualPayment {
    /// Who paid.
    pub subscriber: SubscriberId,
    /// For which plan.
    pub plan: PlanId,
    /// What it buys.
    pub coverage: Coverage,
    /// The transaction id (a bank reference, a receipt number); unique. Generated when absent.
    pub transaction: Option<String>,
    /// How much was paid, when known.
    pub amount: Option<Money>,
    /// The admin's note.
    pub note: Option<String>,
    /// Where it comes from, e.g. `import`.
    pub reference: Option<String>,
}

/// A payment recorded by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualPaid {
    /// The payment.
    pub payment: PaymentId,
    /// Its transaction id (the one given, or the one generated).
    pub transaction: String,
    /// The subscriber's name.
    pub subscriber: String,
    /// The plan it pays for.
    pub plan: String,
    /// Start of the interval it added.
    pub paid_from: DateTime<Utc>,
    /// End of that interval.
    pub paid_to: DateTime<Utc>,
    /// The subscriber must change Plex account before any invite.
    pub flagged: bool,
}

/// Why a payment was not recorded; each is a message for the admin, and nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ManualPaymentError {
    /// No such subscriber.
    #[error("that user is not a subscriber")]
    NotSubscriber,
    /// No such plan.
    #[error("there is no plan #{0}")]
    NoSuchPlan(PlanId),
    /// Zero or negative days.
    #[error("the number of days must be at least 1 (it was {0})")]
    DaysNotPositive(i64),
    /// More days than a date can hold.
    #[error("{0} days is more than a payment can cover")]
    TooManyDays(i64),
    /// `until` is not in the future.
    #[error("{0} is not in the future; give a later date")]
    UntilInPast(String),
    /// `until` is not after the time already paid.
    #[error("they are paid until {0} already; give a date after it")]
    UntilNotAfterEnd(String),
    /// The transaction id is empty, too long, or has control characters.
    #[error("a transaction id is 1 to 200 characters of text")]
    BadTransaction,
    /// The transaction id was recorded before.
    #[error(
        "transaction {transaction} is recorded already (payment #{payment}); nothing was written"
    )]
    DuplicateTransaction {
        /// The transaction id.
        transaction: String,
        /// The payment that has it.
        payment: PaymentId,
    },
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ManualPaymentError {
    fn from(err: sqlx::Error) -> Self {
        Self::Unexpected(anyhow::Error::new(err).context("database"))
    }
}

/// Records a payment made by hand and applies it exactly like a matched webhook (paid time,
/// invite when due unless flagged, roles, receipt DM), audited with `actor`, in one transaction.
pub async fn record_manual_payment(
    app: &App,
    actor: &Actor,
    payment: &ManualPayment,
) -> Result<ManualPaid, ManualPaymentError> {
    let mut tx = app.db.begin().await?;
    let paid = record_manual_payment_in(app, &mut tx, actor, payment).await?;
    app.queue.commit(tx).await?;
    Ok(paid)
}

/// [`record_manual_payment`] inside the caller's open transaction (an import records many in its
/// own). On a refusal nothing was written in `tx`, which stays usable.
pub async fn record_manual_payment_in(
    app: &App,
    tx: &mut Tx,
    actor: &Actor,
    manual: &ManualPayment,
) -> Result<ManualPaid, ManualPaymentError> {
    let now = app.clock.now();
    if let Coverage::Days(days) = manual.coverage
        && days < 1
    {
        return Err(ManualPaymentError::DaysNotPositive(days));
    }
    if let Some(transaction) = &manual.transaction {
        let text = transaction.trim();
        if text.is_empty() || text.chars().count() > 200 || text.chars().any(char::is_control) {
            return Err(ManualPaymentError::BadTransaction);
        }
    }
    let subscriber = manual.subscriber;
    payments::lock_subscriber(tx, subscriber).await?;
    let payer = payments::find_payer(tx, subscriber)
        .await?
        .ok_or(ManualPaymentError::NotSubscriber)?;
    let offer = payments::find_plan_offer(tx, manual.plan)
        .await?
        .ok_or(ManualPaymentError::NoSuchPlan(manual.plan))?;
    let end = payments::find_paid_until(tx, subscriber).await?;
    let cover = match manual.coverage {
        Coverage::Days(days) => Cover::Seconds(
            days.checked_mul(86_400)
                .ok_or(ManualPaymentError::TooManyDays(days))?,
        ),
        Coverage::Until(until) => {
            if until <= now {
                return Err(ManualPaymentError::UntilInPast(lifecycle::human_date(
                    until,
                )));
            }
            if let Some(end) = end
                && until <= end
            {
                return Err(ManualPaymentError::UntilNotAfterEnd(lifecycle::human_date(
                    end,
                )));
            }
            let from = end.map_or(now, |end| end.max(now));
            Cover::Seconds((until - from).num_seconds().max(1))
        }
    };
    let transaction = manual.transaction.as_deref().map_or_else(
        || format!("manual-{}", random_token(12)),
        |t| t.trim().to_owned(),
    );
    let amount = manual
        .amount
        .unwrap_or_else(|| Money::new(0, offer.price.currency()));
    let new = NewPayment {
        provider: Provider::Manual,
        txn_id: &transaction,
        amount,
        payer_email: None,
        provider_subscription: None,
        customer: None,
        reference: manual.reference.as_deref(),
        payment_ref: None,
        provider_time: now,
        note: manual.note.as_deref(),
    };
    let Some(inserted) = payments::insert_payment(tx, &new, now).await? else {
        let existing = payments::find_payment_by_txn(tx, Provider::Manual, &transaction)
            .await?
            .context("a recorded transaction has its payment")?;
        return Err(ManualPaymentError::DuplicateTransaction {
            transaction,
            payment: existing.id,
        });
    };
    let target = Target {
        subscriber,
        plan: manual.plan,
    };
    let applied = apply_payment(app, tx, actor, inserted.id, target, Some(cover))
        .await?
        .context("a payment just recorded is unmatched")?;
    let detail = serde_json::json!({
        "payment": inserted.id, "transaction": transaction, "plan": manual.plan,
        "amount": manual.amount.map(|m| m.to_string()), "reference": manual.reference,
        "note": manual.note, "from": applied.from, "to": applied.to,
    });
    audit::insert_audit(tx, actor, Some(subscriber), "payment.manual", &detail, now).await?;
    Ok(ManualPaid {
        payment: inserted.id,
        transaction,
        subscriber: payer.display_name,
        plan: offer.name,
        paid_from: applied.from,
        paid_to: applied.to,
        flagged: payer.requires_plex_change,
    })
}
