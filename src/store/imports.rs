//! Imports: the previewed work of an import and its run, and the plex.tv seat counts of owner
//! accounts an import or a reconcile reads.
//!
//! Rule it keeps (the schema too): at most one import runs at a time; a preview is confirmed at
//! most once, before it expires.

use chrono::{DateTime, Utc};

use crate::domain::{
    OwnerAccountId, PlexEmail, PlexIdentityId, ServerId, ShareId, ShareState, SubscriberId,
};
use crate::sql;
use crate::store::Tx;

/// Records a previewed import; returns its id.
pub async fn insert_import_run(
    tx: &mut Tx,
    source: &str,
    actor: &str,
    plan: &str,
    people: i32,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    const SQL: &str = "INSERT INTO import_run (source, actor, plan, people, state, created_at, expires_at) \
                       VALUES ($1, $2, $3, $4, 'previewed', $5, $6) RETURNING id";
    sql!(tx, query_scalar(SQL), source, actor, plan, people, now, expires_at => fetch_one)
}

/// Fails runs left `running` since before `before` (their process died): they hold no lock then.
pub async fn update_stale_runs_failed(
    tx: &mut Tx,
    before: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    const SQL: &str = "UPDATE import_run SET state = 'failed', finished_at = $1 \
                       WHERE state = 'running' AND started_at < $2";
    sql!(tx, query(SQL), now, before => execute)
}

/// Starts a previewed run: false when it was started already or has expired. A unique violation
/// when another import is running.
pub async fn update_run_started(
    tx: &mut Tx,
    run: i64,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "UPDATE import_run SET state = 'running', started_at = $1 \
                       WHERE id = $2 AND state = 'previewed' AND expires_at > $1";
    Ok(sql!(tx, query(SQL), now, run => execute)? == 1)
}

/// The previewed work of a run.
pub async fn find_run_plan(tx: &mut Tx, run: i64) -> Result<Option<String>, sqlx::Error> {
    const SQL: &str = "SELECT plan FROM import_run WHERE id = $1";
    sql!(tx, query_scalar(SQL), run => fetch_optional)
}

/// Ends a running run as `done` (with how many it added) or `failed`.
pub async fn update_run_finished(
    tx: &mut Tx,
    run: i64,
    done: bool,
    added: i32,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    const SQL: &str = "UPDATE import_run SET state = CASE WHEN $1 THEN 'done' ELSE 'failed' END, \
                       finished_at = $2, added = $3 WHERE id = $4 AND state = 'running'";
    sql!(tx, query(SQL), done, now, added, run => execute).map(drop)
}

/// Records a share found on plex.tv (an import): its plex.tv id, state and the section ids it had.
#[allow(clippy::too_many_arguments)]
pub async fn insert_imported_share(
    tx: &mut Tx,
    subscriber: SubscriberId,
    server: ServerId,
    identity: PlexIdentityId,
    plex_share_id: Option<i64>,
    state: ShareState,
    libraries: &str,
    now: DateTime<Utc>,
) -> Result<ShareId, sqlx::Error> {
    const SQL: &str = "INSERT INTO share (subscriber_id, server_id, plex_identity_id, plex_share_id, state, \
                       imported_libraries, created_at, updated_at, invited_at) \
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $7) RETURNING id";
    sql!(tx, query_scalar(SQL), subscriber, server, identity, plex_share_id, state, libraries, now => fetch_one)
}

/// Stores what plex.tv says about an owner account's seats: those not Usher's shares.
pub async fn update_owner_seats(
    tx: &mut Tx,
    owner: OwnerAccountId,
    seats_outside: i32,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    const SQL: &str =
        "UPDATE owner_account SET seats_outside = $1, seats_checked_at = $2 WHERE id = $3";
    sql!(tx, query(SQL), seats_outside, now, owner => execute).map(drop)
}

/// Seats on an owner account as Usher counts them.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct SeatRow {
    /// The account.
    pub id: OwnerAccountId,
    /// Seats that are not Usher's shares (NULL until plex.tv was read).
    pub seats_outside: Option<i32>,
    /// Subscribers Usher shares the account's servers with (live shares, pending included).
    pub usher_people: i64,
    /// When plex.tv was last read.
    pub seats_checked_at: Option<DateTime<Utc>>,
}

/// Every owner account's seats.
pub async fn find_seats(tx: &mut Tx) -> Result<Vec<SeatRow>, sqlx::Error> {
    const SQL: &str = "SELECT o.id, o.seats_outside, o.seats_checked_at, \
                       (SELECT COUNT(DISTINCT sh.subscriber_id) FROM share sh JOIN server s ON s.id = sh.server_id \
                        WHERE s.owner_account_id = o.id AND sh.state <> 'removed') AS usher_people \
                       FROM owner_account o ORDER BY o.id";
    sql!(tx, query_as(SQL) => fetch_all)
}

/// A person Usher shares one of an owner account's servers with.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SeatedPerson {
    /// The identity's plex.tv id, when known.
    pub plex_user_id: Option<i64>,
    /// Its email (or username).
    pub email_norm: PlexEmail,
    /// Its username, when known.
    pub plex_username: Option<String>,
}

/// The identities Usher shares an owner account's servers with (live shares).
pub async fn find_seated_people(
    tx: &mut Tx,
    owner: OwnerAccountId,
) -> Result<Vec<SeatedPerson>, sqlx::Error> {
    const SQL: &str = "SELECT DISTINCT i.plex_user_id, i.email_norm, i.plex_username FROM share sh \
                       JOIN server s ON s.id = sh.server_id JOIN plex_identity i ON i.id = sh.plex_identity_id \
                       WHERE s.owner_account_id = $1 AND sh.state <> 'removed'";
    sql!(tx, query_as(SQL), owner => fetch_all)
}
