//! Owner Plex accounts. The Plex token is stored only encrypted (the caller passes the ciphertext
//! from [`crate::crypto::Cipher`]); this module never sees it in clear.

use chrono::{DateTime, Utc};

use crate::domain::OwnerAccountId;
use crate::on_tx;
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
    let id: i64 = on_tx!(tx, |c| {
        sqlx::query_scalar(SQL)
            .bind(account.name)
            .bind(account.plex_user_id)
            .bind(account.token_enc)
            .bind(account.plex_pass)
            .bind(now)
            .fetch_one(c)
            .await?
    });
    Ok(OwnerAccountId::new(id))
}

/// The encrypted token of an owner account.
pub async fn find_token_enc(
    tx: &mut Tx,
    id: OwnerAccountId,
) -> Result<Option<String>, sqlx::Error> {
    const SQL: &str = "SELECT token_enc FROM owner_account WHERE id = $1";
    on_tx!(tx, |c| sqlx::query_scalar(SQL)
        .bind(id.get())
        .fetch_optional(c)
        .await)
}
