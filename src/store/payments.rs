//! Payments, refunds, webhook events, checkouts and provider subscriptions.
//!
//! Rules it keeps: a webhook event is recorded once per (provider, event id), a payment once per
//! (provider, transaction id) and a refund report once per (provider, refund id), all by unique
//! keys, so a replay inserts nothing; paid intervals are computed under a lock on the subscriber
//! row (PostgreSQL `FOR UPDATE`; SQLite writers are already serialised by `BEGIN IMMEDIATE`), so
//! two payments never extend from the same end; a provider subscription's status is replaced only
//! by a report at least as new, and an ended subscription stays ended. Rows come back as domain
//! types; state words are written and compared here only.

use chrono::{DateTime, Utc};

use crate::domain::{
    BillingPeriod, Money, PaymentId, PaymentStatus, PlanId, PlexEmail, PlexIdentityId, Provider,
    RefundKind, RefundStatus, SubscriberId,
};
use crate::on_tx;
use crate::store::Tx;

// ---- webhook events -----------------------------------------------------------------------------

/// Records a webhook delivery; false when this event was recorded before (a replay).
pub async fn insert_webhook_event(
    tx: &mut Tx,
    provider: Provider,
    event_id: &str,
    event_type: &str,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "INSERT INTO webhook_event (provider, event_id, event_type, received_at, processed_at) \
                       VALUES ($1, $2, $3, $4, $4) ON CONFLICT (provider, event_id) DO NOTHING";
    let n = on_tx!(tx, |c| sqlx::query(SQL)
        .bind(provider)
        .bind(event_id)
        .bind(event_type)
        .bind(now)
        .execute(c)
        .await?
        .rows_affected());
    Ok(n == 1)
}

/// Records a validly signed delivery Usher could not store, with the reason; false when this event
/// was recorded before.
pub async fn insert_rejected_event(
    tx: &mut Tx,
    provider: Provider,
    event_id: &str,
    event_type: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "INSERT INTO webhook_event (provider, event_id, event_type, received_at, rejected_reason) \
                       VALUES ($1, $2, $3, $4, $5) ON CONFLICT (provider, event_id) DO NOTHING";
    let n = on_tx!(tx, |c| sqlx::query(SQL)
        .bind(provider)
        .bind(event_id)
        .bind(event_type)
        .bind(now)
        .bind(reason)
        .execute(c)
        .await?
        .rows_affected());
    Ok(n == 1)
}

/// Whether this delivery was recorded already (processed or rejected).
pub async fn find_webhook_event(
    tx: &mut Tx,
    provider: Provider,
    event_id: &str,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "SELECT 1 FROM webhook_event WHERE provider = $1 AND event_id = $2";
    let found: Option<i32> = on_tx!(tx, |c| sqlx::query_scalar(SQL)
        .bind(provider)
        .bind(event_id)
        .fetch_optional(c)
        .await?);
    Ok(found.is_some())
}

/// A delivery that was refused after its signature checked out.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RejectedEventRow {
    /// Provider.
    pub provider: Provider,
    /// The provider's event id (or a digest of the body when it had none).
    pub event_id: String,
    /// The event type, as sent.
    pub event_type: String,
    /// Why it could not be stored.
    pub rejected_reason: String,
    /// When it came.
    pub received_at: DateTime<Utc>,
}

/// Every rejected delivery, oldest first.
pub async fn find_rejected_events(tx: &mut Tx) -> Result<Vec<RejectedEventRow>, sqlx::Error> {
    const SQL: &str = "SELECT provider, event_id, event_type, rejected_reason, received_at FROM webhook_event \
                       WHERE rejected_reason IS NOT NULL ORDER BY id";
    on_tx!(tx, |c| sqlx::query_as(SQL).fetch_all(c).await)
}

// ---- checkouts ----------------------------------------------------------------------------------

/// Records a checkout link made for (subscriber, plan).
pub async fn insert_checkout(
    tx: &mut Tx,
    reference: &str,
    subscriber: SubscriberId,
    plan: PlanId,
    provider: Provider,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    const SQL: &str = "INSERT INTO checkout (reference, subscriber_id, plan_id, provider, created_at) VALUES ($1, $2, $3, $4, $5)";
    on_tx!(tx, |c| sqlx::query(SQL)
        .bind(reference)
        .bind(subscriber)
        .bind(plan)
        .bind(provider)
        .bind(now)
        .execute(c)
        .await
        .map(|_| ()))
}

/// Notes the provider's id of a checkout (session, subscription or invoice id).
pub async fn update_checkout_provider_ref(
    tx: &mut Tx,
    reference: &str,
    provider_ref: &str,
) -> Result<(), sqlx::Error> {
    const SQL: &str = "UPDATE checkout SET provider_ref = $1 WHERE reference = $2";
    on_tx!(tx, |c| sqlx::query(SQL)
        .bind(provider_ref)
        .bind(reference)
        .execute(c)
        .await
        .map(|_| ()))
}

/// Who and what a match found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct Target {
    /// The subscriber who paid.
    #[sqlx(rename = "subscriber_id")]
    pub subscriber: SubscriberId,
    /// The plan the money is for.
    #[sqlx(rename = "plan_id")]
    pub plan: PlanId,
}

/// The (subscriber, plan) of our checkout reference.
pub async fn find_checkout(tx: &mut Tx, reference: &str) -> Result<Option<Target>, sqlx::Error> {
    const SQL: &str = "SELECT subscriber_id, plan_id FROM checkout WHERE reference = $1";
    on_tx!(tx, |c| sqlx::query_as(SQL)
        .bind(reference)
        .fetch_optional(c)
        .await)
}

/// Whether one of Usher's checkouts made this provider object (a PayPal subscription): its
/// activation is then on its way.
pub async fn find_checkout_naming(
    tx: &mut Tx,
    provider: Provider,
    provider_ref: &str,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "SELECT 1 FROM checkout WHERE provider = $1 AND provider_ref = $2";
    let found: Option<i32> = on_tx!(tx, |c| sqlx::query_scalar(SQL)
        .bind(provider)
        .bind(provider_ref)
        .fetch_optional(c)
        .await?);
    Ok(found.is_some())
}

// ---- provider subscriptions ---------------------------------------------------------------------

/// The (subscriber, plan) a provider subscription is linked to.
pub async fn find_provider_subscription(
    tx: &mut Tx,
    provider: Provider,
    subscription: &str,
) -> Result<Option<Target>, sqlx::Error> {
    const SQL: &str = "SELECT subscriber_id, plan_id FROM provider_subscription \
                       WHERE provider = $1 AND provider_subscription_id = $2";
    on_tx!(tx, |c| sqlx::query_as(SQL)
        .bind(provider)
        .bind(subscription)
        .fetch_optional(c)
        .await)
}

/// A provider subscription to link (or update when linked already).
#[derive(Debug, Clone)]
pub struct LinkSubscription<'a> {
    /// Provider.
    pub provider: Provider,
    /// Provider's subscription id.
    pub subscription: &'a str,
    /// Subscriber and plan.
    pub target: Target,
    /// Provider's customer id.
    pub customer: Option<&'a str>,
    /// Provider's status.
    pub status: &'a str,
    /// It will charge again by itself.
    pub renewing: bool,
}

/// Links a provider subscription to a subscriber, or refreshes the link.
pub async fn upsert_provider_subscription(
    tx: &mut Tx,
    link: &LinkSubscription<'_>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    const SQL: &str = "INSERT INTO provider_subscription (provider, provider_subscription_id, subscriber_id, plan_id, \
                       customer_id, status, renewing, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                       ON CONFLICT (provider, provider_subscription_id) DO UPDATE SET \
                       customer_id = COALESCE(excluded.customer_id, provider_subscription.customer_id), \
                       status = excluded.status, renewing = excluded.renewing, updated_at = excluded.updated_at";
    on_tx!(tx, |c| sqlx::query(SQL)
        .bind(link.provider)
        .bind(link.subscription)
        .bind(link.target.subscriber)
        .bind(link.target.plan)
        .bind(link.customer)
        .bind(link.status)
        .bind(link.renewing)
        .bind(now)
        .execute(c)
        .await
        .map(|_| ()))
}

/// Sets a linked subscription's status; false when it is not linked.
pub async fn update_provider_subscription_status(
    tx: &mut Tx,
    provider: Provider,
    subscription: &str,
    state: &SubscriptionState,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "UPDATE provider_subscription SET status = $1, renewing = $2, updated_at = $3 \
                       WHERE provider = $4 AND provider_subscription_id = $5";
    let n = on_tx!(tx, |c| sqlx::query(SQL)
        .bind(&state.status)
        .bind(state.renewing)
        .bind(now)
        .bind(provider)
        .bind(subscription)
        .execute(c)
        .await?
        .rows_affected());
    Ok(n == 1)
}

/// A provider subscription's status as the provider last reported it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SubscriptionState {
    /// The provider's own word.
    pub status: String,
    /// It will charge again by itself.
    pub renewing: bool,
    /// Deleted, cancelled or expired for good: nothing reported after can revive it.
    pub ended: bool,
    /// The provider's own time of the report that set it.
    pub status_at: DateTime<Utc>,
}

/// Records a status report of a provider subscription (linked or not) and returns the status that
/// stands after it: the report replaces the stored one unless the stored one is newer (by the
/// provider's time) or ended while this one is not. Reports at the same time: the later to
/// arrive wins.
pub async fn record_subscription_state(
    tx: &mut Tx,
    provider: Provider,
    subscription: &str,
    report: &SubscriptionState,
) -> Result<SubscriptionState, sqlx::Error> {
    const UPSERT: &str = "INSERT INTO provider_subscription_state (provider, provider_subscription_id, status, renewing, \
                          ended, status_at) VALUES ($1, $2, $3, $4, $5, $6) \
                          ON CONFLICT (provider, provider_subscription_id) DO UPDATE SET \
                          status = excluded.status, renewing = excluded.renewing, ended = excluded.ended, \
                          status_at = excluded.status_at \
                          WHERE (excluded.ended OR NOT provider_subscription_state.ended) \
                          AND (excluded.status_at >= provider_subscription_state.status_at \
                               OR (excluded.ended AND NOT provider_subscription_state.ended))";
    const READ: &str = "SELECT status, renewing, ended, status_at FROM provider_subscription_state \
                        WHERE provider = $1 AND provider_subscription_id = $2";
    on_tx!(tx, |c| {
        sqlx::query(UPSERT)
            .bind(provider)
            .bind(subscription)
            .bind(&report.status)
            .bind(report.renewing)
            .bind(report.ended)
            .bind(report.status_at)
            .execute(&mut *c)
            .await?;
        sqlx::query_as(READ)
            .bind(provider)
            .bind(subscription)
            .fetch_one(c)
            .await
    })
}

/// Serialises, until the transaction ends, the work of every event naming this provider
/// subscription (PostgreSQL transaction advisory lock; SQLite's write transactions already exclude
/// each other). Without it, under READ COMMITTED, a payment and the activation of its subscription
/// committing at once each miss the other's row and the payment stays unmatched for good.
pub async fn lock_provider_subscription(
    tx: &mut Tx,
    provider: Provider,
    subscription: &str,
) -> Result<(), sqlx::Error> {
    // The first key names this lock's class, so it cannot collide with other advisory locks.
    const SQL: &str = "SELECT pg_advisory_xact_lock(5, hashtext($1 || ':' || $2))";
    match tx {
        Tx::Sqlite(_) => Ok(()),
        Tx::Postgres(t) => sqlx::query(SQL)
            .bind(provider)
            .bind(subscription)
            .execute(&mut **t)
            .await
            .map(|_| ()),
    }
}

/// Serialises, until the transaction ends, the work of every event naming this provider
/// transaction: its payment and the refunds of it (PostgreSQL transaction advisory lock; SQLite's
/// write transactions already exclude each other). Without it, under READ COMMITTED, a refund and
/// the payment it returns committing at once each miss the other's row, and the refund waits for
/// good.
pub async fn lock_provider_txn(
    tx: &mut Tx,
    provider: Provider,
    txn_id: &str,
) -> Result<(), sqlx::Error> {
    // Lock class 6 (class 5 is the provider subscription's).
    const SQL: &str = "SELECT pg_advisory_xact_lock(6, hashtext($1 || ':' || $2))";
    match tx {
        Tx::Sqlite(_) => Ok(()),
        Tx::Postgres(t) => sqlx::query(SQL)
            .bind(provider)
            .bind(txn_id)
            .execute(&mut **t)
            .await
            .map(|_| ()),
    }
}

// ---- matching a payer ---------------------------------------------------------------------------

/// The subscriber whose contact email or active Plex email is `email` (compared in the
/// normalised form), with their plan; `None` when nobody or several match.
pub async fn find_by_payer_email(
    tx: &mut Tx,
    email: &PlexEmail,
) -> Result<Option<(SubscriberId, Option<PlanId>)>, sqlx::Error> {
    const SQL: &str = "SELECT DISTINCT s.id, s.plan_id FROM subscriber s \
                       LEFT JOIN plex_identity i ON i.subscriber_id = s.id AND i.state = 'active' \
                       WHERE lower(trim(s.contact_email)) = $1 OR i.email_norm = $1 LIMIT 2";
    let rows: Vec<(SubscriberId, Option<PlanId>)> = on_tx!(tx, |c| sqlx::query_as(SQL)
        .bind(email.as_str())
        .fetch_all(c)
        .await?);
    Ok(match rows.as_slice() {
        [one] => Some(*one),
        _ => None,
    })
}

/// Takes the subscriber's row lock for the rest of the transaction (PostgreSQL); SQLite's write
/// transactions already exclude each other.
pub async fn lock_subscriber(tx: &mut Tx, subscriber: SubscriberId) -> Result<(), sqlx::Error> {
    match tx {
        Tx::Sqlite(_) => Ok(()),
        Tx::Postgres(t) => sqlx::query("SELECT id FROM subscriber WHERE id = $1 FOR UPDATE")
            .bind(subscriber)
            .fetch_optional(&mut **t)
            .await
            .map(|_| ()),
    }
}

/// What applying a payment needs to know of its subscriber (and their current Plex account).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PayerRow {
    /// Display name.
    pub display_name: String,
    /// Their plan, if any.
    pub plan_id: Option<PlanId>,
    /// Flagged for a Plex account change: no invite until it is done.
    pub requires_plex_change: bool,
    /// The location they chose.
    pub preferred_location: Option<String>,
    /// Their active Plex identity.
    pub identity_id: Option<PlexIdentityId>,
    /// Its email or username.
    pub identity_email: Option<PlexEmail>,
}

/// The subscriber as a payment sees them; `None` when there is no such subscriber.
pub async fn find_payer(
    tx: &mut Tx,
    subscriber: SubscriberId,
) -> Result<Option<PayerRow>, sqlx::Error> {
    const SQL: &str = "SELECT s.display_name, s.plan_id, s.requires_plex_change, s.preferred_location, \
                       i.id AS identity_id, i.email_norm AS identity_email FROM subscriber s \
                       LEFT JOIN plex_identity i ON i.subscriber_id = s.id AND i.state = 'active' \
                       WHERE s.id = $1";
    on_tx!(tx, |c| sqlx::query_as(SQL)
        .bind(subscriber)
        .fetch_optional(c)
        .await)
}

/// The subscriber's live shares on servers of active owner accounts: whether one has access and
/// whether one had its access removed when the paid time ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct AccessRow {
    /// A live share with library access.
    pub with_access: bool,
    /// A live share whose access was removed when the paid time ended.
    pub suspended: bool,
}

/// Where the subscriber's access stands.
pub async fn find_access(tx: &mut Tx, subscriber: SubscriberId) -> Result<AccessRow, sqlx::Error> {
    const SQL: &str = "SELECT \
                       COALESCE(MAX(CASE WHEN sh.suspended_at IS NULL THEN 1 ELSE 0 END), 0) = 1 AS with_access, \
                       COALESCE(MAX(CASE WHEN sh.suspended_at IS NOT NULL THEN 1 ELSE 0 END), 0) = 1 AS suspended \
                       FROM share sh JOIN server sv ON sv.id = sh.server_id \
                       JOIN owner_account o ON o.id = sv.owner_account_id \
                       WHERE sh.subscriber_id = $1 AND sh.state <> 'removed' AND o.state = 'active'";
    on_tx!(tx, |c| sqlx::query_as(SQL)
        .bind(subscriber)
        .fetch_one(c)
        .await)
}

// ---- payments -----------------------------------------------------------------------------------

/// The end of the subscriber's latest applied paid interval.
pub async fn find_paid_until(
    tx: &mut Tx,
    subscriber: SubscriberId,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    const SQL: &str =
        "SELECT MAX(paid_to) FROM payment WHERE subscriber_id = $1 AND status = 'applied'";
    on_tx!(tx, |c| sqlx::query_scalar(SQL)
        .bind(subscriber)
        .fetch_one(c)
        .await)
}

/// The end of the subscriber's paid time, and whether an applied payment of a later provider
/// time exists (a payment arriving out of order: the intervals are then laid out again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct PaidEnd {
    /// The latest end of an applied interval.
    #[sqlx(rename = "paid_end")]
    pub end: Option<DateTime<Utc>>,
    /// An applied payment has a later provider time than the one being applied.
    pub later: bool,
}

/// [`PaidEnd`] of the subscriber for `payment`, about to be applied: later means after it in
/// the layout order (provider time, then id).
pub async fn find_paid_end(
    tx: &mut Tx,
    subscriber: SubscriberId,
    payment: PaymentId,
) -> Result<PaidEnd, sqlx::Error> {
    const SQL: &str = "SELECT MAX(p.paid_to) AS paid_end, COALESCE(MAX(CASE \
                       WHEN COALESCE(p.provider_time, p.created_at) > COALESCE(n.provider_time, n.created_at) THEN 1 \
                       WHEN COALESCE(p.provider_time, p.created_at) = COALESCE(n.provider_time, n.created_at) \
                            AND p.id > n.id THEN 1 ELSE 0 END), 0) = 1 AS later \
                       FROM payment n LEFT JOIN payment p ON p.subscriber_id = $1 AND p.status = 'applied' \
                       WHERE n.id = $2";
    on_tx!(tx, |c| sqlx::query_as(SQL)
        .bind(subscriber)
        .bind(payment)
        .fetch_one(c)
        .await)
}

/// A payment as it arrives.
#[derive(Debug, Clone)]
pub struct NewPayment<'a> {
    /// Provider.
    pub provider: Provider,
    /// The provider's transaction id (invoice, sale, txn, or an admin's transaction).
    pub txn_id: &'a str,
    /// Amount.
    pub amount: Money,
    /// Payer's email as the provider gave it.
    pub payer_email: Option<&'a str>,
    /// Provider subscription it renews.
    pub provider_subscription: Option<&'a str>,
    /// Provider customer.
    pub customer: Option<&'a str>,
    /// Our checkout reference (or `import`…), when it carried one.
    pub reference: Option<&'a str>,
    /// The provider's payment object that paid it (a Stripe payment intent).
    pub payment_ref: Option<&'a str>,
    /// The provider's own time of the payment.
    pub provider_time: DateTime<Utc>,
    /// An admin's note (manual payments).
    pub note: Option<&'a str>,
}

/// A payment just recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct InsertedPayment {
    /// Its id.
    pub id: PaymentId,
    /// A refund reported before it arrived waits for it.
    pub refund_waiting: bool,
}

/// Records a payment as unmatched; `None` when this transaction was recorded before.
pub async fn insert_payment(
    tx: &mut Tx,
    p: &NewPayment<'_>,
    now: DateTime<Utc>,
) -> Result<Option<InsertedPayment>, sqlx::Error> {
    const SQL: &str = "INSERT INTO payment (provider, provider_txn_id, amount_minor, currency, payer_email, \
                       provider_subscription_id, customer_id, reference, payment_ref, provider_time, note, status, created_at) \
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'unmatched', $12) \
                       ON CONFLICT (provider, provider_txn_id) DO NOTHING RETURNING id, \
                       EXISTS (SELECT 1 FROM refund r WHERE r.provider = $1 AND r.status = 'waiting' \
                       AND (r.provider_txn_id = $2 OR (r.payment_ref IS NOT NULL AND r.payment_ref = $9))) AS refund_waiting";
    on_tx!(tx, |c| sqlx::query_as(SQL)
        .bind(p.provider)
        .bind(p.txn_id)
        .bind(p.amount.minor())
        .bind(p.amount.currency())
        .bind(p.payer_email)
        .bind(p.provider_subscription)
        .bind(p.customer)
        .bind(p.reference)
        .bind(p.payment_ref)
        .bind(p.provider_time)
        .bind(p.note)
        .bind(now)
        .fetch_optional(c)
        .await)
}

/// What a payment buys: a plan period, or a fixed length (a manual payment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cover {
    /// One period of the plan.
    Period(BillingPeriod),
    /// A fixed number of seconds.
    Seconds(i64),
}

impl Cover {
    /// The end of this cover starting at `from` (saturating at the end of time).
    pub fn after(self, from: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Self::Period(period) => period.after(from),
            Self::Seconds(secs) => from
                .checked_add_signed(chrono::Duration::seconds(secs))
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }

    fn columns(self) -> (Option<BillingPeriod>, Option<i64>) {
        match self {
            Self::Period(period) => (Some(period), None),
            Self::Seconds(secs) => (None, Some(secs)),
        }
    }
}

/// An applied payment's interval and what it was.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AppliedPayment {
    /// Amount.
    #[sqlx(flatten)]
    pub amount: Money,
    /// Provider.
    pub provider: Provider,
    /// The reference it was made with (a checkout's, or `import`, `trial`, `admin` for manual ones).
    pub reference: Option<String>,
}

/// Applies an unmatched payment: its subscriber, plan, paid interval and what it covers. `None`
/// when it was not unmatched (applied or refunded meanwhile: nothing changed).
pub async fn update_payment_applied(
    tx: &mut Tx,
    payment: PaymentId,
    target: Target,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    cover: Cover,
    now: DateTime<Utc>,
) -> Result<Option<AppliedPayment>, sqlx::Error> {
    const SQL: &str = "UPDATE payment SET subscriber_id = $1, plan_id = $2, paid_from = $3, paid_to = $4, \
                       status = 'applied', applied_at = $5, cover_period = $6, cover_secs = $7 \
                       WHERE id = $8 AND status = 'unmatched' RETURNING amount_minor, currency, provider, reference";
    let (period, secs) = cover.columns();
    on_tx!(tx, |c| sqlx::query_as(SQL)
        .bind(target.subscriber)
        .bind(target.plan)
        .bind(from)
        .bind(to)
        .bind(now)
        .bind(period)
        .bind(secs)
        .bind(payment)
        .fetch_optional(c)
        .await)
}

/// An applied payment as the layout of paid intervals sees it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CountedPayment {
    /// Its id.
    pub id: PaymentId,
    /// Its interval now.
    pub paid_from: DateTime<Utc>,
    /// End of its interval now.
    pub paid_to: DateTime<Utc>,
    /// When it was applied (none for payments applied before this was recorded).
    pub applied_at: Option<DateTime<Utc>>,
    /// The plan period it buys.
    pub cover_period: Option<BillingPeriod>,
    /// The fixed length it buys.
    pub cover_secs: Option<i64>,
}

impl CountedPayment {
    /// What it buys; a payment recorded before covers were kept buys the length it was given.
    pub fn cover(&self) -> Cover {
        match (self.cover_period, self.cover_secs) {
            (Some(period), _) => Cover::Period(period),
            (None, Some(secs)) => Cover::Seconds(secs),
            (None, None) => Cover::Seconds((self.paid_to - self.paid_from).num_seconds().max(1)),
        }
    }

    /// Its interval never starts before this.
    pub fn not_before(&self) -> DateTime<Utc> {
        self.applied_at.unwrap_or(self.paid_from)
    }
}

/// The subscriber's applied payments in the order their intervals are laid out: by the
/// provider's time of the payment, then by arrival.
pub async fn find_counted_payments(
    tx: &mut Tx,
    subscriber: SubscriberId,
) -> Result<Vec<CountedPayment>, sqlx::Error> {
    const SQL: &str = "SELECT id, paid_from, paid_to, applied_at, cover_period, cover_secs FROM payment \
                       WHERE subscriber_id = $1 AND status = 'applied' \
                       ORDER BY COALESCE(provider_time, created_at), id";
    on_tx!(tx, |c| sqlx::query_as(SQL)
        .bind(subscriber)
        .fetch_all(c)
        .await)
}

/// Makes an applied payment buy a fixed length (paid time given back or converted by an admin);
/// the caller lays the intervals out again.
pub async fn update_payment_cover_secs(
    tx: &mut Tx,
    payment: PaymentId,
    secs: i64,
) -> Result<(), sqlx::Error> {
    const SQL: &str = "UPDATE payment SET cover_period = NULL, cover_secs = $1 WHERE id = $2";
    on_tx!(tx, |c| sqlx::query(SQL)
        .bind(secs)
        .bind(payment)
        .execute(c)
        .await
        .map(drop))
}

/// Moves an applied payment's interval.
pub async fn update_payment_interval(
    tx: &mut Tx,
    payment: PaymentId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    const SQL: &str = "UPDATE payment SET paid_from = $1, paid_to = $2 WHERE id = $3";
    on_tx!(tx, |c| sqlx::query(SQL)
        .bind(from)
        .bind(to)
        .bind(payment)
        .execute(c)
        .await
        .map(|_| ()))
}

/// Unmatched payments that name a provider subscription, oldest first.
pub async fn find_unmatched_of_subscription(
    tx: &mut Tx,
    provider: Provider,
    subscription: &str,
) -> Result<Vec<PaymentId>, sqlx::Error> {
    const SQL: &str = "SELECT id FROM payment WHERE provider = $1 AND provider_subscription_id = $2 \
                       AND status = 'unmatched' ORDER BY id";
    on_tx!(tx, |c| sqlx::query_scalar(SQL)
        .bind(provider)
        .bind(subscription)
        .fetch_all(c)
        .await)
}

/// A payment waiting for an admin to assign it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UnmatchedRow {
    /// Row id.
    pub id: PaymentId,
    /// Provider.
    pub provider: Provider,
    /// Provider's transaction id.
    pub provider_txn_id: String,
    /// Amount.
    #[sqlx(flatten)]
    pub amount: Money,
    /// Payer email.
    pub payer_email: Option<String>,
    /// When it came.
    pub created_at: DateTime<Utc>,
}

/// Every unmatched payment, oldest first.
pub async fn find_unmatched(tx: &mut Tx) -> Result<Vec<UnmatchedRow>, sqlx::Error> {
    const SQL: &str = "SELECT id, provider, provider_txn_id, amount_minor, currency, payer_email, created_at \
                       FROM payment WHERE status = 'unmatched' ORDER BY id";
    on_tx!(tx, |c| sqlx::query_as(SQL).fetch_all(c).await)
}

/// One payment as an admin or a refund sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PaymentRow {
    /// Row id.
    pub id: PaymentId,
    /// Provider.
    pub provider: Provider,
    /// Provider's transaction id.
    pub provider_txn_id: String,
    /// Amount.
    #[sqlx(flatten)]
    pub amount: Money,
    /// Where it stands.
    pub status: PaymentStatus,
    /// Its subscriber, once matched.
    pub subscriber_id: Option<SubscriberId>,
    /// Paid interval start, once applied.
    pub paid_from: Option<DateTime<Utc>>,
    /// Paid interval end, once applied.
    pub paid_to: Option<DateTime<Utc>>,
}

const PAYMENT_COLUMNS: &str = "SELECT id, provider, provider_txn_id, amount_minor, currency, status, subscriber_id, \
                               paid_from, paid_to FROM payment";

/// Runs a [`PaymentRow`] query, locking the row on PostgreSQL (`FOR UPDATE`; SQLite write
/// transactions already exclude each other), so its status cannot change under the caller.
macro_rules! locked_payment {
    ($tx:expr, $filter:literal, $($bind:expr),+) => {{
        match $tx {
            Tx::Sqlite(t) => {
                let sql = format!("{PAYMENT_COLUMNS} {}", $filter);
                sqlx::query_as(&sql)
                    $(.bind($bind))+
                    .fetch_optional(&mut **t)
                    .await
            }
            Tx::Postgres(t) => {
                let sql = format!("{PAYMENT_COLUMNS} {} FOR UPDATE", $filter);
                sqlx::query_as(&sql)
                    $(.bind($bind))+
                    .fetch_optional(&mut **t)
                    .await
            }
        }
    }};
}

/// One payment, its row locked for the rest of the transaction.
pub async fn find_payment_locked(
    tx: &mut Tx,
    payment: PaymentId,
) -> Result<Option<PaymentRow>, sqlx::Error> {
    locked_payment!(tx, "WHERE id = $1", payment)
}

/// The payment of a provider transaction, its row locked for the rest of the transaction.
pub async fn find_payment_by_txn(
    tx: &mut Tx,
    provider: Provider,
    txn_id: &str,
) -> Result<Option<PaymentRow>, sqlx::Error> {
    locked_payment!(
        tx,
        "WHERE provider = $1 AND provider_txn_id = $2",
        provider,
        txn_id
    )
}

/// The transaction id of the payment a provider payment object (a Stripe payment intent) paid.
pub async fn find_txn_of_payment_ref(
    tx: &mut Tx,
    provider: Provider,
    payment_ref: &str,
) -> Result<Option<String>, sqlx::Error> {
    const SQL: &str = "SELECT provider_txn_id FROM payment WHERE provider = $1 AND payment_ref = $2 \
                       ORDER BY id LIMIT 1";
    on_tx!(tx, |c| sqlx::query_scalar(SQL)
        .bind(provider)
        .bind(payment_ref)
        .fetch_optional(c)
        .await)
}

/// Marks a payment refunded (from applied or unmatched); false when it was refunded already.
pub async fn update_payment_refunded(tx: &mut Tx, payment: PaymentId) -> Result<bool, sqlx::Error> {
    const SQL: &str =
        "UPDATE payment SET status = 'refunded' WHERE id = $1 AND status <> 'refunded'";
    let n = on_tx!(tx, |c| sqlx::query(SQL)
        .bind(payment)
        .execute(c)
        .await?
        .rows_affected());
    Ok(n == 1)
}

// ---- refunds ------------------------------------------------------------------------------------

/// A refund or reversal as a provider reports it.
#[derive(Debug, Clone)]
pub struct NewRefund<'a> {
    /// Provider.
    pub provider: Provider,
    /// The provider's key for this report.
    pub refund_id: &'a str,
    /// The transaction of the payment it returns, when known.
    pub txn_id: Option<&'a str>,
    /// The provider payment object (a Stripe payment intent), when no transaction is known.
    pub payment_ref: Option<&'a str>,
    /// Refund or reversal.
    pub kind: RefundKind,
    /// Amount (everything refunded of the payment so far when `cumulative`).
    pub amount: Money,
    /// `amount` is the running total of the payment's refunds.
    pub cumulative: bool,
    /// The provider says the whole payment went back.
    pub provider_full: bool,
}

/// Records a refund report; `None` when it was recorded before (a replay).
pub async fn insert_refund(
    tx: &mut Tx,
    refund: &NewRefund<'_>,
    status: RefundStatus,
    payment: Option<(PaymentId, Option<SubscriberId>)>,
    now: DateTime<Utc>,
) -> Result<Option<i64>, sqlx::Error> {
    const SQL: &str = "INSERT INTO refund (provider, provider_refund_id, provider_txn_id, payment_ref, payment_id, \
                       subscriber_id, kind, amount_minor, currency, cumulative, provider_full, status, created_at) \
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                       ON CONFLICT (provider, provider_refund_id) DO NOTHING RETURNING id";
    on_tx!(tx, |c| sqlx::query_scalar(SQL)
        .bind(refund.provider)
        .bind(refund.refund_id)
        .bind(refund.txn_id)
        .bind(refund.payment_ref)
        .bind(payment.map(|p| p.0))
        .bind(payment.and_then(|p| p.1))
        .bind(refund.kind)
        .bind(refund.amount.minor())
        .bind(refund.amount.currency())
        .bind(refund.cumulative)
        .bind(refund.provider_full)
        .bind(status)
        .bind(now)
        .fetch_optional(c)
        .await)
}

/// A refund on record, as deciding whether a payment went back whole needs it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RefundRow {
    /// Row id.
    pub id: i64,
    /// Provider.
    pub provider: Provider,
    /// The provider's key for the report.
    pub provider_refund_id: String,
    /// Refund or reversal.
    pub kind: RefundKind,
    /// Amount.
    #[sqlx(flatten)]
    pub amount: Money,
    /// `amount` is a running total.
    pub cumulative: bool,
    /// The provider said it was whole.
    pub provider_full: bool,
    /// Where it stands.
    pub status: RefundStatus,
}

const REFUND_COLUMNS: &str = "SELECT id, provider, provider_refund_id, kind, amount_minor, currency, cumulative, \
                              provider_full, status FROM refund";

/// Every refund recorded against a payment.
pub async fn find_refunds_of_payment(
    tx: &mut Tx,
    payment: PaymentId,
) -> Result<Vec<RefundRow>, sqlx::Error> {
    let sql = format!("{REFUND_COLUMNS} WHERE payment_id = $1 ORDER BY id");
    on_tx!(tx, |c| sqlx::query_as(&sql)
        .bind(payment)
        .fetch_all(c)
        .await)
}

/// Refunds waiting for the payment of this transaction (or payment object), oldest first.
pub async fn find_waiting_refunds(
    tx: &mut Tx,
    provider: Provider,
    txn_id: &str,
    payment_ref: Option<&str>,
) -> Result<Vec<RefundRow>, sqlx::Error> {
    let sql = format!(
        "{REFUND_COLUMNS} WHERE provider = $1 AND status = 'waiting' \
         AND (provider_txn_id = $2 OR (payment_ref IS NOT NULL AND payment_ref = $3)) ORDER BY id"
    );
    on_tx!(tx, |c| sqlx::query_as(&sql)
        .bind(provider)
        .bind(txn_id)
        .bind(payment_ref)
        .fetch_all(c)
        .await)
}

/// Settles a refund: its status and the payment it returned.
pub async fn update_refund(
    tx: &mut Tx,
    refund: i64,
    status: RefundStatus,
    payment: PaymentId,
    subscriber: Option<SubscriberId>,
) -> Result<(), sqlx::Error> {
    const SQL: &str =
        "UPDATE refund SET status = $1, payment_id = $2, subscriber_id = $3 WHERE id = $4";
    on_tx!(tx, |c| sqlx::query(SQL)
        .bind(status)
        .bind(payment)
        .bind(subscriber)
        .bind(refund)
        .execute(c)
        .await
        .map(|_| ()))
}

/// A refund the admins should see (waiting, partial or unmatched).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefundNoticeRow {
    /// Row id.
    pub id: i64,
    /// Provider.
    pub provider: Provider,
    /// Refund or reversal.
    pub kind: RefundKind,
    /// Amount.
    #[sqlx(flatten)]
    pub amount: Money,
    /// Where it stands.
    pub status: RefundStatus,
    /// The transaction it names.
    pub provider_txn_id: Option<String>,
    /// The payment object it names.
    pub payment_ref: Option<String>,
    /// The payment it returned, when found.
    pub payment_id: Option<PaymentId>,
    /// When it came.
    pub created_at: DateTime<Utc>,
}

/// Refunds an admin should look at: unmatched, partial and waiting ones, oldest first.
pub async fn find_refund_notices(tx: &mut Tx) -> Result<Vec<RefundNoticeRow>, sqlx::Error> {
    const SQL: &str = "SELECT id, provider, kind, amount_minor, currency, status, provider_txn_id, payment_ref, \
                       payment_id, created_at FROM refund WHERE status IN ('waiting', 'partial', 'unmatched') ORDER BY id";
    on_tx!(tx, |c| sqlx::query_as(SQL).fetch_all(c).await)
}

// ---- money of expired invoices ------------------------------------------------------------------

/// Money that came in for an invoice that expired unpaid in full.
#[derive(Debug, Clone)]
pub struct NewPartialPayment<'a> {
    /// Provider.
    pub provider: Provider,
    /// The provider's invoice.
    pub txn_id: &'a str,
    /// Our checkout reference.
    pub reference: Option<&'a str>,
    /// The subscriber the checkout was for, when ours.
    pub subscriber: Option<SubscriberId>,
    /// What came in, as the provider wrote it.
    pub paid: &'a str,
    /// In what (a crypto id).
    pub paid_currency: &'a str,
    /// Its worth in the invoice's currency, when known.
    pub worth: Option<Money>,
}

/// Records it; false when recorded before.
pub async fn insert_partial_payment(
    tx: &mut Tx,
    p: &NewPartialPayment<'_>,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "INSERT INTO partial_payment (provider, provider_txn_id, reference, subscriber_id, paid, \
                       paid_currency, amount_minor, currency, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                       ON CONFLICT (provider, provider_txn_id) DO NOTHING";
    let n = on_tx!(tx, |c| sqlx::query(SQL)
        .bind(p.provider)
        .bind(p.txn_id)
        .bind(p.reference)
        .bind(p.subscriber)
        .bind(p.paid)
        .bind(p.paid_currency)
        .bind(p.worth.map(Money::minor))
        .bind(p.worth.map(Money::currency))
        .bind(now)
        .execute(c)
        .await?
        .rows_affected());
    Ok(n == 1)
}

/// Money of an expired invoice, as the admins see it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PartialPaymentRow {
    /// Row id.
    pub id: i64,
    /// Provider.
    pub provider: Provider,
    /// The provider's invoice.
    pub provider_txn_id: String,
    /// The subscriber the checkout was for.
    pub subscriber_id: Option<SubscriberId>,
    /// What came in.
    pub paid: String,
    /// In what.
    pub paid_currency: String,
    /// Its worth in minor units of `currency`.
    pub amount_minor: Option<i64>,
    /// The invoice's currency.
    pub currency: Option<crate::domain::Currency>,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
}

impl PartialPaymentRow {
    /// Its worth in the invoice's currency, when known.
    pub fn worth(&self) -> Option<Money> {
        Some(Money::new(self.amount_minor?, self.currency?))
    }
}

/// Every partial payment of an expired invoice, oldest first.
pub async fn find_partial_payments(tx: &mut Tx) -> Result<Vec<PartialPaymentRow>, sqlx::Error> {
    const SQL: &str = "SELECT id, provider, provider_txn_id, subscriber_id, paid, paid_currency, amount_minor, \
                       currency, created_at FROM partial_payment ORDER BY id";
    on_tx!(tx, |c| sqlx::query_as(SQL).fetch_all(c).await)
}

// ---- plans as sold ------------------------------------------------------------------------------

/// What a checkout needs of a plan.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlanOffer {
    /// Name.
    pub name: String,
    /// Price per period.
    #[sqlx(flatten)]
    pub price: Money,
    /// Period.
    pub period: BillingPeriod,
    /// Offered.
    pub active: bool,
    /// Stripe price id.
    pub stripe_price_id: Option<String>,
    /// PayPal plan id.
    pub paypal_plan_id: Option<String>,
}

/// A plan as a checkout sees it.
pub async fn find_plan_offer(tx: &mut Tx, plan: PlanId) -> Result<Option<PlanOffer>, sqlx::Error> {
    const SQL: &str = "SELECT name, price_minor AS amount_minor, currency, period, active, stripe_price_id, \
                       paypal_plan_id FROM plan WHERE id = $1";
    on_tx!(tx, |c| sqlx::query_as(SQL)
        .bind(plan)
        .fetch_optional(c)
        .await)
}

/// Sets a plan's provider ids (`Some("")` clears one, `None` keeps it).
pub async fn update_plan_provider_ids(
    tx: &mut Tx,
    plan: PlanId,
    stripe_price_id: Option<&str>,
    paypal_plan_id: Option<&str>,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "UPDATE plan SET \
                       stripe_price_id = CASE WHEN $1 IS NULL THEN stripe_price_id WHEN $1 = '' THEN NULL ELSE $1 END, \
                       paypal_plan_id = CASE WHEN $2 IS NULL THEN paypal_plan_id WHEN $2 = '' THEN NULL ELSE $2 END \
                       WHERE id = $3";
    let n = on_tx!(tx, |c| sqlx::query(SQL)
        .bind(stripe_price_id)
        .bind(paypal_plan_id)
        .bind(plan)
        .execute(c)
        .await?
        .rows_affected());
    Ok(n == 1)
}

/// A plan with what selling it needs, for listings.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlanOfferRow {
    /// Row id.
    pub id: PlanId,
    /// The rest.
    #[sqlx(flatten)]
    pub offer: PlanOffer,
}

/// Every plan as a checkout sees it, by name.
pub async fn find_plan_offers(tx: &mut Tx) -> Result<Vec<PlanOfferRow>, sqlx::Error> {
    const SQL: &str = "SELECT id, name, price_minor AS amount_minor, currency, period, active, stripe_price_id, \
                       paypal_plan_id FROM plan ORDER BY name";
    on_tx!(tx, |c| sqlx::query_as(SQL).fetch_all(c).await)
}
