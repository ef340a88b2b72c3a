//! Admin use cases for the Plex side: owner accounts, servers, libraries, library groups, plans.
//!
//! Rules it keeps: an owner token is tested against plex.tv before it is stored, stored only
//! sealed, and never echoed (replies name the account, not the token); removing or banning an
//! owner account keeps every subscriber's data and ends only their assignment to its servers;
//! remote calls happen before the transaction opens, never inside it; every change writes an audit
//! entry in its own transaction.

use anyhow::Context as _;
use secrecy::SecretString;

use crate::app::App;
use crate::domain::{
    Actor, BillingPeriod, LibraryGroupId, LibraryId, Money, OwnerAccountId, OwnerAccountState,
    PaypalPlanId, PlanId, ServerId, StripePriceId,
};
use crate::integrations::plex::{PlexError, Retry};
use crate::services::access;
use crate::store::owner_accounts::{self, NewOwnerAccount};
use crate::store::servers::{self, LibraryFromPlex, NewPlan, NewServer, ServerFlags};
use crate::store::{Tx, audit, is_unique_violation, payments};

/// Plex refuses shares at about 99 users including Home users.
pub const MAX_USERS_CEILING: i32 = 99;

/// What an admin did wrong or what stands in the way; each variant is a message for the admin.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// plex.tv refused the token.
    #[error(
        "plex.tv did not accept that token; sign in to Plex as the owner, copy a fresh token and try again"
    )]
    TokenRejected,
    /// The owner account's stored token stopped working.
    #[error(
        "plex.tv no longer accepts the token of owner account {0}; give it a fresh token with /admin plex-account update-token"
    )]
    StoredTokenRejected(String),
    /// The token is another plex.tv account's.
    #[error(
        "that token belongs to the Plex account {other}, not to {account}; sign in to Plex as {account} and copy its token"
    )]
    TokenOfAnotherAccount {
        /// The owner account being updated.
        account: String,
        /// Whose token it is.
        other: String,
    },
    /// The same Plex account is added already.
    #[error("the Plex account {0} is already added")]
    AccountAlreadyAdded(String),
    /// No such owner account.
    #[error("there is no owner Plex account #{0}")]
    NoSuchAccount(OwnerAccountId),
    /// The account is banned or removed.
    #[error("owner account {name} is {state}; add a new account instead")]
    AccountNotActive {
        /// Account name.
        name: String,
        /// Its state.
        state: OwnerAccountState,
    },
    /// The account owns no such server.
    #[error(
        "the Plex account {account} owns no server called or identified as `{wanted}`; it owns: {owned}"
    )]
    ServerNotOwned {
        /// Account name.
        account: String,
        /// What the admin asked for.
        wanted: String,
        /// What it does own.
        owned: String,
    },
    /// The server is added already.
    #[error("the server {0} is already added")]
    ServerAlreadyAdded(String),
    /// No such server.
    #[error("there is no server #{0}")]
    NoSuchServer(ServerId),
    /// No such library.
    #[error("there is no library #{0}")]
    NoSuchLibrary(LibraryId),
    /// No such library group.
    #[error("there is no library group #{0}")]
    NoSuchGroup(LibraryGroupId),
    /// No library group has that name.
    #[error("there is no library group named `{0}`")]
    NoGroupNamed(String),
    /// No such plan.
    #[error("there is no plan #{0}")]
    NoSuchPlan(PlanId),
    /// Capacity out of range.
    #[error(
        "max users must be from 1 to {MAX_USERS_CEILING} (Plex refuses shares at about 99 users, Home users included)"
    )]
    BadCapacity,
    /// Duplicate group name.
    #[error("a library group called {0} exists already")]
    GroupExists(String),
    /// Duplicate plan name.
    #[error("a plan called {0} exists already")]
    PlanExists(String),
    /// Empty name.
    #[error("the name must not be empty")]
    EmptyName,
    /// A plan needs at least one stream.
    #[error("a plan allows at least one stream")]
    BadStreams,
    /// Neither provider id was given.
    #[error(
        "give `stripe_price` or `paypal_plan` (or `none` in one to stop selling the plan there)"
    )]
    NoProviderId,
    /// plex.tv is down or rate limiting.
    #[error("plex.tv is not answering right now; try again in a minute")]
    PlexUnavailable,
    /// plex.tv retired an endpoint Usher uses.
    #[error("plex.tv retired an endpoint this version of Usher uses; update Usher")]
    PlexEndpointRetired,
    /// Anything else: logged with its cause, shown as a reference.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Maps a plex.tv failure on a call made with a stored owner token.
fn plex_failure(err: PlexError, account: &str) -> AdminError {
    match err {
        PlexError::Unauthorized => AdminError::StoredTokenRejected(account.to_string()),
        PlexError::Gone { .. } => AdminError::PlexEndpointRetired,
        other if matches!(other.retry(), Retry::After(_)) => AdminError::PlexUnavailable,
        other => AdminError::Unexpected(anyhow::Error::new(other).context("plex.tv")),
    }
}

/// An added owner account, as shown to the admin (never the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerAccountAdded {
    /// New id.
    pub id: OwnerAccountId,
    /// Plex username.
    pub name: String,
    /// Whether it has Plex Pass.
    pub plex_pass: bool,
}

/// Tests a token against plex.tv and stores the account it belongs to, token sealed.
pub async fn add_owner_account(
    app: &App,
    actor: &Actor,
    token: &SecretString,
) -> Result<OwnerAccountAdded, AdminError> {
    let account = match app.plex.account(token).await {
        Ok(account) => account,
        Err(PlexError::Unauthorized) => return Err(AdminError::TokenRejected),
        Err(err) => return Err(plex_failure(err, "(new)")),
    };
    let sealed = app
        .cipher
        .encrypt(secrecy::ExposeSecret::expose_secret(token));
    let plex_user_id = i64::try_from(account.id).context("plex.tv user id out of range")?;
    let mut tx = app.db.begin().await?;
    let row = NewOwnerAccount {
        name: &account.username,
        plex_user_id: Some(plex_user_id),
        token_enc: &sealed,
        plex_pass: account.plex_pass,
    };
    let id = match owner_accounts::insert_owner_account(&mut tx, &row, app.clock.now()).await {
        Ok(id) => id,
        Err(err) if is_unique_violation(&err) => {
            return Err(AdminError::AccountAlreadyAdded(account.username));
        }
        Err(err) => return Err(err.into()),
    };
    let detail = serde_json::json!({ "owner_account": id, "name": account.username, "plex_pass": account.plex_pass });
    audit::insert_audit(
        &mut tx,
        actor,
        None,
        "owner_account.add",
        &detail,
        app.clock.now(),
    )
    .await?;
    tx.commit().await?;
    Ok(OwnerAccountAdded {
        id,
        name: account.username,
        plex_pass: account.plex_pass,
    })
}

/// What removing an owner account changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnerAccountRemoved {
    /// Shares that were live on its servers and are now marked removed.
    pub shares_removed: u64,
}

/// Removes an owner account (after a ban, the seed's step 2): its servers take nobody any more and
/// every live share on them ends; subscribers, identities, payments and history stay, and so does
/// which server and account each share was on (the bulk flag finds them by it later). With
/// `banned` (or when the account was marked banned before), the Plex accounts of its users retire
/// as `banned` when they change. A removed account's machine ids can be added again (re-claimed).
pub async fn remove_owner_account(
    app: &App,
    actor: &Actor,
    id: OwnerAccountId,
    banned: bool,
) -> Result<OwnerAccountRemoved, AdminError> {
    let now = app.clock.now();
    let mut tx = app.db.begin().await?;
    let account = owner_accounts::find_owner_account(&mut tx, id)
        .await?
        .ok_or(AdminError::NoSuchAccount(id))?;
    if !owner_accounts::update_owner_state(&mut tx, id, OwnerAccountState::Removed, now).await? {
        return Err(AdminError::AccountNotActive {
            name: account.name,
            state: account.state,
        });
    }
    if banned {
        owner_accounts::update_owner_banned_at(&mut tx, id, now).await?;
    }
    let shares_removed = owner_accounts::update_shares_removed_for_owner(&mut tx, id, now).await?;
    let banned = banned || account.banned_at.is_some();
    let detail = serde_json::json!({ "owner_account": id, "name": account.name, "shares_removed": shares_removed, "banned": banned });
    audit::insert_audit(
        &mut tx,
        actor,
        None,
        "owner_account.remove",
        &detail,
        app.clock.now(),
    )
    .await?;
    tx.commit().await?;
    Ok(OwnerAccountRemoved { shares_removed })
}

/// Marks an owner account banned by Plex. First a CSV snapshot of the users on its servers is
/// written to `data_dir/snapshots/` (the admin's record of who was where); then its servers stop
/// taking anyone (placement skips them). Shares stay on record until the account is removed.
/// Returns the snapshot's path.
pub async fn mark_owner_banned(
    app: &App,
    actor: &Actor,
    id: OwnerAccountId,
) -> Result<std::path::PathBuf, AdminError> {
    let now = app.clock.now();
    let mut tx = app.db.begin().await?;
    let account = owner_accounts::find_owner_account(&mut tx, id)
        .await?
        .ok_or(AdminError::NoSuchAccount(id))?;
    if account.state != OwnerAccountState::Active {
        return Err(AdminError::AccountNotActive {
            name: account.name,
            state: account.state,
        });
    }
    let csv = crate::services::export::users_csv(&mut tx, Some(id), now).await?;
    let folder = app.settings.data_dir.join("snapshots");
    let path = folder.join(format!("ban-{}-{}.csv", id, now.format("%Y%m%dT%H%M%SZ")));
    std::fs::create_dir_all(&folder).with_context(|| format!("creating {}", folder.display()))?;
    std::fs::write(&path, csv)
        .with_context(|| format!("writing the ban snapshot {}", path.display()))?;
    owner_accounts::update_owner_state(&mut tx, id, OwnerAccountState::Banned, now).await?;
    let detail = serde_json::json!({ "owner_account": id, "name": account.name, "snapshot": path.display().to_string() });
    audit::insert_audit(&mut tx, actor, None, "owner_account.ban", &detail, now).await?;
    tx.commit().await?;
    Ok(path)
}

/// What giving an owner account a new token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUpdated {
    /// The account's name on plex.tv.
    pub name: String,
    /// Jobs that waited for a working token and run again now.
    pub released: u64,
}

/// Gives an owner account a new Plex token (its old one was revoked or changed): tested on
/// plex.tv first, it must be the same plex.tv account; then it is sealed and stored, and the jobs
/// parked on that account run again. A bad token changes nothing.
pub async fn update_owner_token(
    app: &App,
    actor: &Actor,
    id: OwnerAccountId,
    token: &SecretString,
) -> Result<TokenUpdated, AdminError> {
    let account = {
        let mut tx = app.db.read().await?;
        owner_accounts::find_owner_account(&mut tx, id)
            .await?
            .ok_or(AdminError::NoSuchAccount(id))?
    };
    if account.state == OwnerAccountState::Removed {
        return Err(AdminError::AccountNotActive {
            name: account.name,
            state: account.state,
        });
    }
    let found = match app.plex.account(token).await {
        Ok(found) => found,
        Err(PlexError::Unauthorized) => return Err(AdminError::TokenRejected),
        Err(err) => return Err(plex_failure(err, &account.name)),
    };
    let plex_user_id = i64::try_from(found.id).context("plex.tv user id out of range")?;
    if account
        .plex_user_id
        .is_some_and(|known| known != plex_user_id)
    {
        return Err(AdminError::TokenOfAnotherAccount {
            account: account.name,
            other: found.username,
        });
    }
    let sealed = app
        .cipher
        .encrypt(secrecy::ExposeSecret::expose_secret(token));
    let now = app.clock.now();
    let mut tx = app.db.begin().await?;
    owner_accounts::update_owner_token(&mut tx, id, &sealed, found.plex_pass).await?;
    let released = crate::store::jobs::update_unparked(
        &mut tx,
        &crate::services::shares::owner_rate_key(id),
        now,
    )
    .await?;
    let detail =
        serde_json::json!({ "owner_account": id, "name": account.name, "released_jobs": released });
    audit::insert_audit(&mut tx, actor, None, "owner_account.token", &detail, now).await?;
    app.queue.commit(tx).await?;
    Ok(TokenUpdated {
        name: found.username,
        released,
    })
}

/// Checks that plex.tv still accepts an owner account's stored token; returns what plex.tv says
/// the account is (name, Plex Pass). The token itself never leaves this function.
pub async fn test_owner_account(
    app: &App,
    id: OwnerAccountId,
) -> Result<OwnerAccountAdded, AdminError> {
    let (account, token) = {
        let mut tx = app.db.read().await?;
        active_account(app, &mut tx, id).await?
    };
    let found = app
        .plex
        .account(&token)
        .await
        .map_err(|err| plex_failure(err, &account.name))?;
    Ok(OwnerAccountAdded {
        id,
        name: found.username,
        plex_pass: found.plex_pass,
    })
}

/// Reads an active owner account and opens its sealed token.
async fn active_account(
    app: &App,
    tx: &mut Tx,
    id: OwnerAccountId,
) -> Result<(owner_accounts::OwnerAccountRow, SecretString), AdminError> {
    let account = owner_accounts::find_owner_account(tx, id)
        .await?
        .ok_or(AdminError::NoSuchAccount(id))?;
    if account.state != OwnerAccountState::Active {
        return Err(AdminError::AccountNotActive {
            name: account.name,
            state: account.state,
        });
    }
    let token = app
        .cipher
        .decrypt(&account.token_enc)
        .context("opening a stored owner token")?;
    Ok((account, token))
}

/// What adding a server did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAdded {
    /// New id.
    pub id: ServerId,
    /// Plex's name for it.
    pub name: String,
    /// Libraries found.
    pub libraries: usize,
}

/// Adds a server the owner account owns (by name, case-insensitive, or machine identifier) and
/// reads its libraries. It starts enabled and open to new subscriptions with 95 users.
pub async fn add_server(
    app: &App,
    actor: &Actor,
    owner: OwnerAccountId,
    wanted: &str,
) -> Result<ServerAdded, AdminError> {
    let (account, token) = {
        let mut tx = app.db.read().await?;
        active_account(app, &mut tx, owner).await?
    };
    let on_account = app
        .plex
        .owned_servers(&token)
        .await
        .map_err(|e| plex_failure(e, &account.name))?;
    let wanted = wanted.trim();
    let Some(server) = on_account
        .iter()
        .find(|s| s.machine_identifier == wanted || s.name.eq_ignore_ascii_case(wanted))
    else {
        let names: Vec<_> = on_account.iter().map(|s| s.name.as_str()).collect();
        return Err(AdminError::ServerNotOwned {
            account: account.name,
            wanted: wanted.to_string(),
            owned: if names.is_empty() {
                "no servers".into()
            } else {
                names.join(", ")
            },
        });
    };
    let libraries = app
        .plex
        .server_libraries(&token, &server.machine_identifier)
        .await
        .map_err(|e| plex_failure(e, &account.name))?;
    // Prefer a direct public address, then any direct one, then a relay.
    let url = server
        .connections
        .iter()
        .min_by_key(|c| (c.relay, c.local))
        .map(|c| c.uri.to_string());

    let mut tx = app.db.begin().await?;
    let row = NewServer {
        owner,
        machine_id: &server.machine_identifier,
        name: &server.name,
        url: url.as_deref(),
    };
    let id = match servers::insert_server(&mut tx, &row, app.clock.now()).await {
        Ok(id) => id,
        Err(err) if is_unique_violation(&err) => {
            return Err(AdminError::ServerAlreadyAdded(server.name.clone()));
        }
        Err(err) => return Err(err.into()),
    };
    store_libraries(&mut tx, id, &libraries.sections).await?;
    let detail = serde_json::json!({ "server": id, "name": server.name, "libraries": libraries.sections.len() });
    audit::insert_audit(&mut tx, actor, None, "server.add", &detail, app.clock.now()).await?;
    tx.commit().await?;
    Ok(ServerAdded {
        id,
        name: server.name.clone(),
        libraries: libraries.sections.len(),
    })
}

/// What a library sync changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LibrariesSynced {
    /// New libraries.
    pub added: usize,
    /// Libraries still there (titles and ids refreshed, groups kept).
    pub kept: usize,
    /// Libraries gone from the server.
    pub removed: u64,
}

/// Re-reads a server's libraries from plex.tv (global section ids), keeping group assignments.
pub async fn sync_libraries(
    app: &App,
    actor: &Actor,
    server: ServerId,
) -> Result<LibrariesSynced, AdminError> {
    let (row, account, token) = {
        let mut tx = app.db.read().await?;
        let row = servers::find_server(&mut tx, server)
            .await?
            .ok_or(AdminError::NoSuchServer(server))?;
        let (account, token) = active_account(app, &mut tx, row.owner_account_id).await?;
        (row, account, token)
    };
    let libraries = app
        .plex
        .server_libraries(&token, &row.machine_id)
        .await
        .map_err(|e| plex_failure(e, &account.name))?;
    let mut tx = app.db.begin().await?;
    let synced = store_libraries(&mut tx, server, &libraries.sections).await?;
    let detail = serde_json::json!({ "server": server, "added": synced.added, "kept": synced.kept, "removed": synced.removed });
    audit::insert_audit(
        &mut tx,
        actor,
        None,
        "server.sync_libraries",
        &detail,
        app.clock.now(),
    )
    .await?;
    tx.commit().await?;
    Ok(synced)
}

async fn store_libraries(
    tx: &mut Tx,
    server: ServerId,
    sections: &[crate::integrations::plex::PlexSection],
) -> Result<LibrariesSynced, AdminError> {
    let mut synced = LibrariesSynced::default();
    for section in sections {
        let lib = LibraryFromPlex {
            section_id: i64::try_from(section.id.0).context("section id out of range")?,
            local_key: &section.key.0,
            title: &section.title,
            kind: &section.kind,
        };
        if servers::upsert_library(tx, server, &lib).await? {
            synced.added += 1;
        } else {
            synced.kept += 1;
        }
    }
    let keep: Vec<String> = sections.iter().map(|s| s.key.0.clone()).collect();
    synced.removed = servers::delete_libraries_except(tx, server, &keep).await?;
    Ok(synced)
}

/// Changes a server's switches and capacity.
pub async fn set_server_flags(
    app: &App,
    actor: &Actor,
    server: ServerId,
    flags: &ServerFlags,
) -> Result<(), AdminError> {
    if flags
        .max_users
        .is_some_and(|n| !(1..=MAX_USERS_CEILING).contains(&n))
    {
        return Err(AdminError::BadCapacity);
    }
    let mut tx = app.db.begin().await?;
    if !servers::update_server_flags(&mut tx, server, flags).await? {
        return Err(AdminError::NoSuchServer(server));
    }
    let detail = serde_json::json!({
        "server": server, "enabled": flags.enabled, "allow_new_subscriptions": flags.allow_new_subscriptions,
        "allow_trials": flags.allow_trials, "max_users": flags.max_users, "location": flags.location,
    });
    audit::insert_audit(&mut tx, actor, None, "server.set", &detail, app.clock.now()).await?;
    // More room or a newly open server may fit someone who waits.
    let stamp = format!("server-set-{server}-{}", uuid::Uuid::new_v4().simple());
    access::enqueue_place_waiting(app, &mut tx, &stamp).await?;
    app.queue.commit(tx).await?;
    Ok(())
}

/// What removing a server did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerRemoved {
    /// Shares it had, now being removed on plex.tv.
    pub shares: usize,
    /// Their subscribers placed on another server (paid up, a plan and a Plex account).
    pub moved: usize,
    /// Of them, those waiting for a server with room.
    pub waiting: usize,
}

/// Removes a server from use (it died, or the admin stops sharing it): it takes nobody any more
/// and leaves the live set (its machine id may be added again), its shares are removed on
/// plex.tv, and every paid-up subscriber on it is placed on another server with room in the same
/// transaction (or waits for one, as anyone). Its row stays with its history.
pub async fn remove_server(
    app: &App,
    actor: &Actor,
    server: ServerId,
) -> Result<ServerRemoved, AdminError> {
    let now = app.clock.now();
    let mut tx = app.db.begin().await?;
    if !servers::update_server_retired(&mut tx, server, now).await? {
        return Err(AdminError::NoSuchServer(server));
    }
    let live = crate::store::shares::find_live_shares_on_server(&mut tx, server).await?;
    let mut removed = ServerRemoved {
        shares: live.len(),
        moved: 0,
        waiting: 0,
    };
    for share in &live {
        let subscriber = crate::store::shares::find_share_context(&mut tx, share.id)
            .await?
            .context("a live share has its context")?;
        crate::store::shares::update_share_removed(&mut tx, share.id, now).await?;
        let remove =
            crate::jobs::RemoveShare::new(share.id, subscriber.owner_account_id, "server-removed");
        app.queue.enqueue(&mut tx, &remove).await?;
        let standing =
            crate::store::lifecycle::find_standing(&mut tx, subscriber.subscriber_id, now).await?;
        if subscriber.requires_plex_change || !standing.is_some_and(|s| s.active) {
            continue;
        }
        let Some(plan) = subscriber.plan_id else {
            continue;
        };
        let previous =
            crate::store::shares::find_previous_servers(&mut tx, subscriber.subscriber_id)
                .await?
                .into_iter()
                .filter(|s| *s != server)
                .collect();
        let placed = access::place_and_invite(
            app,
            &mut tx,
            subscriber.subscriber_id,
            subscriber.identity_id,
            plan,
            previous,
            None,
        )
        .await?;
        removed.moved += 1;
        if placed.is_err() {
            removed.waiting += 1;
        }
    }
    let detail = serde_json::json!({ "server": server, "shares": removed.shares, "moved": removed.moved, "waiting": removed.waiting });
    audit::insert_audit(&mut tx, actor, None, "server.remove", &detail, now).await?;
    app.queue.commit(tx).await?;
    Ok(removed)
}

/// Creates a library group (a private group is never shared).
pub async fn create_group(
    app: &App,
    actor: &Actor,
    name: &str,
    private: bool,
) -> Result<LibraryGroupId, AdminError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(AdminError::EmptyName);
    }
    let mut tx = app.db.begin().await?;
    let id = match servers::insert_group(&mut tx, name, private, app.clock.now()).await {
        Ok(id) => id,
        Err(err) if is_unique_violation(&err) => {
            return Err(AdminError::GroupExists(name.to_string()));
        }
        Err(err) => return Err(err.into()),
    };
    audit::insert_audit(
        &mut tx,
        actor,
        None,
        "group.create",
        &serde_json::json!({ "group": id, "name": name }),
        app.clock.now(),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Puts a library in a group, or takes it out with `None`.
pub async fn assign_library(
    app: &App,
    actor: &Actor,
    library: LibraryId,
    group: Option<LibraryGroupId>,
) -> Result<(), AdminError> {
    let mut tx = app.db.begin().await?;
    if !servers::update_library_group(&mut tx, library, group).await? {
        return Err(AdminError::NoSuchLibrary(library));
    }
    let detail = serde_json::json!({ "library": library, "group": group });
    audit::insert_audit(
        &mut tx,
        actor,
        None,
        "library.assign",
        &detail,
        app.clock.now(),
    )
    .await?;
    // A server that now carries a plan's groups may fit someone who waits.
    let stamp = format!("library-{library}-{}", uuid::Uuid::new_v4().simple());
    access::enqueue_place_waiting(app, &mut tx, &stamp).await?;
    app.queue.commit(tx).await?;
    Ok(())
}

/// A plan as the admin defines it.
#[derive(Debug, Clone)]
pub struct PlanSpec {
    /// Unique name.
    pub name: String,
    /// Price per period.
    pub price: Money,
    /// Billing period.
    pub period: BillingPeriod,
    /// Concurrent streams.
    pub max_streams: i32,
    /// A trial plan.
    pub trial: bool,
    /// Library groups it gives access to.
    pub groups: Vec<GroupRef>,
}

/// A library group as an admin names it: by id (picked from a list) or by name (typed, any case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRef {
    /// The group with this id.
    Id(LibraryGroupId),
    /// The group with this name, compared without regard to case.
    Name(String),
}

impl From<LibraryGroupId> for GroupRef {
    fn from(id: LibraryGroupId) -> Self {
        Self::Id(id)
    }
}

/// The ids of the named groups, each checked to exist.
async fn resolve_groups(
    tx: &mut Tx,
    wanted: &[GroupRef],
) -> Result<Vec<LibraryGroupId>, AdminError> {
    let known = servers::find_groups(tx).await?;
    wanted
        .iter()
        .map(|g| match g {
            GroupRef::Id(id) => known
                .iter()
                .find(|k| k.id == *id)
                .map(|k| k.id)
                .ok_or(AdminError::NoSuchGroup(*id)),
            GroupRef::Name(name) => known
                .iter()
                .find(|k| k.name.eq_ignore_ascii_case(name.trim()))
                .map(|k| k.id)
                .ok_or_else(|| AdminError::NoGroupNamed(name.trim().to_owned())),
        })
        .collect()
}

/// Creates a plan.
pub async fn create_plan(app: &App, actor: &Actor, spec: &PlanSpec) -> Result<PlanId, AdminError> {
    let name = spec.name.trim();
    if name.is_empty() {
        return Err(AdminError::EmptyName);
    }
    if spec.max_streams < 1 {
        return Err(AdminError::BadStreams);
    }
    let currency = spec.price.currency();
    let mut tx = app.db.begin().await?;
    let groups = resolve_groups(&mut tx, &spec.groups).await?;
    let row = NewPlan {
        name,
        price_minor: spec.price.minor(),
        currency: currency.as_str(),
        period: spec.period,
        max_streams: spec.max_streams,
        trial: spec.trial,
        groups: &groups,
    };
    let id = match servers::insert_plan(&mut tx, &row, app.clock.now()).await {
        Ok(id) => id,
        Err(err) if is_unique_violation(&err) => {
            return Err(AdminError::PlanExists(name.to_string()));
        }
        Err(err) => return Err(err.into()),
    };
    let detail = serde_json::json!({ "plan": id, "name": name, "price": spec.price.to_string(), "groups": groups });
    audit::insert_audit(
        &mut tx,
        actor,
        None,
        "plan.create",
        &detail,
        app.clock.now(),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Renames a library group and/or changes whether it is private.
pub async fn edit_group(
    app: &App,
    actor: &Actor,
    group: LibraryGroupId,
    name: Option<&str>,
    private: Option<bool>,
) -> Result<(), AdminError> {
    let name = name.map(str::trim);
    if name.is_some_and(str::is_empty) {
        return Err(AdminError::EmptyName);
    }
    let mut tx = app.db.begin().await?;
    match servers::update_group(&mut tx, group, name, private).await {
        Ok(true) => {}
        Ok(false) => return Err(AdminError::NoSuchGroup(group)),
        Err(err) if is_unique_violation(&err) => {
            return Err(AdminError::GroupExists(
                name.unwrap_or_default().to_string(),
            ));
        }
        Err(err) => return Err(err.into()),
    }
    let detail = serde_json::json!({ "group": group, "name": name, "private": private });
    audit::insert_audit(&mut tx, actor, None, "group.edit", &detail, app.clock.now()).await?;
    tx.commit().await?;
    Ok(())
}

/// A change to a plan; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct PlanEdit {
    /// New name.
    pub name: Option<String>,
    /// New price.
    pub price: Option<Money>,
    /// New stream count.
    pub max_streams: Option<i32>,
    /// Trial or not.
    pub trial: Option<bool>,
    /// Offered to new subscribers (false retires it; current subscribers keep it).
    pub active: Option<bool>,
    /// New library groups: the shares of everyone on the plan are updated to match.
    pub groups: Option<Vec<GroupRef>>,
}

/// Edits a plan. When its groups change, every invited share of its subscribers gets an update
/// job (in the same transaction), so library access follows the plan.
pub async fn edit_plan(
    app: &App,
    actor: &Actor,
    plan: PlanId,
    edit: &PlanEdit,
) -> Result<usize, AdminError> {
    let name = edit.name.as_deref().map(str::trim);
    if name.is_some_and(str::is_empty) {
        return Err(AdminError::EmptyName);
    }
    if edit.max_streams.is_some_and(|n| n < 1) {
        return Err(AdminError::BadStreams);
    }
    let currency = edit.price.map(Money::currency);
    let change = servers::PlanChange {
        name,
        price: edit
            .price
            .zip(currency.as_ref())
            .map(|(p, c)| (p.minor(), c.as_str())),
        max_streams: edit.max_streams,
        trial: edit.trial,
        active: edit.active,
    };
    let now = app.clock.now();
    let mut tx = app.db.begin().await?;
    match servers::update_plan(&mut tx, plan, &change).await {
        Ok(true) => {}
        Ok(false) => return Err(AdminError::NoSuchPlan(plan)),
        Err(err) if is_unique_violation(&err) => {
            return Err(AdminError::PlanExists(name.unwrap_or_default().to_string()));
        }
        Err(err) => return Err(err.into()),
    }
    let mut updates = 0;
    let groups = match &edit.groups {
        Some(wanted) => Some(resolve_groups(&mut tx, wanted).await?),
        None => None,
    };
    if let Some(groups) = &groups {
        servers::replace_plan_groups(&mut tx, plan, groups).await?;
        let generation = format!("plan-{plan}-{}", now.timestamp_micros());
        for (share, owner) in
            crate::store::shares::find_invited_shares_on_plan(&mut tx, plan).await?
        {
            let update = crate::jobs::UpdateShare::new(share, owner, &generation);
            app.queue.enqueue(&mut tx, &update).await?;
            updates += 1;
        }
    }
    let detail = serde_json::json!({
        "plan": plan, "name": name, "price": edit.price.map(|p| p.to_string()), "max_streams": edit.max_streams,
        "trial": edit.trial, "active": edit.active, "groups": groups, "share_updates": updates,
    });
    audit::insert_audit(&mut tx, actor, None, "plan.edit", &detail, now).await?;
    app.queue.commit(tx).await?;
    Ok(updates)
}

/// A change to one of a plan's provider ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderIdChange<T> {
    /// Sell the plan under this id.
    Set(T),
    /// Stop selling the plan through that provider.
    Clear,
}

/// A plan's provider ids after a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanProviderIds {
    /// The plan's name.
    pub name: String,
    /// Stripe price id.
    pub stripe_price_id: Option<String>,
    /// PayPal plan id.
    pub paypal_plan_id: Option<String>,
}

/// Sets or clears the ids a plan is sold under at Stripe and PayPal (`None` keeps one as it is).
pub async fn set_plan_provider_ids(
    app: &App,
    actor: &Actor,
    plan: PlanId,
    stripe: Option<ProviderIdChange<StripePriceId>>,
    paypal: Option<ProviderIdChange<PaypalPlanId>>,
) -> Result<PlanProviderIds, AdminError> {
    fn raw<T: AsRef<str>>(change: Option<&ProviderIdChange<T>>) -> Option<&str> {
        change.map(|c| match c {
            ProviderIdChange::Set(id) => id.as_ref(),
            ProviderIdChange::Clear => "",
        })
    }
    if stripe.is_none() && paypal.is_none() {
        return Err(AdminError::NoProviderId);
    }
    let now = app.clock.now();
    let mut tx = app.db.begin().await?;
    let (stripe, paypal) = (raw(stripe.as_ref()), raw(paypal.as_ref()));
    if !payments::update_plan_provider_ids(&mut tx, plan, stripe, paypal).await? {
        return Err(AdminError::NoSuchPlan(plan));
    }
    let offer = payments::find_plan_offer(&mut tx, plan)
        .await?
        .ok_or(AdminError::NoSuchPlan(plan))?;
    let detail = serde_json::json!({
        "plan": plan, "stripe_price_id": offer.stripe_price_id, "paypal_plan_id": offer.paypal_plan_id,
    });
    audit::insert_audit(&mut tx, actor, None, "plan.provider_ids", &detail, now).await?;
    tx.commit().await?;
    Ok(PlanProviderIds {
        name: offer.name,
        stripe_price_id: offer.stripe_price_id,
        paypal_plan_id: offer.paypal_plan_id,
    })
}
