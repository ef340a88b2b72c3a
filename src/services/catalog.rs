//! Read-only listings for the admins' commands and their autocomplete: owner accounts, servers,
//! plans.

use crate::app::App;
use crate::store::{owner_accounts, servers};

/// An owner account as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerAccountItem {
    /// Id.
    pub id: i64,
    /// Plex username.
    pub name: String,
    /// `active`, `banned` or `removed`.
    pub state: String,
    /// Has Plex Pass.
    pub plex_pass: bool,
}

/// A server as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerItem {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Owner account id.
    pub owner_account_id: i64,
    /// Owner account state.
    pub owner_state: String,
    /// Location label.
    pub location: Option<String>,
    /// Switched on.
    pub enabled: bool,
    /// Open to new subscribers.
    pub allow_new_subscriptions: bool,
    /// Live shares.
    pub users: i64,
    /// Capacity.
    pub max_users: i32,
}

/// A plan as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanItem {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Offered to new subscribers.
    pub active: bool,
}

/// Every owner account, without tokens.
pub async fn owner_accounts(app: &App) -> anyhow::Result<Vec<OwnerAccountItem>> {
    let mut tx = app.db.read().await?;
    let rows = owner_accounts::find_owner_accounts(&mut tx).await?;
    tx.rollback().await?;
    Ok(rows
        .into_iter()
        .map(|r| OwnerAccountItem {
            id: r.id,
            name: r.name,
            state: r.state,
            plex_pass: r.plex_pass,
        })
        .collect())
}

/// Every server.
pub async fn servers(app: &App) -> anyhow::Result<Vec<ServerItem>> {
    let mut tx = app.db.read().await?;
    let rows = servers::find_servers(&mut tx).await?;
    tx.rollback().await?;
    Ok(rows
        .into_iter()
        .map(|r| ServerItem {
            id: r.id,
            name: r.name,
            owner_account_id: r.owner_account_id,
            owner_state: r.owner_state,
            location: r.location,
            enabled: r.enabled,
            allow_new_subscriptions: r.allow_new_subscriptions,
            users: r.users,
            max_users: r.max_users,
        })
        .collect())
}

/// Every plan.
pub async fn plans(app: &App) -> anyhow::Result<Vec<PlanItem>> {
    let mut tx = app.db.read().await?;
    let rows = servers::find_plans(&mut tx).await?;
    tx.rollback().await?;
    Ok(rows
        .into_iter()
        .map(|r| PlanItem {
            id: r.id,
            name: r.name,
            active: r.active,
        })
        .collect())
}
