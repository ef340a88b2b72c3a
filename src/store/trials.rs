//! Free trials: one grant per subscriber and per Plex identity, ever (migration 0008).

use chrono::{DateTime, Utc};

use crate::domain::{PlanId, PlexIdentityId, SubscriberId};
use crate::sql;
use crate::store::Tx;
use crate::store::subscribers::AccountKeys;

/// A subscriber's trial.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TrialRow {
    /// The identity it ran on.
    pub identity_id: PlexIdentityId,
    /// Its plan.
    pub plan_id: PlanId,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ends (or ended).
    pub ends_at: DateTime<Utc>,
    /// When a payment turned it into a paid subscription.
    pub converted_at: Option<DateTime<Utc>>,
}

/// Records a trial. Fails with a unique violation when the subscriber or the identity had one.
pub async fn insert_trial(
    tx: &mut Tx,
    subscriber: SubscriberId,
    identity: PlexIdentityId,
    plan: PlanId,
    span: (DateTime<Utc>, DateTime<Utc>),
) -> Result<(), sqlx::Error> {
    const SQL: &str = "INSERT INTO trial_grant (subscriber_id, identity_id, plan_id, started_at, ends_at) \
                       VALUES ($1, $2, $3, $4, $5)";
    sql!(tx, query(SQL), subscriber, identity, plan, span.0, span.1 => execute).map(drop)
}

/// The subscriber's trial, if they ever had one.
pub async fn find_trial(
    tx: &mut Tx,
    subscriber: SubscriberId,
) -> Result<Option<TrialRow>, sqlx::Error> {
    const SQL: &str = "SELECT identity_id, plan_id, started_at, ends_at, converted_at FROM trial_grant \
                       WHERE subscriber_id = $1";
    sql!(tx, query_as(SQL), subscriber => fetch_optional)
}

/// Whether any identity of this plex.tv account (by email, username or plex.tv id, retired and
/// banned ones included) had a trial.
pub async fn find_account_had_trial(
    tx: &mut Tx,
    account: &AccountKeys<'_>,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "SELECT COUNT(*) FROM trial_grant g JOIN plex_identity i ON i.id = g.identity_id \
                       WHERE i.email_norm IN ($1, $2) OR i.plex_username IN ($1, $2) OR i.plex_user_id = $3";
    let n: i64 = sql!(tx, query_scalar(SQL), account.email, account.username, account.plex_user_id => fetch_one)?;
    Ok(n > 0)
}

/// Trials running now (not ended, not converted).
pub async fn find_running_count(tx: &mut Tx, now: DateTime<Utc>) -> Result<i64, sqlx::Error> {
    const SQL: &str =
        "SELECT COUNT(*) FROM trial_grant WHERE ends_at > $1 AND converted_at IS NULL";
    sql!(tx, query_scalar(SQL), now => fetch_one)
}

/// Marks the subscriber's trial converted by a payment. False when there is none to convert.
pub async fn update_converted(
    tx: &mut Tx,
    subscriber: SubscriberId,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "UPDATE trial_grant SET converted_at = $1 WHERE subscriber_id = $2 AND converted_at IS NULL";
    Ok(sql!(tx, query(SQL), now, subscriber => execute)? == 1)
}

/// Ends a running trial now (its Plex account turned out to have had one).
pub async fn update_ended(
    tx: &mut Tx,
    subscriber: SubscriberId,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "UPDATE trial_grant SET ends_at = $1 WHERE subscriber_id = $2 AND ends_at > $1 \
                       AND converted_at IS NULL";
    Ok(sql!(tx, query(SQL), now, subscriber => execute)? == 1)
}
