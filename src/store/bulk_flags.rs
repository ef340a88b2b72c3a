//! Bulk flag previews: `INSERT … SELECT` of the matching subscribers, then one `UPDATE` of exactly
//! that set on confirm.

use chrono::{DateTime, Utc};

use crate::domain::{OwnerAccountId, PlanId, ServerId};
use crate::sql;
use crate::store::Tx;

/// Which subscribers a bulk flag targets (only those not flagged yet are taken).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "by", content = "id", rename_all = "snake_case")]
pub enum FlagFilter {
    /// Every subscriber.
    Everyone,
    /// Those with a live share on a server, or whose last share was there (removed or banned
    /// servers included).
    Server(ServerId),
    /// Those with a live share on any server of an owner account, or whose last share was on
    /// one (removed or banned accounts included).
    OwnerAccount(OwnerAccountId),
    /// Those on a plan.
    Plan(PlanId),
    /// Those whose subscription is (or is not) active now: permanent, or inside a paid interval.
    State(SubscriptionState),
}

/// Whether a subscription is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionState {
    /// Permanent, or now lies inside a paid interval.
    Active,
    /// Neither.
    Inactive,
}

/// The value a filter's condition binds as `$2`.
enum Param {
    None,
    Id(i64),
    Now,
}

const ACTIVE: &str = "(s.permanent OR EXISTS (SELECT 1 FROM payment p WHERE p.subscriber_id = s.id \
     AND p.status = 'applied' AND p.paid_from <= $2 AND p.paid_to > $2))";

impl FlagFilter {
    /// The condition on `s` (subscriber), with its bind value as `$2`.
    fn condition(self) -> (String, Param) {
        let (sql, param) = match self {
            Self::Everyone => ("$2 IS NULL", Param::None),
            Self::State(SubscriptionState::Active) => (ACTIVE, Param::Now),
            Self::State(SubscriptionState::Inactive) => {
                return (format!("NOT {ACTIVE}"), Param::Now);
            }
            // A live share there, or the last share they had was there: after the seed's step
            // 2 (the banned account removed) everyone's shares on it are removed, and the bulk
            // flag must still find them by it.
            Self::Server(id) => (
                "(EXISTS (SELECT 1 FROM share x WHERE x.subscriber_id = s.id AND x.state <> 'removed' AND x.server_id = $2) \
                 OR (SELECT x.server_id FROM share x WHERE x.subscriber_id = s.id ORDER BY x.id DESC LIMIT 1) = $2)",
                Param::Id(id.get()),
            ),
            Self::OwnerAccount(id) => (
                "(EXISTS (SELECT 1 FROM share x JOIN server y ON y.id = x.server_id \
                 WHERE x.subscriber_id = s.id AND x.state <> 'removed' AND y.owner_account_id = $2) \
                 OR (SELECT y.owner_account_id FROM share x JOIN server y ON y.id = x.server_id \
                 WHERE x.subscriber_id = s.id ORDER BY x.id DESC LIMIT 1) = $2)",
                Param::Id(id.get()),
            ),
            Self::Plan(id) => ("s.plan_id = $2", Param::Id(id.get())),
        };
        (sql.to_owned(), param)
    }
}

/// Records a preview and its members; returns (preview id, member count).
pub async fn insert_preview(
    tx: &mut Tx,
    filter: FlagFilter,
    actor: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(i64, i64), sqlx::Error> {
    const PREVIEW: &str = "INSERT INTO bulk_flag_preview (actor, filter, members, created_at, expires_at) \
                           VALUES ($1, $2, 0, $3, $4) RETURNING id";
    const COUNT: &str = "UPDATE bulk_flag_preview SET members = \
                         (SELECT COUNT(*) FROM bulk_flag_member WHERE preview_id = $1) WHERE id = $1 RETURNING members";
    let filter_json = serde_json::to_string(&filter).expect("filters serialise");
    let id: i64 =
        sql!(tx, query_scalar(PREVIEW), actor, &filter_json, now, expires_at => fetch_one)?;
    let (condition, param) = filter.condition();
    let members = format!(
        "INSERT INTO bulk_flag_member (preview_id, subscriber_id) \
         SELECT $1, s.id FROM subscriber s WHERE NOT s.requires_plex_change AND ({condition})"
    );
    match param {
        Param::None => sql!(tx, query(&members), id, None::<i64> => execute).map(drop)?,
        Param::Id(value) => sql!(tx, query(&members), id, value => execute).map(drop)?,
        Param::Now => sql!(tx, query(&members), id, now => execute).map(drop)?,
    }
    let count: i32 = sql!(tx, query_scalar(COUNT), id => fetch_one)?;
    Ok((id, i64::from(count)))
}

/// The first `limit` names of a preview, in subscriber order.
pub async fn find_preview_names(
    tx: &mut Tx,
    preview: i64,
    limit: i64,
) -> Result<Vec<String>, sqlx::Error> {
    const SQL: &str = "SELECT s.display_name FROM bulk_flag_member m JOIN subscriber s ON s.id = m.subscriber_id \
                       WHERE m.preview_id = $1 ORDER BY s.id LIMIT $2";
    sql!(tx, query_scalar(SQL), preview, limit => fetch_all)
}

/// Marks a preview confirmed, once. Returns false when it was confirmed already or has expired.
pub async fn update_preview_confirmed(
    tx: &mut Tx,
    preview: i64,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "UPDATE bulk_flag_preview SET confirmed_at = $1 \
                       WHERE id = $2 AND confirmed_at IS NULL AND expires_at > $1";
    let n = sql!(tx, query(SQL), now, preview => execute)?;
    Ok(n == 1)
}

/// Flags exactly the preview's members (those not flagged meanwhile) in one statement.
pub async fn update_flag_members(
    tx: &mut Tx,
    preview: i64,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    const SQL: &str = "UPDATE subscriber SET requires_plex_change = TRUE, flagged_at = $1, updated_at = $1 \
                       WHERE NOT requires_plex_change AND id IN (SELECT subscriber_id FROM bulk_flag_member WHERE preview_id = $2)";
    Ok(sql!(tx, query(SQL), now, preview => execute)?)
}
