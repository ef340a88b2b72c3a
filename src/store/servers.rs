//! Servers, their libraries, library groups and plans: the catalogue placement reads.

use chrono::{DateTime, Utc};

use crate::domain::{
    BillingPeriod, LibraryGroupId, LibraryId, OwnerAccountId, OwnerAccountState, PlanId, ServerId,
};
use crate::sql;
use crate::store::Tx;

/// A server to add.
#[derive(Debug, Clone)]
pub struct NewServer<'a> {
    /// Owner account it belongs to.
    pub owner: OwnerAccountId,
    /// Plex machine identifier.
    pub machine_id: &'a str,
    /// Display name.
    pub name: &'a str,
    /// Base URL of the Plex Media Server, when known.
    pub url: Option<&'a str>,
}

/// Adds a server (enabled, open to new subscriptions, 95 users).
pub async fn insert_server(
    tx: &mut Tx,
    server: &NewServer<'_>,
    now: DateTime<Utc>,
) -> Result<ServerId, sqlx::Error> {
    const SQL: &str = "INSERT INTO server (owner_account_id, machine_id, name, url, created_at) \
                       VALUES ($1, $2, $3, $4, $5) RETURNING id";
    sql!(tx, query_scalar(SQL), server.owner, server.machine_id, server.name, server.url, now => fetch_one)
}

/// A change to a server's switches; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ServerFlags {
    /// Whether the server is used at all.
    pub enabled: Option<bool>,
    /// Whether new subscribers may be placed on it.
    pub allow_new_subscriptions: Option<bool>,
    /// Whether trial plans may be placed on it.
    pub allow_trials: Option<bool>,
    /// Capacity in users.
    pub max_users: Option<i32>,
    /// Location shown to subscribers; `Some("")` clears it.
    pub location: Option<String>,
}

/// Applies a flag change. False when no such server exists.
pub async fn update_server_flags(
    tx: &mut Tx,
    id: ServerId,
    flags: &ServerFlags,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "UPDATE server SET enabled = COALESCE($1, enabled), \
                       allow_new_subscriptions = COALESCE($2, allow_new_subscriptions), \
                       allow_trials = COALESCE($3, allow_trials), max_users = COALESCE($4, max_users), \
                       location = CASE WHEN $5 IS NULL THEN location WHEN $5 = '' THEN NULL ELSE $5 END \
                       WHERE id = $6";
    let n = sql!(tx, query(SQL), flags.enabled, flags.allow_new_subscriptions, flags.allow_trials, flags.max_users, flags.location.as_deref(), id => execute)?;
    Ok(n == 1)
}

/// Takes a server out of use: disabled, closed, and out of the live set. False when there is no
/// such server or it was out already.
pub async fn update_server_retired(
    tx: &mut Tx,
    id: ServerId,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "UPDATE server SET retired_at = $1, enabled = FALSE, allow_new_subscriptions = FALSE \
                       WHERE id = $2 AND retired_at IS NULL";
    Ok(sql!(tx, query(SQL), now, id => execute)? == 1)
}

/// A server as stored, with its owner's state.
#[derive(Debug, Clone, sqlx::FromRow)]
#[allow(clippy::struct_excessive_bools)] // independent switches and facts, as stored
pub struct ServerRow {
    /// Row id.
    pub id: ServerId,
    /// Owner account.
    pub owner_account_id: OwnerAccountId,
    /// The owner account's state.
    pub owner_state: OwnerAccountState,
    /// The owner account was banned (also once removed afterwards).
    pub owner_banned: bool,
    /// No longer live: its account was banned or removed, or the admin removed it.
    pub retired: bool,
    /// Plex machine identifier.
    pub machine_id: String,
    /// Display name.
    pub name: String,
    /// Location.
    pub location: Option<String>,
    /// PMS base URL.
    pub url: Option<String>,
    /// Switched on.
    pub enabled: bool,
    /// Open to new subscribers.
    pub allow_new_subscriptions: bool,
    /// Open to trial plans.
    pub allow_trials: bool,
    /// Capacity.
    pub max_users: i32,
    /// Live shares (pending or accepted).
    pub users: i64,
}

const SERVER_SELECT: &str = "SELECT s.id, s.owner_account_id, o.state AS owner_state, \
     o.banned_at IS NOT NULL AS owner_banned, s.retired_at IS NOT NULL AS retired, s.machine_id, s.name, \
     s.location, s.url, s.enabled, s.allow_new_subscriptions, s.allow_trials, s.max_users, \
     (SELECT COUNT(*) FROM share sh WHERE sh.server_id = s.id AND sh.state <> 'removed') AS users \
     FROM server s JOIN owner_account o ON o.id = s.owner_account_id";

/// Every server, in id order.
pub async fn find_servers(tx: &mut Tx) -> Result<Vec<ServerRow>, sqlx::Error> {
    let sql = format!("{SERVER_SELECT} ORDER BY s.id");
    sql!(tx, query_as(&sql) => fetch_all)
}

/// One server.
pub async fn find_server(tx: &mut Tx, id: ServerId) -> Result<Option<ServerRow>, sqlx::Error> {
    let sql = format!("{SERVER_SELECT} WHERE s.id = $1");
    sql!(tx, query_as(&sql), id => fetch_optional)
}

/// A library as reported by plex.tv for a server.
#[derive(Debug, Clone)]
pub struct LibraryFromPlex<'a> {
    /// plex.tv global section id.
    pub section_id: i64,
    /// The server's local key.
    pub local_key: &'a str,
    /// Title.
    pub title: &'a str,
    /// `movie`, `show`, `artist`, `photo`.
    pub kind: &'a str,
}

/// Inserts or refreshes a library by its local key (keeping its group). True when it was new.
pub async fn upsert_library(
    tx: &mut Tx,
    server: ServerId,
    lib: &LibraryFromPlex<'_>,
) -> Result<bool, sqlx::Error> {
    const FIND: &str = "SELECT id FROM library WHERE server_id = $1 AND local_key = $2";
    const UPDATE: &str = "UPDATE library SET section_id = $1, title = $2, kind = $3 WHERE id = $4";
    const INSERT: &str = "INSERT INTO library (server_id, section_id, local_key, title, kind) VALUES ($1, $2, $3, $4, $5)";
    let existing: Option<i64> =
        sql!(tx, query_scalar(FIND), server, lib.local_key => fetch_optional)?;
    if let Some(id) = existing {
        sql!(tx, query(UPDATE), lib.section_id, lib.title, lib.kind, id => execute).map(drop)?;
        return Ok(false);
    }
    sql!(tx, query(INSERT), server, lib.section_id, lib.local_key, lib.title, lib.kind => execute)
        .map(drop)?;
    Ok(true)
}

/// Deletes the server's libraries whose local keys are not in `keep`; returns how many went.
pub async fn delete_libraries_except(
    tx: &mut Tx,
    server: ServerId,
    keep: &[String],
) -> Result<u64, sqlx::Error> {
    // Both backends take a JSON array and expand it, so one statement serves any number of keys.
    let keep = serde_json::to_string(keep).expect("strings serialise");
    let n = match tx {
        Tx::Sqlite(t) => sqlx::query(
            "DELETE FROM library WHERE server_id = $1 AND local_key NOT IN (SELECT value FROM json_each($2))",
        )
        .bind(server)
        .bind(keep)
        .execute(&mut **t)
        .await?
        .rows_affected(),
        Tx::Postgres(t) => sqlx::query(
            "DELETE FROM library WHERE server_id = $1 \
             AND local_key NOT IN (SELECT jsonb_array_elements_text($2::jsonb))",
        )
        .bind(server)
        .bind(keep)
        .execute(&mut **t)
        .await?
        .rows_affected(),
    };
    Ok(n)
}

/// A library as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LibraryRow {
    /// Row id.
    pub id: LibraryId,
    /// Server.
    pub server_id: ServerId,
    /// plex.tv global section id.
    pub section_id: i64,
    /// Local key.
    pub local_key: String,
    /// Title.
    pub title: String,
    /// Kind.
    pub kind: String,
    /// Group, if assigned.
    pub group_id: Option<LibraryGroupId>,
}

/// A server's libraries in local-key order.
pub async fn find_libraries(tx: &mut Tx, server: ServerId) -> Result<Vec<LibraryRow>, sqlx::Error> {
    const SQL: &str = "SELECT id, server_id, section_id, local_key, title, kind, group_id FROM library \
                       WHERE server_id = $1 ORDER BY local_key";
    sql!(tx, query_as(SQL), server => fetch_all)
}

/// Creates a library group.
pub async fn insert_group(
    tx: &mut Tx,
    name: &str,
    private: bool,
    now: DateTime<Utc>,
) -> Result<LibraryGroupId, sqlx::Error> {
    const SQL: &str =
        "INSERT INTO library_group (name, private, created_at) VALUES ($1, $2, $3) RETURNING id";
    sql!(tx, query_scalar(SQL), name, private, now => fetch_one)
}

/// Puts a library in a group (or none). False when no such library exists.
pub async fn update_library_group(
    tx: &mut Tx,
    library: LibraryId,
    group: Option<LibraryGroupId>,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "UPDATE library SET group_id = $1 WHERE id = $2";
    let n = sql!(tx, query(SQL), group, library => execute)?;
    Ok(n == 1)
}

/// A plan to create.
#[derive(Debug, Clone)]
pub struct NewPlan<'a> {
    /// Unique name.
    pub name: &'a str,
    /// Price in minor units.
    pub price_minor: i64,
    /// ISO currency.
    pub currency: &'a str,
    /// Billing period.
    pub period: BillingPeriod,
    /// Concurrent streams allowed.
    pub max_streams: i32,
    /// A trial plan.
    pub trial: bool,
    /// Library groups the plan gives access to.
    pub groups: &'a [LibraryGroupId],
}

/// Creates a plan with its groups.
pub async fn insert_plan(
    tx: &mut Tx,
    plan: &NewPlan<'_>,
    now: DateTime<Utc>,
) -> Result<PlanId, sqlx::Error> {
    const SQL: &str = "INSERT INTO plan (name, price_minor, currency, period, max_streams, trial, created_at) \
                       VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id";
    const GROUP: &str = "INSERT INTO plan_group (plan_id, group_id) VALUES ($1, $2)";
    let id: PlanId = sql!(tx, query_scalar(SQL), plan.name, plan.price_minor, plan.currency, plan.period, plan.max_streams, plan.trial, now => fetch_one)?;
    for group in plan.groups {
        sql!(tx, query(GROUP), id, group => execute).map(drop)?;
    }
    Ok(id)
}

/// The groups of a plan.
pub async fn find_plan_groups(
    tx: &mut Tx,
    plan: PlanId,
) -> Result<Vec<LibraryGroupId>, sqlx::Error> {
    const SQL: &str = "SELECT group_id FROM plan_group WHERE plan_id = $1 ORDER BY group_id";
    sql!(tx, query_scalar(SQL), plan => fetch_all)
}

/// The library groups each server carries: (server id, group id), shareable groups only.
pub async fn find_server_groups(
    tx: &mut Tx,
) -> Result<Vec<(ServerId, LibraryGroupId)>, sqlx::Error> {
    const SQL: &str = "SELECT DISTINCT l.server_id, l.group_id FROM library l \
                       JOIN library_group g ON g.id = l.group_id WHERE NOT g.private ORDER BY l.server_id, l.group_id";
    sql!(tx, query_as(SQL) => fetch_all)
}

/// Whether a plan is a trial plan.
pub async fn find_plan_trial(tx: &mut Tx, plan: PlanId) -> Result<Option<bool>, sqlx::Error> {
    const SQL: &str = "SELECT trial FROM plan WHERE id = $1";
    sql!(tx, query_scalar(SQL), plan => fetch_optional)
}

/// Context a reconcile needs: the server's machine id and its owner's state and sealed token.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ServerOwnerRow {
    /// Machine identifier.
    pub machine_id: String,
    /// Owner account id.
    pub owner_account_id: OwnerAccountId,
    /// Owner state.
    pub owner_state: OwnerAccountState,
    /// Owner's sealed token.
    pub token_enc: String,
}

/// A server with its owner's token.
pub async fn find_server_owner(
    tx: &mut Tx,
    server: ServerId,
) -> Result<Option<ServerOwnerRow>, sqlx::Error> {
    const SQL: &str = "SELECT s.machine_id, s.owner_account_id, o.state AS owner_state, o.token_enc \
                       FROM server s JOIN owner_account o ON o.id = s.owner_account_id WHERE s.id = $1";
    sql!(tx, query_as(SQL), server => fetch_optional)
}

/// Renames a group and/or changes whether it is private. False when no such group exists.
pub async fn update_group(
    tx: &mut Tx,
    id: LibraryGroupId,
    name: Option<&str>,
    private: Option<bool>,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "UPDATE library_group SET name = COALESCE($1, name), private = COALESCE($2, private) WHERE id = $3";
    let n = sql!(tx, query(SQL), name, private, id => execute)?;
    Ok(n == 1)
}

/// A change to a plan; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct PlanChange<'a> {
    /// New name.
    pub name: Option<&'a str>,
    /// New price (minor units, currency).
    pub price: Option<(i64, &'a str)>,
    /// New stream count.
    pub max_streams: Option<i32>,
    /// Trial or not.
    pub trial: Option<bool>,
    /// Offered to new subscribers or retired.
    pub active: Option<bool>,
}

/// Applies a plan change. False when no such plan exists.
pub async fn update_plan(
    tx: &mut Tx,
    id: PlanId,
    change: &PlanChange<'_>,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "UPDATE plan SET name = COALESCE($1, name), price_minor = COALESCE($2, price_minor), \
                       currency = COALESCE($3, currency), max_streams = COALESCE($4, max_streams), \
                       trial = COALESCE($5, trial), active = COALESCE($6, active) WHERE id = $7";
    let n = sql!(tx, query(SQL), change.name, change.price.map(|p| p.0), change.price.map(|p| p.1), change.max_streams, change.trial, change.active, id => execute)?;
    Ok(n == 1)
}

/// Replaces a plan's groups.
pub async fn replace_plan_groups(
    tx: &mut Tx,
    plan: PlanId,
    groups: &[LibraryGroupId],
) -> Result<(), sqlx::Error> {
    const CLEAR: &str = "DELETE FROM plan_group WHERE plan_id = $1";
    const ADD: &str = "INSERT INTO plan_group (plan_id, group_id) VALUES ($1, $2)";
    sql!(tx, query(CLEAR), plan => execute).map(drop)?;
    for group in groups {
        sql!(tx, query(ADD), plan, group => execute).map(drop)?;
    }
    Ok(())
}

/// A plan's currency.
pub async fn find_plan_currency(
    tx: &mut Tx,
    plan: PlanId,
) -> Result<Option<crate::domain::Currency>, sqlx::Error> {
    const SQL: &str = "SELECT currency FROM plan WHERE id = $1";
    sql!(tx, query_scalar(SQL), plan => fetch_optional)
}

/// A plan's name, price and period.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlanPrice {
    /// Name.
    pub name: String,
    /// Price of one period.
    #[sqlx(flatten)]
    pub price: crate::domain::Money,
    /// Its period.
    pub period: BillingPeriod,
}

/// A plan's name, price and period.
pub async fn find_plan_price(tx: &mut Tx, plan: PlanId) -> Result<Option<PlanPrice>, sqlx::Error> {
    const SQL: &str =
        "SELECT name, price_minor AS amount_minor, currency, period FROM plan WHERE id = $1";
    sql!(tx, query_as(SQL), plan => fetch_optional)
}

/// A plan's name.
pub async fn find_plan_name(tx: &mut Tx, plan: PlanId) -> Result<Option<String>, sqlx::Error> {
    const SQL: &str = "SELECT name FROM plan WHERE id = $1";
    sql!(tx, query_scalar(SQL), plan => fetch_optional)
}

/// A plan as listed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlanRow {
    /// Row id.
    pub id: PlanId,
    /// Name.
    pub name: String,
    /// Price in minor units.
    pub price_minor: i64,
    /// ISO currency.
    pub currency: String,
    /// Billing period.
    pub period: BillingPeriod,
    /// Offered.
    pub active: bool,
}

/// Every plan, by name.
pub async fn find_plans(tx: &mut Tx) -> Result<Vec<PlanRow>, sqlx::Error> {
    const SQL: &str =
        "SELECT id, name, price_minor, currency, period, active FROM plan ORDER BY name";
    sql!(tx, query_as(SQL) => fetch_all)
}

/// A library group as listed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GroupRow {
    /// Row id.
    pub id: LibraryGroupId,
    /// Name.
    pub name: String,
    /// Never shared.
    pub private: bool,
}

/// Every library group, by name.
pub async fn find_groups(tx: &mut Tx) -> Result<Vec<GroupRow>, sqlx::Error> {
    const SQL: &str = "SELECT id, name, private FROM library_group ORDER BY name";
    sql!(tx, query_as(SQL) => fetch_all)
}

/// A library with its server's name, for listings across servers.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LibraryListRow {
    /// Row id.
    pub id: LibraryId,
    /// Server name.
    pub server: String,
    /// Title.
    pub title: String,
    /// Group name, if grouped.
    pub group_name: Option<String>,
}

/// Every library of every server, by server and title.
pub async fn find_all_libraries(tx: &mut Tx) -> Result<Vec<LibraryListRow>, sqlx::Error> {
    const SQL: &str = "SELECT l.id, s.name AS server, l.title, g.name AS group_name FROM library l \
                       JOIN server s ON s.id = l.server_id LEFT JOIN library_group g ON g.id = l.group_id \
                       ORDER BY s.name, l.title";
    sql!(tx, query_as(SQL) => fetch_all)
}
