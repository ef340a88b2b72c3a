//! Owner Plex accounts. The Plex token is stored only encrypted (the caller passes the ciphertext
//! from [`crate::crypto::Cipher`]); this module never sees it in clear.

use chrono::{DateTime, Utc};

use crate::domain::{OwnerAccountId, OwnerAccountState};
use crate::sql;
use crate::store::Tx;

/// An owner account to add.
#[derive(Debug, Clone)]
pub struct NewOwnerAccount<'a> {
    /// Display name (the Plex username).
    pub name: &'a str,
    /// plex.tv user id.
    pub plex_user_id: Option<i64>,
    /// The token, encrypted at rest.
    pub token_enc: &'a str,
    /// Whether the account has Plex Pass.
    pub plex_pass: bool,
}

/// Stores an owner account.
pub async fn insert_owner_account(
    tx: &mut Tx,
    account: &NewOwnerAccount<'_>,
    now: DateTime<Utc>,
) -> Result<OwnerAccountId, sqlx::Error> {
    const SQL: &str = "INSERT INTO owner_account (name, plex_user_id, token_enc, plex_pass, state, created_at) \
                       VALUES ($1, $2, $3, $4, 'active', $5) RETURNING id";
    let id: i64 = sql!(tx, query_scalar(SQL), account.name, account.plex_user_id, account.token_enc, account.plex_pass, now => fetch_one)?;
    Ok(OwnerAccountId::new(id))
}

/// The encrypted token of an owner account.
pub async fn find_token_enc(
    tx: &mut Tx,
    id: OwnerAccountId,
) -> Result<Option<String>, sqlx::Error> {
    const SQL: &str = "SELECT token_enc FROM owner_account WHERE id = $1";
    sql!(tx, query_scalar(SQL), id => fetch_optional)
}

/// An owner account as stored (the token stays sealed).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OwnerAccountRow {
    /// Row id.
    pub id: OwnerAccountId,
    /// Plex username.
    pub name: String,
    /// plex.tv user id.
    pub plex_user_id: Option<i64>,
    /// The sealed token.
    pub token_enc: String,
    /// Plex Pass.
    pub plex_pass: bool,
    /// `active`, `banned` or `removed`.
    pub state: OwnerAccountState,
    /// When it was banned (kept when it is removed afterwards).
    pub banned_at: Option<DateTime<Utc>>,
}

/// One owner account.
pub async fn find_owner_account(
    tx: &mut Tx,
    id: OwnerAccountId,
) -> Result<Option<OwnerAccountRow>, sqlx::Error> {
    const SQL: &str = "SELECT id, name, plex_user_id, token_enc, plex_pass, state, banned_at FROM owner_account WHERE id = $1";
    sql!(tx, query_as(SQL), id => fetch_optional)
}

/// Every owner account, in id order.
pub async fn find_owner_accounts(tx: &mut Tx) -> Result<Vec<OwnerAccountRow>, sqlx::Error> {
    const SQL: &str = "SELECT id, name, plex_user_id, token_enc, plex_pass, state, banned_at FROM owner_account ORDER BY id";
    sql!(tx, query_as(SQL) => fetch_all)
}

/// Moves an active account to `banned` or `removed`, stamping when. False when it was not active
/// (or, for `removed`, already removed).
pub async fn update_owner_state(
    tx: &mut Tx,
    id: OwnerAccountId,
    state: crate::domain::OwnerAccountState,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    use crate::domain::OwnerAccountState as S;
    let sql = match state {
        S::Banned => {
            "UPDATE owner_account SET state = 'banned', banned_at = $1 WHERE id = $2 AND state = 'active'"
        }
        S::Removed => {
            "UPDATE owner_account SET state = 'removed', removed_at = $1 WHERE id = $2 AND state <> 'removed'"
        }
        S::Active => return Ok(false),
    };
    let n = sql!(tx, query(sql), now, id => execute)?;
    if n == 1 {
        // Its servers leave the live set: a re-claimed server's machine id can be added again.
        const RETIRE: &str =
            "UPDATE server SET retired_at = COALESCE(retired_at, $1) WHERE owner_account_id = $2";
        sql!(tx, query(RETIRE), now, id => execute)?;
    }
    Ok(n == 1)
}

/// Records that an account was banned (when it is removed because of a ban it was never marked
/// banned for), so the Plex accounts of its users retire as banned.
pub async fn update_owner_banned_at(
    tx: &mut Tx,
    id: OwnerAccountId,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    const SQL: &str = "UPDATE owner_account SET banned_at = COALESCE(banned_at, $1) WHERE id = $2";
    sql!(tx, query(SQL), now, id => execute).map(drop)
}

/// Replaces an account's sealed token (the owner's Plex token changed).
pub async fn update_owner_token(
    tx: &mut Tx,
    id: OwnerAccountId,
    token_enc: &str,
    plex_pass: bool,
) -> Result<(), sqlx::Error> {
    const SQL: &str = "UPDATE owner_account SET token_enc = $1, plex_pass = $2 WHERE id = $3";
    sql!(tx, query(SQL), token_enc, plex_pass, id => execute).map(drop)
}

/// Marks every live share on the account's servers removed (the account is gone, so there is
/// nothing to call on plex.tv); returns how many.
pub async fn update_shares_removed_for_owner(
    tx: &mut Tx,
    id: OwnerAccountId,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    const SQL: &str = "UPDATE share SET state = 'removed', removed_at = $1, updated_at = $1, unshared_at = $1 \
                       WHERE state <> 'removed' AND server_id IN (SELECT id FROM server WHERE owner_account_id = $2)";
    Ok(sql!(tx, query(SQL), now, id => execute)?)
}
