//! Runtime settings the admins change from Discord (as opposed to the configuration file):
//! a key/value table. Typed access lives in `services::settings`.

use chrono::{DateTime, Utc};

use crate::sql;
use crate::store::Tx;

/// Reads one setting.
pub async fn find_setting(tx: &mut Tx, key: &str) -> Result<Option<String>, sqlx::Error> {
    const SQL: &str = "SELECT value FROM setting WHERE key = $1";
    sql!(tx, query_scalar(SQL), key => fetch_optional)
}

/// Writes one setting (insert or replace).
pub async fn upsert_setting(
    tx: &mut Tx,
    key: &str,
    value: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    const SQL: &str = "INSERT INTO setting (key, value, updated_at) VALUES ($1, $2, $3) \
                       ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at";
    sql!(tx, query(SQL), key, value, now => execute).map(drop)
}

/// Writes one setting only if it is not set yet; returns the value in force.
pub async fn insert_setting_once(
    tx: &mut Tx,
    key: &str,
    value: &str,
    now: DateTime<Utc>,
) -> Result<String, sqlx::Error> {
    const SQL: &str = "INSERT INTO setting (key, value, updated_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING";
    sql!(tx, query(SQL), key, value, now => execute).map(drop)?;
    Ok(find_setting(tx, key)
        .await?
        .unwrap_or_else(|| value.to_string()))
}
