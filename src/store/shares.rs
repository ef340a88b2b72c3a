//! Shares: a subscriber's access to one server through one Plex identity.

use chrono::{DateTime, Utc};

use crate::domain::{PlexIdentityId, ServerId, ShareId, ShareState, SubscriberId};
use crate::on_tx;
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
    let id: i64 = on_tx!(tx, |c| {
        sqlx::query_scalar(SQL)
            .bind(subscriber.get())
            .bind(server.get())
            .bind(identity.get())
            .bind(state.as_str())
            .bind(now)
            .fetch_one(c)
            .await?
    });
    Ok(ShareId::new(id))
}

/// A share's state.
pub async fn find_share_state(tx: &mut Tx, id: ShareId) -> Result<Option<String>, sqlx::Error> {
    const SQL: &str = "SELECT state FROM share WHERE id = $1";
    on_tx!(tx, |c| sqlx::query_scalar(SQL)
        .bind(id.get())
        .fetch_optional(c)
        .await)
}
