//! Notifications: one row per message to a person or to the admins, with how its delivery went.

use chrono::{DateTime, Utc};

use crate::domain::{
    DiscordId, NotificationChannel, NotificationKind, NotificationState, SubscriberId,
};
use crate::sql;
use crate::store::Tx;

/// A notification to create.
#[derive(Debug, Clone)]
pub struct NewNotification<'a> {
    /// Who it is for; `None` for an admin alert.
    pub subscriber: Option<SubscriberId>,
    /// What it says (a template under `templates/dms/` or `templates/emails/`).
    pub kind: NotificationKind,
    /// Where it goes.
    pub channel: NotificationChannel,
    /// For email: the address.
    pub email_to: Option<&'a str>,
    /// Template context (never a secret).
    pub detail: &'a serde_json::Value,
    /// One notification per logical event and channel.
    pub dedupe_key: &'a str,
}

/// Records a notification; `None` when one with the same key exists (nothing new to send).
pub async fn insert_notification(
    tx: &mut Tx,
    new: &NewNotification<'_>,
    now: DateTime<Utc>,
) -> Result<Option<i64>, sqlx::Error> {
    const SQL: &str = "INSERT INTO notification (subscriber_id, kind, channel, email_to, detail, dedupe_key, created_at) \
                       VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (dedupe_key) DO NOTHING RETURNING id";
    let detail = new.detail.to_string();
    sql!(tx, query_scalar(SQL), new.subscriber, new.kind, new.channel, new.email_to, &detail, new.dedupe_key, now => fetch_optional)
}

/// A notification with what delivering it needs to know about its subscriber.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NotificationRow {
    /// Row id.
    pub id: i64,
    /// Subscriber, if any.
    pub subscriber_id: Option<SubscriberId>,
    /// Kind.
    pub kind: NotificationKind,
    /// Channel.
    pub channel: NotificationChannel,
    /// Email address for the email channel.
    pub email_to: Option<String>,
    /// Template context, JSON.
    pub detail: String,
    /// Queued until delivered or given up.
    pub state: NotificationState,
    /// The subscriber's Discord user.
    pub discord_id: Option<DiscordId>,
    /// The subscriber's name.
    pub display_name: Option<String>,
    /// The subscriber is flagged now.
    pub flagged: Option<bool>,
}

/// One notification.
pub async fn find_notification(
    tx: &mut Tx,
    id: i64,
) -> Result<Option<NotificationRow>, sqlx::Error> {
    const SQL: &str = "SELECT n.id, n.subscriber_id, n.kind, n.channel, n.email_to, n.detail, n.state, \
                       s.discord_id, s.display_name, s.requires_plex_change AS flagged \
                       FROM notification n LEFT JOIN subscriber s ON s.id = n.subscriber_id WHERE n.id = $1";
    sql!(tx, query_as(SQL), id => fetch_optional)
}

/// Records how a queued notification ended. False when it had ended already.
pub async fn update_finished(
    tx: &mut Tx,
    id: i64,
    state: NotificationState,
    delivered_via: Option<&str>,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "UPDATE notification SET state = $1, delivered_via = $2, error = $3, finished_at = $4 \
                       WHERE id = $5 AND state = 'queued'";
    let n = sql!(tx, query(SQL), state, delivered_via, error, now, id => execute)?;
    Ok(n == 1)
}

/// A flagged member of a confirmed bulk flag.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FlaggedMemberRow {
    /// Subscriber id.
    pub subscriber_id: SubscriberId,
    /// When the flag was set (names the flagging episode).
    pub flagged_at: DateTime<Utc>,
}

/// The next `limit` members of a confirmed bulk-flag preview after `after` (by subscriber id)
/// that this confirm flagged (their flag time is the confirm's) and are still flagged.
pub async fn find_flagged_members(
    tx: &mut Tx,
    preview: i64,
    after: SubscriberId,
    limit: i64,
) -> Result<Vec<FlaggedMemberRow>, sqlx::Error> {
    const SQL: &str = "SELECT s.id AS subscriber_id, s.flagged_at FROM bulk_flag_member m \
                       JOIN bulk_flag_preview p ON p.id = m.preview_id \
                       JOIN subscriber s ON s.id = m.subscriber_id \
                       WHERE m.preview_id = $1 AND m.subscriber_id > $2 AND s.requires_plex_change \
                       AND s.flagged_at = p.confirmed_at \
                       ORDER BY m.subscriber_id LIMIT $3";
    sql!(tx, query_as(SQL), preview, after, limit => fetch_all)
}
