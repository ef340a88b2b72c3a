//! The user listing behind CSV exports and ban snapshots: one row per subscriber.

use chrono::{DateTime, Utc};

use crate::domain::{DiscordId, OwnerAccountId, PlexEmail, ShareState};
use crate::sql;
use crate::store::Tx;

/// One subscriber as exported.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    /// Discord id; `None` while unclaimed (imported).
    pub discord_id: Option<DiscordId>,
    /// Display name.
    pub display_name: String,
    /// Active Plex identity.
    pub plex_email: Option<PlexEmail>,
    /// Plan name.
    pub plan: Option<String>,
    /// Server of the latest live share.
    pub server: Option<String>,
    /// That share's state.
    pub share_state: Option<ShareState>,
    /// End of the latest paid interval.
    pub paid_until: Option<DateTime<Utc>>,
    /// Flagged for a Plex account change.
    pub requires_plex_change: bool,
    /// Never expires.
    pub permanent: bool,
}

/// Every subscriber, or only those with a live share on one owner account's servers.
pub async fn find_users(
    tx: &mut Tx,
    owner: Option<OwnerAccountId>,
) -> Result<Vec<UserRow>, sqlx::Error> {
    const SQL: &str = "SELECT s.discord_id, s.display_name, i.email_norm AS plex_email, p.name AS plan, \
        sv.name AS server, sh.state AS share_state, \
        (SELECT MAX(paid_to) FROM payment WHERE subscriber_id = s.id AND status = 'applied') AS paid_until, \
        s.requires_plex_change, s.permanent \
        FROM subscriber s \
        LEFT JOIN plex_identity i ON i.subscriber_id = s.id AND i.state = 'active' \
        LEFT JOIN plan p ON p.id = s.plan_id \
        LEFT JOIN share sh ON sh.id = (SELECT MAX(id) FROM share WHERE subscriber_id = s.id AND state <> 'removed') \
        LEFT JOIN server sv ON sv.id = sh.server_id \
        WHERE $1 IS NULL OR EXISTS (SELECT 1 FROM share x JOIN server y ON y.id = x.server_id \
            WHERE x.subscriber_id = s.id AND x.state <> 'removed' AND y.owner_account_id = $1) \
        ORDER BY s.id";
    sql!(tx, query_as(SQL), owner.map(OwnerAccountId::get) => fetch_all)
}
