//! Proofs of a Plex account (an emailed code, or Plex sign-in) for an account change, a join or
//! a claim. At most one pending request per (purpose, subscriber) and per (purpose, member); the
//! code is stored only as a keyed hash, a sign-in only as the PIN's id.

use chrono::{DateTime, Utc};

use crate::domain::{
    DiscordId, PlexEmail, ProofId, ProofMethod, ProofPurpose, ProofState, SubscriberId,
};
use crate::sql;
use crate::store::Tx;

/// A request as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProofRow {
    /// Row id.
    pub id: ProofId,
    /// What it is for.
    pub purpose: ProofPurpose,
    /// The subscriber it concerns (change, claim).
    pub subscriber_id: Option<SubscriberId>,
    /// The member proving (join, claim).
    pub discord_id: Option<DiscordId>,
    /// Code or sign-in.
    pub method: ProofMethod,
    /// The account's email: where the code went, or what plex.tv named after sign-in.
    pub email_norm: Option<PlexEmail>,
    /// A contact email given with a join.
    pub contact_email: Option<String>,
    /// Hex of the code's keyed hash.
    pub code_hash: Option<String>,
    /// The Plex sign-in PIN.
    pub pin_id: Option<i64>,
    /// Its code (it travels in the sign-in link; not a credential by itself).
    pub pin_code: Option<String>,
    /// Wrong codes so far.
    pub failed_attempts: i32,
    /// When the code was last sent (or the sign-in started).
    pub last_sent_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// Its state.
    pub state: ProofState,
    /// Why it was refused (refused only).
    pub refusal: Option<String>,
    /// The name the member joins under (join and claim).
    pub member_name: Option<String>,
}

const COLUMNS: &str = "id, purpose, subscriber_id, discord_id, method, email_norm, contact_email, \
                       code_hash, pin_id, pin_code, failed_attempts, last_sent_at, expires_at, state, \
                       refusal, member_name";

/// The pending request of a subscriber for `purpose`, if any.
pub async fn find_pending(
    tx: &mut Tx,
    purpose: ProofPurpose,
    subscriber: SubscriberId,
) -> Result<Option<ProofRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM proof_request WHERE purpose = $1 AND subscriber_id = $2 AND state = 'pending'"
    );
    sql!(tx, query_as(&sql), purpose, subscriber => fetch_optional)
}

/// The pending request of a member for `purpose`, if any.
pub async fn find_pending_of_member(
    tx: &mut Tx,
    purpose: ProofPurpose,
    member: DiscordId,
) -> Result<Option<ProofRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM proof_request WHERE purpose = $1 AND discord_id = $2 AND state = 'pending'"
    );
    sql!(tx, query_as(&sql), purpose, member => fetch_optional)
}

/// One request.
pub async fn find_proof(tx: &mut Tx, id: ProofId) -> Result<Option<ProofRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM proof_request WHERE id = $1");
    sql!(tx, query_as(&sql), id => fetch_optional)
}

/// Ends a pending request. False when it was not pending any more.
pub async fn update_state(
    tx: &mut Tx,
    id: ProofId,
    state: ProofState,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "UPDATE proof_request SET state = $1, \
                       verified_at = CASE WHEN $1 = 'verified' THEN $2 ELSE verified_at END \
                       WHERE id = $3 AND state = 'pending'";
    Ok(sql!(tx, query(SQL), state, now, id => execute)? == 1)
}

/// Ends a pending request as refused, with the reason (for the admins). False when it was not
/// pending any more.
pub async fn update_refused(tx: &mut Tx, id: ProofId, refusal: &str) -> Result<bool, sqlx::Error> {
    const SQL: &str = "UPDATE proof_request SET state = 'refused', refusal = $1 WHERE id = $2 AND state = 'pending'";
    Ok(sql!(tx, query(SQL), refusal, id => execute)? == 1)
}

/// Records the account a sign-in named (its email, plex.tv id and username).
pub async fn update_signed_in(
    tx: &mut Tx,
    id: ProofId,
    email: &PlexEmail,
    plex_user_id: i64,
    username: Option<&str>,
) -> Result<(), sqlx::Error> {
    const SQL: &str = "UPDATE proof_request SET email_norm = $1, plex_user_id = $2, plex_username = $3 \
                       WHERE id = $4";
    sql!(tx, query(SQL), email, plex_user_id, username, id => execute).map(drop)
}

/// Counts one wrong code; returns the new count.
pub async fn update_failed_attempt(tx: &mut Tx, id: ProofId) -> Result<i32, sqlx::Error> {
    const SQL: &str = "UPDATE proof_request SET failed_attempts = failed_attempts + 1 WHERE id = $1 \
                       RETURNING failed_attempts";
    sql!(tx, query_scalar(SQL), id => fetch_one)
}

/// A new request to store.
#[derive(Debug, Clone)]
pub struct NewProof<'a> {
    /// What it is for.
    pub purpose: ProofPurpose,
    /// The subscriber it concerns (change, claim).
    pub subscriber: Option<SubscriberId>,
    /// The member proving (join, claim).
    pub member: Option<DiscordId>,
    /// Code or sign-in.
    pub method: ProofMethod,
    /// The address the code goes to (code only).
    pub email: Option<&'a PlexEmail>,
    /// A contact email given with a join.
    pub contact_email: Option<&'a str>,
    /// Hex of the code's keyed hash (code only).
    pub code_hash: Option<&'a str>,
    /// The sign-in PIN (sign-in only).
    pub pin_id: Option<i64>,
    /// The PIN's code, for the sign-in link.
    pub pin_code: Option<&'a str>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// Codes sent so far (1 for a first request).
    pub sends: i32,
    /// The name the member joins under (join and claim).
    pub member_name: Option<&'a str>,
}

/// Stores a pending request (the caller cancelled any earlier one in the same transaction).
/// Fails with a unique violation when another pending one of the same purpose exists.
pub async fn insert_proof(
    tx: &mut Tx,
    new: &NewProof<'_>,
    now: DateTime<Utc>,
) -> Result<ProofId, sqlx::Error> {
    const SQL: &str = "INSERT INTO proof_request (purpose, subscriber_id, discord_id, method, email_norm, \
                       contact_email, code_hash, pin_id, pin_code, failed_attempts, sends, last_sent_at, \
                       expires_at, state, created_at, member_name) \
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $11, $12, 'pending', $11, $13) RETURNING id";
    sql!(tx, query_scalar(SQL), new.purpose, new.subscriber, new.member, new.method, new.email,
        new.contact_email, new.code_hash, new.pin_id, new.pin_code, new.sends, now, new.expires_at,
        new.member_name => fetch_one)
}
