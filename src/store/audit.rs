//! The audit log: who did what to whom, written in the same transaction as the change.

use chrono::{DateTime, Utc};

use crate::domain::{Actor, SubscriberId};
use crate::sql;
use crate::store::Tx;

/// Appends one audit entry. `detail` is JSON and must hold no secret.
pub async fn insert_audit(
    tx: &mut Tx,
    actor: &Actor,
    subscriber: Option<SubscriberId>,
    action: &str,
    detail: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    const SQL: &str = "INSERT INTO audit_log (at, actor, subscriber_id, action, detail) VALUES ($1, $2, $3, $4, $5)";
    sql!(tx, query(SQL), now, actor.to_string(), subscriber.map(SubscriberId::get), action, detail.to_string() => execute).map(drop)
}
