//! What the hourly lifecycle sweep reads and writes: who lapsed, whose access comes back, whose
//! share is deleted, who is reminded, whose Discord role changes.
//!
//! Terms (PRODUCT.md "Everyday lifecycle"), with `$1` = now:
//! - **active**: permanent, or now inside an applied paid interval;
//! - **paying**: has ever had a payment applied (a subscriber added by hand with no payment at all
//!   is left to the admins: the sweep never takes access it did not give);
//! - **lapsed**: paying, not permanent and not active.

use chrono::{DateTime, Utc};

use crate::domain::{OwnerAccountId, ShareId, SubscriberId};
use crate::sql;
use crate::store::Tx;

/// SQL: subscriber `s` is active at `$1`.
macro_rules! active {
    () => {
        "(s.permanent OR EXISTS (SELECT 1 FROM payment p WHERE p.subscriber_id = s.id \
         AND p.status = 'applied' AND p.paid_from <= $1 AND p.paid_to > $1))"
    };
}

/// SQL: subscriber `s` has paid at some time (the payment may have been refunded since).
macro_rules! paying {
    () => {
        "EXISTS (SELECT 1 FROM payment p WHERE p.subscriber_id = s.id \
         AND p.status IN ('applied', 'refunded'))"
    };
}

/// SQL: the end of subscriber `s`'s latest applied interval.
macro_rules! ended {
    () => {
        "(SELECT MAX(p.paid_to) FROM payment p WHERE p.subscriber_id = s.id AND p.status = 'applied')"
    };
}

/// SQL: the columns of [`ShareDue`] and the joins they need (`sh`, `s`, `pl`, `sv`).
macro_rules! share_due {
    () => {
        concat!(
            "SELECT sh.id, sh.subscriber_id, sv.owner_account_id, pl.name AS plan_name, ",
            ended!(),
            " AS ended_at, sh.suspended_at FROM share sh JOIN subscriber s ON s.id = sh.subscriber_id \
             LEFT JOIN plan pl ON pl.id = s.plan_id JOIN server sv ON sv.id = sh.server_id"
        )
    };
}

/// A share to act on, with what its job needs to be keyed and rate-limited.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ShareDue {
    /// Share id.
    pub id: ShareId,
    /// Its subscriber.
    pub subscriber_id: SubscriberId,
    /// The server's owner account (the rate-limit key of plex.tv calls).
    pub owner_account_id: OwnerAccountId,
    /// The subscriber's plan's name.
    pub plan_name: Option<String>,
    /// End of the subscriber's latest applied interval (none: the only payment was refunded).
    pub ended_at: Option<DateTime<Utc>>,
    /// When the share's library access was removed (restores and deletions).
    pub suspended_at: Option<DateTime<Utc>>,
}

/// Live shares with library access on an active owner's server whose subscriber lapsed.
pub async fn find_lapsed_shares(
    tx: &mut Tx,
    now: DateTime<Utc>,
) -> Result<Vec<ShareDue>, sqlx::Error> {
    const SQL: &str = concat!(
        share_due!(),
        " JOIN owner_account o ON o.id = sv.owner_account_id \
         WHERE sh.state <> 'removed' AND sh.suspended_at IS NULL AND o.state = 'active' AND ",
        paying!(),
        " AND NOT ",
        active!(),
        " ORDER BY sh.id"
    );
    sql!(tx, query_as(SQL), now => fetch_all)
}

/// Shares whose access was removed, of subscribers active again and not flagged (a flagged
/// subscriber gets a new share through the account change instead), on an active owner's server;
/// all of them, or `only` one subscriber's.
pub async fn find_restorable_shares(
    tx: &mut Tx,
    now: DateTime<Utc>,
    only: Option<SubscriberId>,
) -> Result<Vec<ShareDue>, sqlx::Error> {
    const SQL: &str = concat!(
        share_due!(),
        " JOIN owner_account o ON o.id = sv.owner_account_id \
         WHERE sh.state <> 'removed' AND sh.suspended_at IS NOT NULL AND o.state = 'active' \
         AND NOT s.requires_plex_change AND ($2 IS NULL OR s.id = $2) AND ",
        active!(),
        " ORDER BY sh.id"
    );
    sql!(tx, query_as(SQL), now, only => fetch_all)
}

/// Shares whose access was removed at or before `cutoff` and whose subscriber is still not
/// active: their place on the server is given up.
pub async fn find_suspensions_over(
    tx: &mut Tx,
    now: DateTime<Utc>,
    cutoff: DateTime<Utc>,
) -> Result<Vec<ShareDue>, sqlx::Error> {
    const SQL: &str = concat!(
        share_due!(),
        " \
         WHERE sh.state <> 'removed' AND sh.suspended_at IS NOT NULL AND sh.suspended_at <= $2 AND NOT ",
        active!(),
        " ORDER BY sh.id"
    );
    sql!(tx, query_as(SQL), now, cutoff => fetch_all)
}

/// A lapsed subscriber with something still to undo.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LapsedSubscriber {
    /// Subscriber id.
    pub id: SubscriberId,
    /// Usher last gave them the subscriber roles.
    pub role_granted: bool,
    /// Marked as waiting for a server with room.
    pub waiting: bool,
    /// End of the latest applied interval.
    pub ended_at: Option<DateTime<Utc>>,
}

/// Lapsed subscribers who still hold the roles or wait for room.
pub async fn find_lapsed_subscribers(
    tx: &mut Tx,
    now: DateTime<Utc>,
) -> Result<Vec<LapsedSubscriber>, sqlx::Error> {
    const SQL: &str = concat!(
        "SELECT s.id, s.role_granted, s.waiting_for_room_since IS NOT NULL AS waiting, ",
        ended!(),
        " AS ended_at FROM subscriber s \
         WHERE (s.role_granted OR s.waiting_for_room_since IS NOT NULL) AND ",
        paying!(),
        " AND NOT ",
        active!(),
        " ORDER BY s.id"
    );
    sql!(tx, query_as(SQL), now => fetch_all)
}

/// An active subscriber the roles were not given to yet.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RoleDue {
    /// Subscriber id.
    pub id: SubscriberId,
    /// End of the latest applied interval (none for a permanent subscriber who never paid).
    pub ended_at: Option<DateTime<Utc>>,
}

/// Active subscribers without the roles (e.g. active before the roles were configured).
pub async fn find_role_grants_due(
    tx: &mut Tx,
    now: DateTime<Utc>,
) -> Result<Vec<RoleDue>, sqlx::Error> {
    const SQL: &str = concat!(
        "SELECT s.id, ",
        ended!(),
        " AS ended_at FROM subscriber s WHERE NOT s.role_granted AND ",
        active!(),
        " ORDER BY s.id"
    );
    sql!(tx, query_as(SQL), now => fetch_all)
}

/// An active subscriber whose paid time ends within the reminder horizon.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Ending {
    /// Subscriber id.
    pub id: SubscriberId,
    /// End of the latest applied interval.
    pub ended_at: DateTime<Utc>,
    /// Their plan's name.
    pub plan_name: Option<String>,
    /// Where reminders are emailed: the contact email; for an unclaimed subscriber (no Discord
    /// to DM) without one, their Plex email.
    pub contact_email: Option<String>,
}

/// Subscribers whose paid time ends after now and at or before `horizon`, who are not permanent,
/// not flagged (they cannot renew before changing their Plex account, and are told so already),
/// and not renewing by themselves at a provider. A renewal moves the end past the horizon, so an
/// already renewed subscriber is not found.
pub async fn find_ending(
    tx: &mut Tx,
    now: DateTime<Utc>,
    horizon: DateTime<Utc>,
) -> Result<Vec<Ending>, sqlx::Error> {
    const SQL: &str = concat!(
        "SELECT s.id, e.ended_at, pl.name AS plan_name, \
         COALESCE(s.contact_email, CASE WHEN s.discord_id IS NULL THEN \
           (SELECT i.email_norm FROM plex_identity i WHERE i.subscriber_id = s.id AND i.state = 'active') \
         END) AS contact_email FROM subscriber s \
         JOIN (SELECT p.subscriber_id, MAX(p.paid_to) AS ended_at FROM payment p \
               WHERE p.status = 'applied' GROUP BY p.subscriber_id) e ON e.subscriber_id = s.id \
         LEFT JOIN plan pl ON pl.id = s.plan_id \
         WHERE e.ended_at > $1 AND e.ended_at <= $2 AND NOT s.permanent AND NOT s.requires_plex_change \
         AND NOT EXISTS (SELECT 1 FROM provider_subscription ps WHERE ps.subscriber_id = s.id AND ps.renewing) \
         AND ",
        active!(),
        " ORDER BY s.id"
    );
    sql!(tx, query_as(SQL), now, horizon => fetch_all)
}

/// Whether a subscriber is active now, and the end of their latest applied interval.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct Standing {
    /// Permanent or paid for now.
    pub active: bool,
    /// Paying (see the module docs).
    pub paying: bool,
    /// Renewing by themselves at a provider.
    pub renewing: bool,
    /// End of the latest applied interval.
    pub ended_at: Option<DateTime<Utc>>,
}

/// A subscriber's standing now; `None` for an unknown subscriber.
pub async fn find_standing(
    tx: &mut Tx,
    subscriber: SubscriberId,
    now: DateTime<Utc>,
) -> Result<Option<Standing>, sqlx::Error> {
    const SQL: &str = concat!(
        "SELECT ",
        active!(),
        " AS active, ",
        paying!(),
        " AS paying, EXISTS (SELECT 1 FROM provider_subscription ps WHERE ps.subscriber_id = s.id \
         AND ps.renewing) AS renewing, ",
        ended!(),
        " AS ended_at FROM subscriber s WHERE s.id = $2"
    );
    sql!(tx, query_as(SQL), now, subscriber => fetch_optional)
}

/// Records that the share's library access was removed on plex.tv (its plex.tv id is gone).
pub async fn update_share_suspended(
    tx: &mut Tx,
    share: ShareId,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "UPDATE share SET suspended_at = $1, plex_share_id = NULL, updated_at = $1 \
                       WHERE id = $2 AND state <> 'removed' AND suspended_at IS NULL";
    let n = sql!(tx, query(SQL), now, share => execute)?;
    Ok(n == 1)
}

/// Gives a suspended share its access back: pending again, to be invited anew.
pub async fn update_share_restored(
    tx: &mut Tx,
    share: ShareId,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "UPDATE share SET suspended_at = NULL, plex_share_id = NULL, state = 'pending', \
                       updated_at = $1 WHERE id = $2 AND state <> 'removed' AND suspended_at IS NOT NULL";
    let n = sql!(tx, query(SQL), now, share => execute)?;
    Ok(n == 1)
}

/// Records whether the subscriber roles are given.
pub async fn update_role_granted(
    tx: &mut Tx,
    subscriber: SubscriberId,
    granted: bool,
) -> Result<(), sqlx::Error> {
    const SQL: &str = "UPDATE subscriber SET role_granted = $1 WHERE id = $2";
    sql!(tx, query(SQL), granted, subscriber => execute).map(drop)
}
