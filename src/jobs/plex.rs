//! The share jobs: invite, update, remove — the only places Usher changes shares on plex.tv.
//!
//! Rules they keep:
//! - Idempotent: a share that already has a plex.tv id is never invited again; a replay, or a crash
//!   after plex.tv answered but before we recorded it, ends in re-reading the server's shares and
//!   recording the one that exists (plex.tv refuses the duplicate), so nothing is doubled.
//! - Never send an empty library list: on plex.tv that means "all libraries".
//! - Error rules (wire reference §1.9): 401 parks the job (owner token invalid: an admin must act,
//!   plex.tv is not hammered); 410 parks it with "update Usher" and is never retried; 404 fails;
//!   429 and 5xx retry with backoff, honouring Retry-After; a refused invite is decided by re-reading
//!   the shares — already shared counts as success, a full server moves the invite to another
//!   server chosen by placement (the full one is closed to new
//!   subscriptions), anything else fails with plex.tv's message.

use anyhow::anyhow;
use secrecy::SecretString;

use crate::app::App;
use crate::domain::{Actor, PlanId, ServerId, ShareId, ShareState, SubscriberId};
use crate::integrations::plex::{
    Invite, PlexError, PlexSectionId, Retry, ShareSettings, ShareState as PlexShareState,
    ShareUpdate, SharedServer, SharedServerId,
};
use crate::jobs::JobError;
use crate::services::placement::{self, SubscriberContext};
use crate::services::shares::{load_candidates, plan_needs};
use crate::store::servers::{self, ServerFlags};
use crate::store::shares::{self, ShareContext};
use crate::store::{audit, lifecycle};

/// How a plex.tv failure decides the job's fate.
fn classify(err: PlexError) -> JobError {
    match err {
        PlexError::Unauthorized => JobError::Park(anyhow!(
            "plex.tv refused the owner account's token; re-add the owner Plex account"
        )),
        PlexError::Gone { endpoint } => JobError::Park(anyhow!(
            "plex.tv retired the endpoint {endpoint}; update Usher"
        )),
        other => match other.retry() {
            Retry::After(after) => JobError::Retry {
                error: other.into(),
                after,
            },
            Retry::Never => JobError::Fail(other.into()),
        },
    }
}

fn db(err: sqlx::Error) -> JobError {
    JobError::retry(anyhow::Error::new(err).context("database"))
}

async fn context(app: &App, share: ShareId) -> Result<ShareContext, JobError> {
    let mut tx = app.db.read().await.map_err(db)?;
    shares::find_share_context(&mut tx, share)
        .await
        .map_err(db)?
        .ok_or_else(|| JobError::Fail(anyhow!("share {share} no longer exists")))
}

fn owner_token(app: &App, ctx: &ShareContext) -> Result<SecretString, JobError> {
    if ctx.owner_state != "active" {
        return Err(JobError::Fail(anyhow!(
            "the server's owner account is {}",
            ctx.owner_state
        )));
    }
    app.cipher
        .decrypt(&ctx.token_enc)
        .map_err(|e| JobError::Fail(anyhow!("opening the owner token: {e}")))
}

async fn sections(app: &App, ctx: &ShareContext) -> Result<Vec<PlexSectionId>, JobError> {
    let plan = ctx
        .plan_id
        .ok_or_else(|| JobError::Fail(anyhow!("subscriber {} has no plan", ctx.subscriber_id)))?;
    let mut tx = app.db.read().await.map_err(db)?;
    let ids = shares::find_plan_sections(&mut tx, ServerId::new(ctx.server_id), PlanId::new(plan))
        .await
        .map_err(db)?;
    if ids.is_empty() {
        // An empty list would share every library: wait for the admin to group this server's
        // libraries instead.
        return Err(JobError::Park(anyhow!(
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

async fn record(app: &App, share: ShareId, shared: &SharedServer) -> Result<(), JobError> {
    let state = match shared.state {
        PlexShareState::Accepted => ShareState::Accepted,
        PlexShareState::Pending => ShareState::Pending,
    };
    let id = i64::try_from(shared.id.0).map_err(|e| JobError::Fail(e.into()))?;
    let mut tx = app.db.begin().await.map_err(db)?;
    shares::update_share_invited(&mut tx, share, id, state, app.clock.now())
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)
}

/// The server's share (accepted or pending) for this identity, if plex.tv has one.
async fn existing_share(
    app: &App,
    token: &SecretString,
    ctx: &ShareContext,
) -> Result<Option<SharedServer>, JobError> {
    let matches = |s: &SharedServer| {
        s.invited_email
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case(&ctx.email_norm))
            || s.invited_username
                .as_deref()
                .is_some_and(|u| u.eq_ignore_ascii_case(&ctx.email_norm))
    };
    let mut all = app
        .plex
        .accepted_shares(token, &ctx.machine_id)
        .await
        .map_err(classify)?;
    all.extend(
        app.plex
            .pending_invites(token, &ctx.machine_id)
            .await
            .map_err(classify)?,
    );
    Ok(all.into_iter().find(matches))
}

/// Sends the invite for a pending share.
pub async fn invite(app: &App, share: ShareId) -> Result<(), JobError> {
    let ctx = context(app, share).await?;
    if ctx.state == ShareState::Removed.as_str()
        || ctx.plex_share_id.is_some()
        || ctx.suspended_at.is_some()
    {
        // Cancelled or suspended (the paid time ended) meanwhile, or already sent: nothing to do.
        return Ok(());
    }
    let token = owner_token(app, &ctx)?;
    let library_ids = sections(app, &ctx).await?;
    let request = Invite {
        machine_identifier: ctx.machine_id.clone(),
        invited: ctx.email_norm.clone(),
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
            Err(JobError::Fail(anyhow!(
                "plex.tv refused the invite ({status}, code {code:?}): {message}"
            )))
        }
        Err(err) => Err(classify(err)),
    }
}

/// plex.tv says the share's server is full. Close it to new subscriptions (visible to the admins,
/// audited; they reopen it once there is room), so no later placement picks it again, then place
/// the invite elsewhere and run again. With nowhere left, park the job: the admins see why.
async fn move_to_another_server(app: &App, ctx: &ShareContext) -> Result<(), JobError> {
    let plan = PlanId::new(ctx.plan_id.unwrap_or_default());
    let full = ServerId::new(ctx.server_id);
    let now = app.clock.now();
    let mut tx = app.db.begin().await.map_err(db)?;
    let close = ServerFlags {
        allow_new_subscriptions: Some(false),
        ..ServerFlags::default()
    };
    servers::update_server_flags(&mut tx, full, &close)
        .await
        .map_err(db)?;
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
    .await
    .map_err(db)?;
    let candidates = load_candidates(&mut tx).await.map_err(db)?;
    let needs = plan_needs(&mut tx, plan)
        .await
        .map_err(db)?
        .ok_or_else(|| JobError::Fail(anyhow!("plan {plan} no longer exists")))?;
    match placement::place_one(&candidates, &SubscriberContext::default(), &needs) {
        Ok(placed) => {
            let server = placed.server();
            shares::update_share_server(&mut tx, ShareId::new(ctx.id), server, now)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
            Err(JobError::Retry {
                error: anyhow!("server {full} is full; moved the invite to server {server}"),
                after: Some(std::time::Duration::ZERO),
            })
        }
        Err(no_fit) => {
            tx.commit().await.map_err(db)?;
            Err(JobError::Park(no_fit.into()))
        }
    }
}

/// Brings an invited share's libraries in line with the subscriber's plan.
pub async fn update(app: &App, share: ShareId) -> Result<(), JobError> {
    let ctx = context(app, share).await?;
    let Some(plex_share) = ctx.plex_share_id.and_then(|id| u64::try_from(id).ok()) else {
        return Ok(()); // Not invited yet: the invite will carry the current libraries.
    };
    if ctx.state == ShareState::Removed.as_str() || ctx.suspended_at.is_some() {
        return Ok(());
    }
    let token = owner_token(app, &ctx)?;
    let update = ShareUpdate {
        library_ids: sections(app, &ctx).await?,
        settings: ShareSettings::default(),
    };
    app.plex
        .update_share(&token, SharedServerId(plex_share), &update)
        .await
        .map_err(classify)
}

/// Deletes a share on plex.tv and marks it removed. A share plex.tv no longer has counts as
/// removed. On a banned owner account the delete is best effort: its token may still work, and if
/// plex.tv refuses it the share is marked removed anyway (there is nobody to wait for). On a
/// removed account nothing is called.
pub async fn remove(app: &App, share: ShareId) -> Result<(), JobError> {
    let ctx = context(app, share).await?;
    let plex_share = ctx.plex_share_id.and_then(|id| u64::try_from(id).ok());
    if let Some(plex_share) = plex_share
        && ctx.owner_state != "removed"
    {
        let banned = ctx.owner_state == "banned";
        let token = app
            .cipher
            .decrypt(&ctx.token_enc)
            .map_err(|e| JobError::Fail(anyhow!("opening the owner token: {e}")))?;
        match app
            .plex
            .delete_share(&token, SharedServerId(plex_share))
            .await
        {
            Ok(()) | Err(PlexError::NotFound { .. }) => {}
            Err(PlexError::Unauthorized | PlexError::Rejected { .. }) if banned => {
                tracing::info!(share = %share, "banned owner account refused the removal; marking it removed");
            }
            Err(err) => return Err(classify(err)),
        }
    }
    let mut tx = app.db.begin().await.map_err(db)?;
    shares::update_share_removed(&mut tx, share, app.clock.now())
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)
}

/// Removes a lapsed subscriber's library access: deletes the shared server on plex.tv and marks the
/// share suspended, keeping its row (and the subscriber's place on the server) for the grace days.
/// A subscriber who is active again by the time it runs (renewed) is left alone. A share whose
/// invite was sent but not recorded yet is found by re-reading the server's shares. On a banned
/// or removed owner account nothing is called (the recovery flow owns those shares).
pub async fn suspend(app: &App, share: ShareId) -> Result<(), JobError> {
    let ctx = context(app, share).await?;
    if ctx.state == ShareState::Removed.as_str() || ctx.suspended_at.is_some() {
        return Ok(());
    }
    let now = app.clock.now();
    let standing = {
        let mut tx = app.db.read().await.map_err(db)?;
        lifecycle::find_standing(&mut tx, SubscriberId::new(ctx.subscriber_id), now)
            .await
            .map_err(db)?
    };
    if standing.is_none_or(|s| s.active || !s.paying) {
        return Ok(()); // Renewed since the sweep (or never paid): access stays.
    }
    if ctx.owner_state == "active" {
        let token = owner_token(app, &ctx)?;
        let plex_share = match ctx.plex_share_id.and_then(|id| u64::try_from(id).ok()) {
            Some(id) => Some(SharedServerId(id)),
            None => existing_share(app, &token, &ctx).await?.map(|s| s.id),
        };
        if let Some(plex_share) = plex_share {
            match app.plex.delete_share(&token, plex_share).await {
                Ok(()) | Err(PlexError::NotFound { .. }) => {}
                Err(err) => return Err(classify(err)),
            }
        }
    }
    let mut tx = app.db.begin().await.map_err(db)?;
    if lifecycle::update_share_suspended(&mut tx, share, now)
        .await
        .map_err(db)?
    {
        let detail = serde_json::json!({ "share": share, "server": ctx.server_id });
        audit::insert_audit(
            &mut tx,
            &Actor::System,
            Some(SubscriberId::new(ctx.subscriber_id)),
            "share.access_removed",
            &detail,
            now,
        )
        .await
        .map_err(db)?;
    }
    tx.commit().await.map_err(db)
}

/// Gives up a suspended share's place after the grace days: marks it removed (deleting any plex.tv
/// share a late invite left behind). A share whose access came back meanwhile is left alone.
pub async fn release(app: &App, share: ShareId) -> Result<(), JobError> {
    let ctx = context(app, share).await?;
    if ctx.suspended_at.is_none() {
        return Ok(()); // Restored (renewed) or already removed.
    }
    remove(app, share).await
}

/// Drift found by one reconcile of a server.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Drift {
    /// Pending invites the subscriber has accepted since.
    pub accepted: Vec<i64>,
    /// Shares we hold live that plex.tv no longer has (marked removed).
    pub vanished: Vec<i64>,
    /// plex.tv share ids on the server that Usher did not make.
    pub unknown: Vec<u64>,
}

/// Compares our live shares on a server with plex.tv's accepted shares and pending invites:
/// pending → accepted is applied, vanished shares are marked removed, and unknown shares are
/// recorded for the admins (never deleted: someone may have added them by hand). The drift is
/// written to the audit log as `reconcile.drift` when there is any.
pub async fn reconcile(app: &App, server: ServerId) -> Result<Drift, JobError> {
    let owner = {
        let mut tx = app.db.read().await.map_err(db)?;
        servers::find_server_owner(&mut tx, server)
            .await
            .map_err(db)?
            .ok_or_else(|| JobError::Fail(anyhow!("server {server} no longer exists")))?
    };
    if owner.owner_state != "active" {
        return Ok(Drift::default()); // Nothing to compare with: the account is banned or removed.
    }
    let token = app
        .cipher
        .decrypt(&owner.token_enc)
        .map_err(|e| JobError::Fail(anyhow!("opening the owner token: {e}")))?;
    let accepted = app
        .plex
        .accepted_shares(&token, &owner.machine_id)
        .await
        .map_err(classify)?;
    let pending = app
        .plex
        .pending_invites(&token, &owner.machine_id)
        .await
        .map_err(classify)?;

    let now = app.clock.now();
    let mut tx = app.db.begin().await.map_err(db)?;
    let ours = shares::find_live_shares_on_server(&mut tx, server)
        .await
        .map_err(db)?;
    let mut drift = Drift::default();
    for share in &ours {
        let Some(plex_id) = share.plex_share_id.and_then(|id| u64::try_from(id).ok()) else {
            continue; // Not invited yet: the invite job owns it.
        };
        let id = ShareId::new(share.id);
        if accepted.iter().any(|s| s.id.0 == plex_id) {
            if share.state == ShareState::Pending.as_str() {
                shares::update_share_accepted(&mut tx, id, now)
                    .await
                    .map_err(db)?;
                drift.accepted.push(share.id);
            }
        } else if !pending.iter().any(|s| s.id.0 == plex_id) {
            shares::update_share_removed(&mut tx, id, now)
                .await
                .map_err(db)?;
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
        .await
        .map_err(db)?;
    }
    tx.commit().await.map_err(db)?;
    Ok(drift)
}
