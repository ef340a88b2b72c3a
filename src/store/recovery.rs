//! The recovery board's reading: where each subscriber in a ban recovery stands.

use chrono::{DateTime, Utc};

use crate::domain::{DiscordId, NotificationState, ShareState, SubscriberId};
use crate::sql;
use crate::store::Tx;

/// One subscriber on the board.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BoardRow {
    /// Subscriber id.
    pub id: SubscriberId,
    /// Discord id.
    pub discord_id: DiscordId,
    /// Display name.
    pub display_name: String,
    /// Still flagged.
    pub flagged: bool,
    /// A code is waiting and has not expired.
    pub code_pending: bool,
    /// Has completed a change.
    pub verified: bool,
    /// State of the newest live share, if any.
    pub share_state: Option<ShareState>,
    /// State of the newest "must change" DM, if one was made.
    pub flag_dm_state: Option<NotificationState>,
}

/// Everyone in a recovery: flagged now, or changed their account through a verified request.
pub async fn find_board(tx: &mut Tx, now: DateTime<Utc>) -> Result<Vec<BoardRow>, sqlx::Error> {
    const SQL: &str = "SELECT s.id, s.discord_id, s.display_name, s.requires_plex_change AS flagged, \
        EXISTS (SELECT 1 FROM proof_request r WHERE r.purpose = 'change' AND r.subscriber_id = s.id AND r.state = 'pending' \
                AND r.expires_at > $1) AS code_pending, \
        EXISTS (SELECT 1 FROM proof_request r WHERE r.purpose = 'change' AND r.subscriber_id = s.id AND r.state = 'verified') AS verified, \
        (SELECT sh.state FROM share sh WHERE sh.subscriber_id = s.id AND sh.state <> 'removed' ORDER BY sh.id DESC LIMIT 1) \
            AS share_state, \
        (SELECT n.state FROM notification n WHERE n.subscriber_id = s.id AND n.kind = 'flagged' \
                AND n.channel = 'dm' ORDER BY n.id DESC LIMIT 1) AS flag_dm_state \
        FROM subscriber s \
        WHERE s.requires_plex_change \
           OR EXISTS (SELECT 1 FROM proof_request r WHERE r.purpose = 'change' AND r.subscriber_id = s.id AND r.state = 'verified') \
        ORDER BY s.id";
    sql!(tx, query_as(SQL), now => fetch_all)
}
