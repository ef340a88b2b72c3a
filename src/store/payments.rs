//! Payments, webhook events, checkouts and provider subscriptions.
//!
//! Rules it keeps: a webhook event is recorded once per (provider, event id) and a payment once per
//! (provider, transaction id), both by unique keys, so a replay inserts nothing; paid intervals are
//! computed under a lock on the subscriber row (PostgreSQL `FOR UPDATE`; SQLite writers are already
//! serialised by `BEGIN IMMEDIATE`), so two payments never extend from the same end.

use chrono::{DateTime, Utc};

use crate::domain::{PaymentId, PlanId, SubscriberId};
use crate::on_tx;
use crate::store::Tx;

/// Records a webhook delivery; false when this event was recorded before (a replay).
pub async fn insert_webhook_event(
    tx: &mut Tx,
    provider: &str,
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

/// Records a checkout link made for (subscriber, plan).
pub async fn insert_checkout(
    tx: &mut Tx,
    reference: &str,
    subscriber: SubscriberId,
    plan: PlanId,
    provider: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    const SQL: &str = "INSERT INTO checkout (reference, subscriber_id, plan_id, provider, created_at) VALUES ($1, $2, $3, $4, $5)";
    on_tx!(tx, |c| sqlx::query(SQL)
        .bind(reference)
        .bind(subscriber.get())
        .bind(plan.get())
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

/// Who and what a match found: (subscriber id, plan id).
pub type Target = (i64, i64);

/// The (subscriber, plan) of our checkout reference.
pub async fn find_checkout(tx: &mut Tx, reference: &str) -> Result<Option<Target>, sqlx::Error> {
    const SQL: &str = "SELECT subscriber_id, plan_id FROM checkout WHERE reference = $1";
    on_tx!(tx, |c| sqlx::query_as(SQL)
        .bind(reference)
        .fetch_optional(c)
        .await)
}

/// The (subscriber, plan) a provider subscription is linked to.
pub async fn find_provider_subscription(
    tx: &mut Tx,
    provider: &str,
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
    pub provider: &'a str,
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
        .bind(link.target.0)
        .bind(link.target.1)
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
    provider: &str,
    subscription: &str,
    status: &str,
    renewing: bool,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "UPDATE provider_subscription SET status = $1, renewing = $2, updated_at = $3 \
                       WHERE provider = $4 AND provider_subscription_id = $5";
    let n = on_tx!(tx, |c| sqlx::query(SQL)
        .bind(status)
        .bind(renewing)
        .bind(now)
        .bind(provider)
        .bind(subscription)
        .execute(c)
        .await?
        .rows_affected());
    Ok(n == 1)
}

/// The subscriber whose contact email or active Plex email is `email` (normalised), with their
/// plan; `None` when nobody or several match.
pub async fn find_by_payer_email(
    tx: &mut Tx,
    email: &str,
) -> Result<Option<(i64, Option<i64>)>, sqlx::Error> {
    const SQL: &str = "SELECT DISTINCT s.id, s.plan_id FROM subscriber s \
                       LEFT JOIN plex_identity i ON i.subscriber_id = s.id AND i.state = 'active' \
                       WHERE lower(s.contact_email) = $1 OR i.email_norm = $1 LIMIT 2";
    let rows: Vec<(i64, Option<i64>)> = on_tx!(tx, |c| sqlx::query_as(SQL)
        .bind(email.trim().to_lowercase())
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
            .bind(subscriber.get())
            .fetch_optional(&mut **t)
            .await
            .map(|_| ()),
    }
}

/// Serialises, until the transaction ends, the work of every event naming this provider
/// subscription (PostgreSQL transaction advisory lock; SQLite's write transactions already exclude
/// each other). Without it, under READ COMMITTED, a payment and the activation of its subscription
/// committing at once each miss the other's row and the payment stays unmatched for good.
pub async fn lock_provider_subscription(
    tx: &mut Tx,
    provider: &str,
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

/// The end of the subscriber's latest applied paid interval.
pub async fn find_paid_until(
    tx: &mut Tx,
    subscriber: SubscriberId,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    const SQL: &str =
        "SELECT MAX(paid_to) FROM payment WHERE subscriber_id = $1 AND status = 'applied'";
    on_tx!(tx, |c| sqlx::query_scalar(SQL)
        .bind(subscriber.get())
        .fetch_one(c)
        .await)
}

/// A payment as it arrives.
#[derive(Debug, Clone)]
pub struct NewPayment<'a> {
    /// Provider.
    pub provider: &'a str,
    /// The provider's transaction id (invoice, sale, txn).
    pub txn_id: &'a str,
    /// Amount in minor units.
    pub amount_minor: i64,
    /// ISO currency.
    pub currency: &'a str,
    /// Payer's email as the provider gave it.
    pub payer_email: Option<&'a str>,
    /// Provider subscription it renews.
    pub provider_subscription: Option<&'a str>,
    /// Provider customer.
    pub customer: Option<&'a str>,
    /// Our checkout reference, when it carried one.
    pub reference: Option<&'a str>,
}

/// Records a payment as unmatched; `None` when this transaction was recorded before.
pub async fn insert_payment(
    tx: &mut Tx,
    p: &NewPayment<'_>,
    now: DateTime<Utc>,
) -> Result<Option<i64>, sqlx::Error> {
    const SQL: &str = "INSERT INTO payment (provider, provider_txn_id, amount_minor, currency, payer_email, \
                       provider_subscription_id, customer_id, reference, status, created_at) \
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'unmatched', $9) \
                       ON CONFLICT (provider, provider_txn_id) DO NOTHING RETURNING id";
    on_tx!(tx, |c| sqlx::query_scalar(SQL)
        .bind(p.provider)
        .bind(p.txn_id)
        .bind(p.amount_minor)
        .bind(p.currency)
        .bind(p.payer_email)
        .bind(p.provider_subscription)
        .bind(p.customer)
        .bind(p.reference)
        .bind(now)
        .fetch_optional(c)
        .await)
}

/// Applies an unmatched payment: its subscriber, plan and paid interval. Returns its amount,
/// currency and provider; `None` when it was not unmatched (applied meanwhile: nothing changed).
pub async fn update_payment_applied(
    tx: &mut Tx,
    payment: i64,
    target: Target,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Option<(i64, String, String)>, sqlx::Error> {
    const SQL: &str = "UPDATE payment SET subscriber_id = $1, plan_id = $2, paid_from = $3, paid_to = $4, \
                       status = 'applied' WHERE id = $5 AND status = 'unmatched' \
                       RETURNING amount_minor, currency, provider";
    on_tx!(tx, |c| sqlx::query_as(SQL)
        .bind(target.0)
        .bind(target.1)
        .bind(from)
        .bind(to)
        .bind(payment)
        .fetch_optional(c)
        .await)
}

/// Unmatched payments that name a provider subscription, oldest first.
pub async fn find_unmatched_of_subscription(
    tx: &mut Tx,
    provider: &str,
    subscription: &str,
) -> Result<Vec<i64>, sqlx::Error> {
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
    pub id: i64,
    /// Provider.
    pub provider: String,
    /// Provider's transaction id.
    pub provider_txn_id: String,
    /// Amount.
    pub amount_minor: i64,
    /// Currency.
    pub currency: String,
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

/// Marks the newest applied payment of a provider transaction or customer refunded; returns its
/// subscriber.
pub async fn update_refunded(
    tx: &mut Tx,
    provider: &str,
    txn_id: Option<&str>,
    customer: Option<&str>,
) -> Result<Option<i64>, sqlx::Error> {
    const SQL: &str = "UPDATE payment SET status = 'refunded' WHERE id = (SELECT id FROM payment \
                       WHERE provider = $1 AND status = 'applied' \
                       AND (provider_txn_id = $2 OR ($2 IS NULL AND customer_id = $3)) \
                       ORDER BY id DESC LIMIT 1) RETURNING subscriber_id";
    let id: Option<Option<i64>> = on_tx!(tx, |c| sqlx::query_scalar(SQL)
        .bind(provider)
        .bind(txn_id)
        .bind(customer)
        .fetch_optional(c)
        .await?);
    Ok(id.flatten())
}

/// What a checkout needs of a plan: (name, price, currency, period, active, Stripe price, PayPal plan).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlanOffer {
    /// Name.
    pub name: String,
    /// Price in minor units.
    pub price_minor: i64,
    /// Currency.
    pub currency: String,
    /// Period.
    pub period: String,
    /// Offered.
    pub active: bool,
    /// Stripe price id.
    pub stripe_price_id: Option<String>,
    /// PayPal plan id.
    pub paypal_plan_id: Option<String>,
}

/// A plan as a checkout sees it.
pub async fn find_plan_offer(tx: &mut Tx, plan: PlanId) -> Result<Option<PlanOffer>, sqlx::Error> {
    const SQL: &str = "SELECT name, price_minor, currency, period, active, stripe_price_id, paypal_plan_id \
                       FROM plan WHERE id = $1";
    on_tx!(tx, |c| sqlx::query_as(SQL)
        .bind(plan.get())
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
        .bind(plan.get())
        .execute(c)
        .await?
        .rows_affected());
    Ok(n == 1)
}

/// A plan with what selling it needs, for listings.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlanOfferRow {
    /// Row id.
    pub id: i64,
    /// The rest.
    #[sqlx(flatten)]
    pub offer: PlanOffer,
}

/// Every plan as a checkout sees it, by name.
pub async fn find_plan_offers(tx: &mut Tx) -> Result<Vec<PlanOfferRow>, sqlx::Error> {
    const SQL: &str = "SELECT id, name, price_minor, currency, period, active, stripe_price_id, paypal_plan_id \
                       FROM plan ORDER BY name";
    on_tx!(tx, |c| sqlx::query_as(SQL).fetch_all(c).await)
}

/// One payment as an admin assigning it sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PaymentRow {
    /// Row id.
    pub id: i64,
    /// Provider.
    pub provider: String,
    /// Provider's transaction id.
    pub provider_txn_id: String,
    /// Amount.
    pub amount_minor: i64,
    /// Currency.
    pub currency: String,
    /// `unmatched`, `applied` or `refunded`.
    pub status: String,
    /// Paid interval start, once applied.
    pub paid_from: Option<DateTime<Utc>>,
    /// Paid interval end, once applied.
    pub paid_to: Option<DateTime<Utc>>,
}

/// One payment, its row locked for the rest of the transaction (PostgreSQL `FOR UPDATE`; SQLite
/// write transactions already exclude each other), so its status cannot change under the caller.
pub async fn find_payment_locked(
    tx: &mut Tx,
    payment: PaymentId,
) -> Result<Option<PaymentRow>, sqlx::Error> {
    const SQL: &str = "SELECT id, provider, provider_txn_id, amount_minor, currency, status, paid_from, paid_to \
                       FROM payment WHERE id = $1";
    const SQL_PG: &str = "SELECT id, provider, provider_txn_id, amount_minor, currency, status, paid_from, paid_to \
                          FROM payment WHERE id = $1 FOR UPDATE";
    match tx {
        Tx::Sqlite(t) => {
            sqlx::query_as(SQL)
                .bind(payment.get())
                .fetch_optional(&mut **t)
                .await
        }
        Tx::Postgres(t) => {
            sqlx::query_as(SQL_PG)
                .bind(payment.get())
                .fetch_optional(&mut **t)
                .await
        }
    }
}
