//! My Account sign-in links and browser sessions.
//!
//! Rule it keeps: a link row is consumed by one conditional UPDATE, so two requests racing with
//! the same link cannot both sign in; sessions are found only while neither ended nor expired.

use chrono::{DateTime, Utc};

use crate::domain::SubscriberId;
use crate::sql;
use crate::store::Tx;

/// Records an issued sign-in link.
pub async fn insert_login_link(
    tx: &mut Tx,
    nonce: &str,
    subscriber: SubscriberId,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    const SQL: &str = "INSERT INTO web_login_link (nonce, subscriber_id, created_at, expires_at) VALUES ($1, $2, $3, $4)";
    sql!(tx, query(SQL), nonce, subscriber, now, expires_at => execute).map(drop)
}

/// Marks a link used; true only for the one call that found it unused, unexpired and issued to
/// `subscriber`.
pub async fn update_login_link_used(
    tx: &mut Tx,
    nonce: &str,
    subscriber: SubscriberId,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "UPDATE web_login_link SET used_at = $1 \
                       WHERE nonce = $2 AND subscriber_id = $3 AND used_at IS NULL AND expires_at > $1";
    let n = sql!(tx, query(SQL), now, nonce, subscriber => execute)?;
    Ok(n == 1)
}

/// Records a session by the digest of its cookie secret.
pub async fn insert_session(
    tx: &mut Tx,
    id_digest: &str,
    subscriber: SubscriberId,
    csrf_token: &str,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    const SQL: &str = "INSERT INTO web_session (id_digest, subscriber_id, csrf_token, created_at, expires_at) \
                       VALUES ($1, $2, $3, $4, $5)";
    sql!(tx, query(SQL), id_digest, subscriber, csrf_token, now, expires_at => execute).map(drop)
}

/// A live session.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    /// Whose it is.
    pub subscriber_id: SubscriberId,
    /// The token every form of this session must carry.
    pub csrf_token: String,
}

/// The live session with this digest.
pub async fn find_session(
    tx: &mut Tx,
    id_digest: &str,
    now: DateTime<Utc>,
) -> Result<Option<SessionRow>, sqlx::Error> {
    const SQL: &str = "SELECT subscriber_id, csrf_token FROM web_session \
                       WHERE id_digest = $1 AND ended_at IS NULL AND expires_at > $2";
    sql!(tx, query_as(SQL), id_digest, now => fetch_optional)
}

/// Ends a session (sign-out).
pub async fn update_session_ended(
    tx: &mut Tx,
    id_digest: &str,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    const SQL: &str =
        "UPDATE web_session SET ended_at = $1 WHERE id_digest = $2 AND ended_at IS NULL";
    let n = sql!(tx, query(SQL), now, id_digest => execute)?;
    Ok(n == 1)
}
