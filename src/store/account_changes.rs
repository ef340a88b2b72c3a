//! Plex account change requests: one pending request per subscriber, the code stored only as a
//! keyed hash.

use chrono::{DateTime, Utc};

use crate::domain::{ChangeRequestId, ChangeRequestState, PlexEmail, SubscriberId};
use crate::sql;
use crate::store::Tx;

/// A pending request.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChangeRequestRow {
    /// Row id.
    pub id: ChangeRequestId,
    /// The new email, normalised.
    pub new_email_norm: PlexEmail,
    /// Hex of the code's keyed hash.
    pub code_hash: String,
    /// Wrong codes so far.
    pub failed_attempts: i32,
    /// When the code was last sent.
    pub last_sent_at: DateTime<Utc>,
    /// When the code stops working.
    pub expires_at: DateTime<Utc>,
}

/// The subscriber's pending request, if any.
pub async fn find_pending(
    tx: &mut Tx,
    subscriber: SubscriberId,
) -> Result<Option<ChangeRequestRow>, sqlx::Error> {
    const SQL: &str = "SELECT id, new_email_norm, code_hash, failed_attempts, last_sent_at, expires_at \
                       FROM account_change_request WHERE subscriber_id = $1 AND state = 'pending'";
    sql!(tx, query_as(SQL), subscriber => fetch_optional)
}

/// Ends a pending request (`cancelled`, `expired`, `locked` or `verified`).
pub async fn update_state(
    tx: &mut Tx,
    id: ChangeRequestId,
    state: ChangeRequestState,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    const SQL: &str = "UPDATE account_change_request SET state = $1, \
                       verified_at = CASE WHEN $1 = 'verified' THEN $2 ELSE verified_at END \
                       WHERE id = $3 AND state = 'pending'";
    sql!(tx, query(SQL), state, now, id => execute).map(drop)
}

/// Counts one wrong code; returns the new count.
pub async fn update_failed_attempt(tx: &mut Tx, id: ChangeRequestId) -> Result<i32, sqlx::Error> {
    const SQL: &str = "UPDATE account_change_request SET failed_attempts = failed_attempts + 1 WHERE id = $1 \
                       RETURNING failed_attempts";
    sql!(tx, query_scalar(SQL), id => fetch_one)
}

/// A new request to store.
#[derive(Debug, Clone)]
pub struct NewChangeRequest<'a> {
    /// Who asks.
    pub subscriber: SubscriberId,
    /// The new email.
    pub email: &'a PlexEmail,
    /// Hex of the code's keyed hash.
    pub code_hash: &'a str,
    /// When the code stops working.
    pub expires_at: DateTime<Utc>,
    /// Sends so far (1 for a first request).
    pub sends: i32,
}

/// Stores a pending request (the caller cancelled any earlier one in the same transaction).
pub async fn insert_request(
    tx: &mut Tx,
    request: &NewChangeRequest<'_>,
    now: DateTime<Utc>,
) -> Result<ChangeRequestId, sqlx::Error> {
    const SQL: &str = "INSERT INTO account_change_request (subscriber_id, new_email_norm, code_hash, failed_attempts, \
                       sends, last_sent_at, expires_at, state, created_at) \
                       VALUES ($1, $2, $3, 0, $4, $5, $6, 'pending', $5) RETURNING id";
    let id: i64 = sql!(tx, query_scalar(SQL), request.subscriber, request.email, request.code_hash, request.sends, now, request.expires_at => fetch_one)?;
    Ok(ChangeRequestId::new(id))
}
