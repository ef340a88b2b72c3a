//! Keeping plex.tv in line with Usher's shares: invite, update, remove, suspend, release and
//! reconcile — the only places Usher changes shares on plex.tv. Each function is one step of a
//! job (`src/jobs/share_jobs.rs`, `reconcile_server.rs`) and returns a [`StepError`] the job maps
//! to retry, park or dead.
//!
//! Rules they keep:
//! - Idempotent: a share that already has a plex.tv id is never invited again; a replay, or a crash
//!   after plex.tv answered but before we recorded it, ends in re-reading the server's shares and
//!   recording the one that exists (plex.tv refuses the duplicate), so nothing is doubled.
//! - Never send an empty library list: on plex.tv that means "all libraries".
//! - plex.tv's failures go back to the job as they are (401 parks, 429/5xx retry, …); a refused
//!   invite is decided here by re-reading the shares — already shared counts as success, a full
//!   server closes that server to new subscriptions and moves the invite to another server chosen
//!   by placement (a fresh invite job), anything else fails with plex.tv's message.

use anyhow::anyhow;
use secrecy::SecretString;

use crate::app::App;
use crate::domain::{Actor, OwnerAccountState, ServerId, ShareId, ShareState};
use crate::integrations::plex::{
    Invite, PlexError, PlexSectionId, ShareSettings, ShareState as PlexShareState, ShareUpdate,
    SharedServer, SharedServerId,
};
use crate::jobs::InviteShare;
use crate::services::StepError;
use crate::services::placement::{self, SubscriberContext};
use crate::services::shares::{load_candidates, plan_needs};
use crate::store::servers::{self, ServerFlags};
use crate::store::shares::{self, ShareContext};
use crate::store::{audit, lifecycle};

async fn context(app: &App, share: ShareId) -> Result<ShareContext, StepError> {
    let mut tx = app.db.read().await?;
    shares::find_share_context(&mut tx, share)
        .await?
        .ok_or_else(|| StepError::Impossible(anyhow!("share {share} no longer exists")))
}

fn owner_token(app: &App, ctx: &ShareContext) -> Result<SecretString, StepError> {
    if ctx.owner_state != OwnerAccountState::Active {
        return Err(StepError::Impossible(anyhow!(
            "the server's owner account is {}",
            ctx.owner_state
        )));
    }
    open_token(app, &ctx.token_enc)
}

fn open_token(app: &App, sealed: &str) -> Result<SecretString, StepError> {
    app.cipher
        .decrypt(sealed)
        .map_err(|e| StepError::Impossible(anyhow!("opening the owner token: {e}")))
}

async fn sections(app: &App, ctx: &ShareContext) -> Result<Vec<PlexSectionId>, StepError> {
    let plan = ctx.plan_id.ok_or_else(|| {
        StepError::Impossible(anyhow!("subscriber {} has no plan", ctx.subscriber_id))
    })?;
    let mut tx = app.db.read().await?;
    let ids = shares::find_plan_sections(&mut tx, ctx.server_id, plan).await?;
    if ids.is_empty() {
        // An empty list would share every library: wait for the admin to group this server's
        // libraries instead.
        return Err(StepError::NeedsAdmin(anyhow!(
            "plan {plan} has no libraries on server {}; group that server's libraries",
            ctx.server_id
        )));
    }
    Ok(ids
        .into_iter()
        .filter_map(|id| u64::try_from(id).ok())
        .map(PlexSectionId)
        .collect())
}

async fn record(app: &App, share: ShareId, shared: &SharedServer) -> Result<(), StepError> {
    let state = match shared.state {
        PlexShareState::Accepted => ShareState::Accepted,
        PlexShareState::Pending => ShareState::Pending,
    };
    let id = i64::try_from(shared.id.0).map_err(|e| StepError::Impossible(e.into()))?;
    let mut tx = app.db.begin().await?;
    shares::update_share_invited(&mut tx, share, id, state, app.clock.now()).await?;
    tx.commit().await?;
    Ok(())
}

/// The server's share (accepted or pending) for this identity, if plex.tv has one.
async fn existing_share(
    app: &App,
    token: &SecretString,
    ctx: &ShareContext,
) -> Result<Option<SharedServer>, StepError> {
    let matches = |s: &SharedServer| {
        [s.invited_email.as_deref(), s.invited_username.as_deref()]
            .into_iter()
            .flatten()
            .any(|named| crate::domain::PlexEmail::parse(named).is_ok_and(|n| n == ctx.email_norm))
    };
    let mut all = app.plex.accepted_shares(token, &ctx.machine_id).await?;
    all.extend(app.plex.pending_invites(token, &ctx.machine_id).await?);
    Ok(all.into_iter().find(matches))
}

/// Sends the invite for a pending share.
pub async fn send_invite(app: &App, share: ShareId) -> Result<(), StepError> {
    let ctx = context(app, share).await?;
    if ctx.state == ShareState::Removed || ctx.plex_share_id.is_some() || ctx.suspended_at.is_some()
    {
        // Cancelled or suspended (the paid time ended) meanwhile, or already sent: nothing to do.
        return Ok(());
    }
    let token = owner_token(app, &ctx)?;
    let library_ids = sections(app, &ctx).await?;
    let request = Invite {
        machine_identifier: ctx.machine_id.clone(),
        invited: ctx.email_norm.as_str().to_owned(),
        library_ids,
        settings: ShareSettings::default(),
    };
    match app.plex.invite(&token, &request).await {
        Ok(shared) => record(app, share, &shared).await,
        Err(PlexError::Rejected {
            status,
            code,
            message,
        }) => {
            if let Some(shared) = existing_share(app, &token, &ctx).await? {
                return record(app, share, &shared).await;
            }
            // plex.tv documents no code for a full server; its message names the limit.
            if message.to_ascii_lowercase().contains("limit") {
                return move_to_another_server(app, &ctx).await;
            }
            Err(StepError::Impossible(anyhow!(
                "plex.tv refused the invite ({status}, code {code:?}): {message}"
            )))
        }
        Err(err) => Err(err.into()),
    }
}

/// plex.tv says the share's server is full. Close it to new subscriptions (visible to the admins,
/// audited; they reopen it once there is room), so no later placement picks it again, then place
/// the invite elsewhere and queue its invite there. With nowhere left, the admins must act.
async fn move_to_another_server(app: &App, ctx: &ShareContext) -> Result<(), StepError> {
    let full = ctx.server_id;
    let plan = ctx.plan_id.ok_or_else(|| {
        StepError::Impossible(anyhow!("subscriber {} has no plan", ctx.subscriber_id))
    })?;
    let now = app.clock.now();
    let mut tx = app.db.begin().await?;
    let close = ServerFlags {
        allow_new_subscriptions: Some(false),
        ..ServerFlags::default()
    };
    servers::update_server_flags(&mut tx, full, &close).await?;
    let detail =
        serde_json::json!({ "server": full, "reason": "plex.tv refused a share: server full" });
    audit::insert_audit(
        &mut tx,
        &Actor::System,
        None,
        "server.closed_full",
        &detail,
        now,
    )
    .await?;
    let candidates = load_candidates(&mut tx).await?;
    let needs = plan_needs(&mut tx, plan)
        .await?
        .ok_or_else(|| StepError::Impossible(anyhow!("plan {plan} no longer exists")))?;
    match placement::place_one(&candidates, &SubscriberContext::default(), &needs) {
        Ok(placed) => {
            let server = placed.server();
            let owner = candidates
                .iter()
                .find(|c| c.id == server)
                .map(|c| c.owner)
                .ok_or_else(|| StepError::Impossible(anyhow!("placed server is no candidate")))?;
            shares::update_share_server(&mut tx, ctx.id, server, now).await?;
            let invite = InviteShare::new(ctx.id, owner, &format!("moved-{server}"));
            app.queue.enqueue(&mut tx, &invite).await?;
            app.queue.commit(tx).await?;
            tracing::info!(share = %ctx.id, from = %full, to = %server, "server full; moved the invite");
            Ok(())
        }
        Err(no_fit) => {
            tx.commit().await?;
            Err(StepError::NeedsAdmin(no_fit.into()))
        }
    }
}

/// Brings an invited share's libraries in line with the subscriber's plan.
pub async fn update_libraries(app: &App, share: ShareId) -> Result<(), StepError> {
    let ctx = context(app, share).await?;
    let Some(plex_share) = ctx.plex_share_id.and_then(|id| u64::try_from(id).ok()) else {
        return Ok(()); // Not invited yet: the invite will carry the current libraries.
    };
    if ctx.state == ShareState::Removed || ctx.suspended_at.is_some() {
        return Ok(());
    }
    let token = owner_token(app, &ctx)?;
    let update = ShareUpdate {
        library_ids: sections(app, &ctx).await?,
        settings: ShareSettings::default(),
    };
    app.plex
        .update_share(&token, SharedServerId(plex_share), &update)
        .await?;
    Ok(())
}

/// Deletes a share on plex.tv and marks it removed. A share plex.tv no longer has counts as
/// removed. On a banned owner account the delete is best effort: its token may still work, and if
/// plex.tv refuses it the share is marked removed anyway (there is nobody to wait for). On a
/// removed account nothing is called.
pub async fn remove_share(app: &App, share: ShareId) -> Result<(), StepError> {
    let ctx = context(app, share).await?;
    let plex_share = ctx.plex_share_id.and_then(|id| u64::try_from(id).ok());
    if let Some(plex_share) = plex_share
        && ctx.owner_state != OwnerAccountState::Removed
    {
        let banned = ctx.owner_state == OwnerAccountState::Banned;
        let token = open_token(app, &ctx.token_enc)?;
        match app
            .plex
            .delete_share(&token, SharedServerId(plex_share))
            .await
        {
            Ok(()) | Err(PlexError::NotFound { .. }) => {}
            Err(PlexError::Unauthorized | PlexError::Rejected { .. }) if banned => {
                tracing::info!(share = %share, "banned owner account refused the removal; marking it removed");
            }
            Err(err) => return Err(err.into()),
        }
    }
    let mut tx = app.db.begin().await?;
    shares::update_share_removed(&mut tx, share, app.clock.now()).await?;
    tx.commit().await?;
    Ok(())
}

/// Removes a lapsed subscriber's library access: deletes the shared server on plex.tv and marks the
/// share suspended, keeping its row (and the subscriber's place on the server) for the grace days.
/// A subscriber who is active again by the time it runs (renewed) is left alone. A share whose
/// invite was sent but not recorded yet is found by re-reading the server's shares. On a banned
/// or removed owner account nothing is called (the recovery flow owns those shares).
pub async fn suspend_share(app: &App, share: ShareId) -> Result<(), StepError> {
    let ctx = context(app, share).await?;
    if ctx.state == ShareState::Removed || ctx.suspended_at.is_some() {
        return Ok(());
    }
    let now = app.clock.now();
    let standing = {
        let mut tx = app.db.read().await?;
        lifecycle::find_standing(&mut tx, ctx.subscriber_id, now).await?
    };
    if standing.is_none_or(|s| s.active || !s.paying) {
        return Ok(()); // Renewed since the sweep (or never paid): access stays.
    }
    if ctx.owner_state == OwnerAccountState::Active {
        let token = owner_token(app, &ctx)?;
        let plex_share = match ctx.plex_share_id.and_then(|id| u64::try_from(id).ok()) {
            Some(id) => Some(SharedServerId(id)),
            None => existing_share(app, &token, &ctx).await?.map(|s| s.id),
        };
        if let Some(plex_share) = plex_share {
            match app.plex.delete_share(&token, plex_share).await {
                Ok(()) | Err(PlexError::NotFound { .. }) => {}
                Err(err) => return Err(err.into()),
            }
        }
    }
    let mut tx = app.db.begin().await?;
    if lifecycle::update_share_suspended(&mut tx, share, now).await? {
        let detail = serde_json::json!({ "share": share, "server": ctx.server_id });
        audit::insert_audit(
            &mut tx,
            &Actor::System,
            Some(ctx.subscriber_id),
            "share.access_removed",
            &detail,
            now,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Gives up a suspended share's place after the grace days: marks it removed (deleting any plex.tv
/// share a late invite left behind). A share whose access came back meanwhile is left alone.
pub async fn release_share(app: &App, share: ShareId) -> Result<(), StepError> {
    let ctx = context(app, share).await?;
    if ctx.suspended_at.is_none() {
        return Ok(()); // Restored (renewed) or already removed.
    }
    remove_share(app, share).await
}

/// Drift found by one reconcile of a server.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Drift {
    /// Pending invites the subscriber has accepted since.
    pub accepted: Vec<ShareId>,
    /// Shares we hold live that plex.tv no longer has (marked removed).
    pub vanished: Vec<ShareId>,
    /// plex.tv share ids on the server that Usher did not make.
    pub unknown: Vec<u64>,
}

/// Compares our live shares on a server with plex.tv's accepted shares and pending invites:
/// pending → accepted is applied, vanished shares are marked removed, and unknown shares are
/// recorded for the admins (never deleted: someone may have added them by hand). The drift is
/// written to the audit log as `reconcile.drift` when there is any.
pub async fn reconcile_server(app: &App, server: ServerId) -> Result<Drift, StepError> {
    let owner = {
        let mut tx = app.db.read().await?;
        servers::find_server_owner(&mut tx, server)
            .await?
            .ok_or_else(|| StepError::Impossible(anyhow!("server {server} no longer exists")))?
    };
    if owner.owner_state != OwnerAccountState::Active {
        return Ok(Drift::default()); // Nothing to compare with: the account is banned or removed.
    }
    let token = open_token(app, &owner.token_enc)?;
    let accepted = app.plex.accepted_shares(&token, &owner.machine_id).await?;
    let pending = app.plex.pending_invites(&token, &owner.machine_id).await?;

    let now = app.clock.now();
    let mut tx = app.db.begin().await?;
    let ours = shares::find_live_shares_on_server(&mut tx, server).await?;
    let mut drift = Drift::default();
    for share in &ours {
        let Some(plex_id) = share.plex_share_id.and_then(|id| u64::try_from(id).ok()) else {
            continue; // Not invited yet: the invite job owns it.
        };
        if accepted.iter().any(|s| s.id.0 == plex_id) {
            if share.state == ShareState::Pending {
                shares::update_share_accepted(&mut tx, share.id, now).await?;
                drift.accepted.push(share.id);
            }
        } else if !pending.iter().any(|s| s.id.0 == plex_id) {
            shares::update_share_removed(&mut tx, share.id, now).await?;
            drift.vanished.push(share.id);
        }
    }
    let known: Vec<u64> = ours
        .iter()
        .filter_map(|s| s.plex_share_id)
        .filter_map(|id| u64::try_from(id).ok())
        .collect();
    drift.unknown = accepted
        .iter()
        .chain(&pending)
        .map(|s| s.id.0)
        .filter(|id| !known.contains(id))
        .collect();
    if drift != Drift::default() {
        let detail = serde_json::json!({ "server": server, "drift": drift });
        audit::insert_audit(
            &mut tx,
            &Actor::System,
            None,
            "reconcile.drift",
            &detail,
            now,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(drift)
}
