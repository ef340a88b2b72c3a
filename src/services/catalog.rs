//! Read-only listings for the admins' commands and their autocomplete: owner accounts, servers,
//! plans, library groups and libraries.

use crate::app::App;
use crate::domain::{
    LibraryGroupId, LibraryId, OwnerAccountId, OwnerAccountState, PlanId, ServerId,
};
use crate::store::{imports, owner_accounts, servers};

/// An owner account as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerAccountItem {
    /// Id.
    pub id: OwnerAccountId,
    /// Plex username.
    pub name: String,
    /// Its state.
    pub state: OwnerAccountState,
    /// It was banned by Plex (also once removed afterwards).
    pub banned: bool,
    /// Has Plex Pass.
    pub plex_pass: bool,
    /// Seats used on plex.tv (owner, Home, friends, shares and pending invites).
    pub seats_used: i64,
    /// Seats plex.tv allows the account (`plex.seats_per_account`).
    pub seat_ceiling: u32,
}

impl OwnerAccountItem {
    /// How lists show its state: `active`, `banned`, `removed` or `removed, banned`.
    pub fn state_label(&self) -> String {
        match (self.state, self.banned) {
            (OwnerAccountState::Removed, true) => "removed, banned".to_owned(),
            (state, _) => state.as_str().to_owned(),
        }
    }
}

/// A server as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerItem {
    /// Id.
    pub id: ServerId,
    /// Name.
    pub name: String,
    /// Owner account id.
    pub owner_account_id: OwnerAccountId,
    /// Owner account state.
    pub owner_state: OwnerAccountState,
    /// The owner account was banned (also once removed afterwards).
    pub owner_banned: bool,
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
    /// Seats used on plex.tv by its owner account.
    pub account_seats_used: i64,
    /// Seats plex.tv allows the owner account.
    pub seat_ceiling: u32,
}

/// A plan as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanItem {
    /// Id.
    pub id: PlanId,
    /// Name.
    pub name: String,
    /// Offered to new subscribers.
    pub active: bool,
}

/// Every owner account, without tokens.
pub async fn owner_accounts(app: &App) -> anyhow::Result<Vec<OwnerAccountItem>> {
    let mut tx = app.db.read().await?;
    let rows = owner_accounts::find_owner_accounts(&mut tx).await?;
    let seats = seats_by_owner(&mut tx).await?;
    tx.rollback().await?;
    let ceiling = app.settings.plex.seats_per_account;
    Ok(rows
        .into_iter()
        .map(|r| OwnerAccountItem {
            seats_used: seats.get(&r.id).copied().unwrap_or(1),
            seat_ceiling: ceiling,
            id: r.id,
            name: r.name,
            state: r.state,
            banned: r.banned_at.is_some(),
            plex_pass: r.plex_pass,
        })
        .collect())
}

/// Seats used per owner account, as placement counts them.
async fn seats_by_owner(
    tx: &mut crate::store::Tx,
) -> Result<std::collections::HashMap<OwnerAccountId, i64>, sqlx::Error> {
    Ok(imports::find_seats(tx)
        .await?
        .iter()
        .map(|row| (row.id, crate::services::shares::seats_used(row)))
        .collect())
}

/// Every server.
pub async fn servers(app: &App) -> anyhow::Result<Vec<ServerItem>> {
    let mut tx = app.db.read().await?;
    let rows = servers::find_servers(&mut tx).await?;
    let seats = seats_by_owner(&mut tx).await?;
    tx.rollback().await?;
    let ceiling = app.settings.plex.seats_per_account;
    Ok(rows
        .into_iter()
        .map(|r| ServerItem {
            account_seats_used: seats.get(&r.owner_account_id).copied().unwrap_or(1),
            seat_ceiling: ceiling,
            id: r.id,
            name: r.name,
            owner_account_id: r.owner_account_id,
            owner_state: r.owner_state,
            owner_banned: r.owner_banned,
            location: r.location,
            enabled: r.enabled,
            allow_new_subscriptions: r.allow_new_subscriptions,
            users: r.users,
            max_users: r.max_users,
        })
        .collect())
}

impl ServerItem {
    /// How lists mark a server that is no longer in use: ` (banned)`, ` (removed)`, or nothing.
    pub fn mark(&self) -> &'static str {
        match (self.owner_state, self.owner_banned) {
            (OwnerAccountState::Active, _) => "",
            (_, true) => " (banned)",
            (_, false) => " (removed)",
        }
    }
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

/// A library group as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupItem {
    /// Id.
    pub id: LibraryGroupId,
    /// Name.
    pub name: String,
    /// Never shared.
    pub private: bool,
}

/// A library as listed, across servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibraryItem {
    /// Id.
    pub id: LibraryId,
    /// Server name.
    pub server: String,
    /// Title.
    pub title: String,
    /// Its group's name.
    pub group: Option<String>,
}

/// Every library group.
pub async fn groups(app: &App) -> anyhow::Result<Vec<GroupItem>> {
    let mut tx = app.db.read().await?;
    let rows = servers::find_groups(&mut tx).await?;
    tx.rollback().await?;
    Ok(rows
        .into_iter()
        .map(|r| GroupItem {
            id: r.id,
            name: r.name,
            private: r.private,
        })
        .collect())
}

/// Every library of every server.
pub async fn libraries(app: &App) -> anyhow::Result<Vec<LibraryItem>> {
    let mut tx = app.db.read().await?;
    let rows = servers::find_all_libraries(&mut tx).await?;
    tx.rollback().await?;
    Ok(rows
        .into_iter()
        .map(|r| LibraryItem {
            id: r.id,
            server: r.server,
            title: r.title,
            group: r.group_name,
        })
        .collect())
}
