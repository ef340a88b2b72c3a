//! Shares: a subscriber's access to one server through one Plex identity.

use chrono::{DateTime, Utc};

use crate::domain::{
    IdentityState, OwnerAccountId, OwnerAccountState, PlanId, PlexEmail, PlexIdentityId, ServerId,
    ShareId, ShareState, SubscriberId,
};
use crate::sql;
use crate::store::Tx;

/// Records a share (before the invite job sends it, it is `pending` with no plex.tv id).
pub async fn insert_share(
    tx: &mut Tx,
    subscriber: SubscriberId,
    server: ServerId,
    identity: PlexIdentityId,
    state: ShareState,
    now: DateTime<Utc>,
) -> Result<ShareId, sqlx::Error> {
    const SQL: &str = "INSERT INTO share (subscriber_id, server_id, plex_identity_id, state, created_at, updated_at) \
                       VALUES ($1, $2, $3, $4, $5, $5) RETURNING id";
    sql!(tx, query_scalar(SQL), subscriber, server, identity, state, now => fetch_one)
}

/// A share's state.
pub async fn find_share_state(tx: &mut Tx, id: ShareId) -> Result<Option<ShareState>, sqlx::Error> {
    const SQL: &str = "SELECT state FROM share WHERE id = $1";
    sql!(tx, query_scalar(SQL), id => fetch_optional)
}

/// Everything a share job needs, read in one query.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ShareContext {
    /// Share id.
    pub id: ShareId,
    /// Its state.
    pub state: ShareState,
    /// plex.tv's shared-server id, once invited.
    pub plex_share_id: Option<i64>,
    /// When its library access was removed because the paid time ended (none: it has access).
    pub suspended_at: Option<DateTime<Utc>>,
    /// Subscriber.
    pub subscriber_id: SubscriberId,
    /// Their plan, if any.
    pub plan_id: Option<PlanId>,
    /// Server.
    pub server_id: ServerId,
    /// Its machine identifier.
    pub machine_id: String,
    /// Owner account of the server.
    pub owner_account_id: OwnerAccountId,
    /// Its state.
    pub owner_state: OwnerAccountState,
    /// Owner's sealed token.
    pub token_enc: String,
    /// The identity the share is for.
    pub identity_id: PlexIdentityId,
    /// Its normalised email or username.
    pub email_norm: PlexEmail,
    /// Its state (a share of a retired identity is never invited).
    pub identity_state: IdentityState,
    /// The subscriber must change Plex account (never invited meanwhile).
    pub requires_plex_change: bool,
    /// plex.tv no longer holds the share.
    pub unshared_at: Option<DateTime<Utc>>,
}

/// Loads a share with its server, owner and identity.
pub async fn find_share_context(
    tx: &mut Tx,
    id: ShareId,
) -> Result<Option<ShareContext>, sqlx::Error> {
    const SQL: &str = "SELECT sh.id, sh.state, sh.plex_share_id, sh.suspended_at, sh.subscriber_id, sub.plan_id, sh.server_id, \
                       s.machine_id, s.owner_account_id, o.state AS owner_state, o.token_enc, \
                       i.id AS identity_id, i.email_norm, i.state AS identity_state, sub.requires_plex_change, \
                       sh.unshared_at \
                       FROM share sh JOIN server s ON s.id = sh.server_id \
                       JOIN owner_account o ON o.id = s.owner_account_id \
                       JOIN plex_identity i ON i.id = sh.plex_identity_id \
                       JOIN subscriber sub ON sub.id = sh.subscriber_id WHERE sh.id = $1";
    sql!(tx, query_as(SQL), id => fetch_optional)
}

/// plex.tv-global section ids of the libraries on `server` that `plan` gives access to (private
/// groups never shared).
pub async fn find_plan_sections(
    tx: &mut Tx,
    server: ServerId,
    plan: PlanId,
) -> Result<Vec<i64>, sqlx::Error> {
    const SQL: &str = "SELECT l.section_id FROM library l JOIN plan_group pg ON pg.group_id = l.group_id \
                       JOIN library_group g ON g.id = l.group_id \
                       WHERE l.server_id = $1 AND pg.plan_id = $2 AND NOT g.private ORDER BY l.section_id";
    sql!(tx, query_scalar(SQL), server, plan => fetch_all)
}

/// Records plex.tv's answer to an invite.
pub async fn update_share_invited(
    tx: &mut Tx,
    id: ShareId,
    plex_share_id: i64,
    state: ShareState,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    // A share removed meanwhile keeps its state: the plex.tv id is still worth knowing, so the
    // share can be deleted there.
    const SQL: &str = "UPDATE share SET plex_share_id = $1, \
                       state = CASE WHEN state = 'removed' THEN state ELSE $2 END, updated_at = $3, \
                       invited_at = COALESCE(invited_at, $3) WHERE id = $4";
    sql!(tx, query(SQL), plex_share_id, state, now, id => execute).map(drop)
}

/// Records that plex.tv no longer holds the share (deleted there, or never sent).
pub async fn update_share_unshared(
    tx: &mut Tx,
    id: ShareId,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    const SQL: &str = "UPDATE share SET unshared_at = COALESCE(unshared_at, $1) WHERE id = $2";
    sql!(tx, query(SQL), now, id => execute).map(drop)
}

/// A share Usher no longer counts that plex.tv may still hold: removed here, not yet deleted
/// there.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Leftover {
    /// Share id.
    pub id: ShareId,
    /// plex.tv's id, when it was invited.
    pub plex_share_id: Option<i64>,
    /// The identity it was for.
    pub email_norm: PlexEmail,
}

/// The subscriber's removed shares on `server` that plex.tv may still hold (the old account's
/// share after an account change), oldest first.
pub async fn find_leftovers(
    tx: &mut Tx,
    subscriber: SubscriberId,
    server: ServerId,
) -> Result<Vec<Leftover>, sqlx::Error> {
    const SQL: &str = "SELECT sh.id, sh.plex_share_id, i.email_norm FROM share sh \
                       JOIN plex_identity i ON i.id = sh.plex_identity_id \
                       WHERE sh.subscriber_id = $1 AND sh.server_id = $2 AND sh.state = 'removed' \
                       AND sh.unshared_at IS NULL ORDER BY sh.id";
    sql!(tx, query_as(SQL), subscriber, server => fetch_all)
}

/// Moves a not-yet-sent share to another server (its first server was full).
pub async fn update_share_server(
    tx: &mut Tx,
    id: ShareId,
    server: ServerId,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "UPDATE share SET server_id = $1, updated_at = $2 WHERE id = $3 AND plex_share_id IS NULL AND state = 'pending'";
    let n = sql!(tx, query(SQL), server, now, id => execute)?;
    Ok(n == 1)
}

/// Marks a share removed.
pub async fn update_share_removed(
    tx: &mut Tx,
    id: ShareId,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    const SQL: &str = "UPDATE share SET state = 'removed', removed_at = $1, updated_at = $1 WHERE id = $2 AND state <> 'removed'";
    sql!(tx, query(SQL), now, id => execute).map(drop)
}

/// A live share on a server, for reconciling with plex.tv.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LiveShare {
    /// Share id.
    pub id: ShareId,
    /// plex.tv's id, once invited.
    pub plex_share_id: Option<i64>,
    /// `pending` or `accepted`.
    pub state: ShareState,
    /// Its library access was removed when the paid time ended (plex.tv holds nothing).
    pub suspended: bool,
    /// The identity it is for.
    pub identity_id: PlexIdentityId,
    /// Its email or username.
    pub email_norm: PlexEmail,
    /// Its plex.tv id, when known.
    pub plex_user_id: Option<i64>,
    /// Its plex.tv username, when known.
    pub plex_username: Option<String>,
}

/// Live shares (pending or accepted) on a server, with their identities.
pub async fn find_live_shares_on_server(
    tx: &mut Tx,
    server: ServerId,
) -> Result<Vec<LiveShare>, sqlx::Error> {
    const SQL: &str = "SELECT sh.id, sh.plex_share_id, sh.state, sh.suspended_at IS NOT NULL AS suspended, \
                       i.id AS identity_id, i.email_norm, i.plex_user_id, i.plex_username FROM share sh \
                       JOIN plex_identity i ON i.id = sh.plex_identity_id \
                       WHERE sh.server_id = $1 AND sh.state <> 'removed' ORDER BY sh.id";
    sql!(tx, query_as(SQL), server => fetch_all)
}

/// plex.tv ids of every share on a server that plex.tv may still hold: live ones, and removed
/// ones whose deletion there is still to come.
pub async fn find_held_plex_ids(tx: &mut Tx, server: ServerId) -> Result<Vec<i64>, sqlx::Error> {
    const SQL: &str = "SELECT plex_share_id FROM share WHERE server_id = $1 \
                       AND plex_share_id IS NOT NULL AND unshared_at IS NULL";
    sql!(tx, query_scalar(SQL), server => fetch_all)
}

/// Marks a pending share accepted (the subscriber accepted the invite on plex.tv).
pub async fn update_share_accepted(
    tx: &mut Tx,
    id: ShareId,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    const SQL: &str =
        "UPDATE share SET state = 'accepted', updated_at = $1 WHERE id = $2 AND state = 'pending'";
    sql!(tx, query(SQL), now, id => execute).map(drop)
}

/// Invited live shares of the subscribers on a plan, with their server's owner account:
/// (share id, owner account id).
pub async fn find_invited_shares_on_plan(
    tx: &mut Tx,
    plan: PlanId,
) -> Result<Vec<(ShareId, OwnerAccountId)>, sqlx::Error> {
    const SQL: &str = "SELECT sh.id, s.owner_account_id FROM share sh JOIN subscriber sub ON sub.id = sh.subscriber_id \
                       JOIN server s ON s.id = sh.server_id \
                       WHERE sub.plan_id = $1 AND sh.state <> 'removed' AND sh.plex_share_id IS NOT NULL ORDER BY sh.id";
    sql!(tx, query_as(SQL), plan => fetch_all)
}

/// A subscriber's live share, with what removing it needs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SubscriberShare {
    /// Share id.
    pub id: ShareId,
    /// Server.
    pub server_id: ServerId,
    /// Owner account of the server.
    pub owner_account_id: OwnerAccountId,
    /// Its state.
    pub owner_state: OwnerAccountState,
    /// Its library access was removed because the paid time ended.
    pub suspended: bool,
}

/// A subscriber's live shares.
pub async fn find_live_shares_of(
    tx: &mut Tx,
    subscriber: SubscriberId,
) -> Result<Vec<SubscriberShare>, sqlx::Error> {
    const SQL: &str = "SELECT sh.id, sh.server_id, s.owner_account_id, o.state AS owner_state, \
                       sh.suspended_at IS NOT NULL AS suspended FROM share sh \
                       JOIN server s ON s.id = sh.server_id JOIN owner_account o ON o.id = s.owner_account_id \
                       WHERE sh.subscriber_id = $1 AND sh.state <> 'removed' ORDER BY sh.id";
    sql!(tx, query_as(SQL), subscriber => fetch_all)
}

/// The live share (other than `except`) that holds plex.tv share `plex_share_id`, if any.
pub async fn find_live_holder_of(
    tx: &mut Tx,
    plex_share_id: i64,
    except: ShareId,
) -> Result<Option<ShareId>, sqlx::Error> {
    const SQL: &str = "SELECT id FROM share WHERE plex_share_id = $1 AND id <> $2 \
                       AND state <> 'removed' ORDER BY id LIMIT 1";
    sql!(tx, query_scalar(SQL), plex_share_id, except => fetch_optional)
}

/// Servers the subscriber had shares on, most recent first (for placement's "used before").
pub async fn find_previous_servers(
    tx: &mut Tx,
    subscriber: SubscriberId,
) -> Result<Vec<ServerId>, sqlx::Error> {
    const SQL: &str = "SELECT server_id FROM share WHERE subscriber_id = $1 GROUP BY server_id ORDER BY MAX(id) DESC";
    sql!(tx, query_scalar(SQL), subscriber => fetch_all)
}

/// Whether the identity's most recent share was on a banned owner account's server.
pub async fn find_last_owner_banned(
    tx: &mut Tx,
    identity: PlexIdentityId,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "SELECT o.banned_at IS NOT NULL FROM share sh JOIN server s ON s.id = sh.server_id \
                       JOIN owner_account o ON o.id = s.owner_account_id \
                       WHERE sh.plex_identity_id = $1 ORDER BY sh.id DESC LIMIT 1";
    let banned: Option<bool> = sql!(tx, query_scalar(SQL), identity => fetch_optional)?;
    Ok(banned == Some(true))
}

/// Marks `old` as replaced by `new`: it keeps its access until `new` is accepted on plex.tv.
pub async fn update_share_replaced_by(
    tx: &mut Tx,
    old: ShareId,
    new: ShareId,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    const SQL: &str = "UPDATE share SET replaced_by = $1, updated_at = $2 WHERE id = $3";
    sql!(tx, query(SQL), new, now, old => execute).map(drop)
}

/// Live shares replaced by `new`, with their owner accounts.
pub async fn find_replaced_by(
    tx: &mut Tx,
    new: ShareId,
) -> Result<Vec<SubscriberShare>, sqlx::Error> {
    const SQL: &str = "SELECT sh.id, sh.server_id, s.owner_account_id, o.state AS owner_state, \
                       sh.suspended_at IS NOT NULL AS suspended FROM share sh \
                       JOIN server s ON s.id = sh.server_id JOIN owner_account o ON o.id = s.owner_account_id \
                       WHERE sh.replaced_by = $1 AND sh.state <> 'removed' ORDER BY sh.id";
    sql!(tx, query_as(SQL), new => fetch_all)
}
