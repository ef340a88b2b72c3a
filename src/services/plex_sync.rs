//! Keeping plex.tv in line with Usher's shares: invite, update, remove, suspend, release and
//! reconcile — the only places Usher changes shares on plex.tv. Each function is one step of a
//! job (`src/jobs/*_share.rs`, `reconcile_server.rs`) and returns a [`StepError`] the job maps to
//! wait, retry, park or dead.
//!
//! Rules they keep:
//! - Idempotent: a share that already has a plex.tv id is never invited again; a replay, or a crash
//!   after plex.tv answered but before we recorded it, ends in re-reading the server's shares and
//!   recording the one that exists (plex.tv refuses the duplicate), so nothing is doubled.
//! - Every step re-checks, when it runs, what may have changed since it was queued: the share
//!   (removed, suspended, sent), the subscriber (flagged, lapsed), the identity (retired) and the
//!   owner account (banned, removed).
//! - Never send an empty library list: on plex.tv that means "all libraries".
//! - A Plex identity is its plex.tv account: the plex.tv id and username plex.tv names in an
//!   invite's answer or the share lists are recorded, and when they are a retired, banned or
//!   refused account's (its email was changed on plex.tv), the share is deleted at once, the
//!   identity refused for good, the subscriber flagged again and told why, the admins alerted.
//! - Before an invite, the subscriber's old shares on the same server that Usher stopped counting
//!   are deleted on plex.tv, so plex.tv sees the old account's removal, then the new invite.
//! - plex.tv's failures go back to the job as they are (401 parks, 429 waits, 5xx retries, …); a
//!   refused invite is decided here by re-reading the shares — already shared counts as success,
//!   a full server closes that server to new subscriptions and moves the invite to another server
//!   chosen by placement (a fresh invite job), anything else fails with plex.tv's message.

use anyhow::anyhow;
use secrecy::SecretString;

use crate::app::App;
use crate::domain::{
    Actor, IdentityState, NotificationKind, OwnerAccountState, PlexEmail, RetireReason, ServerId,
    ShareId, ShareState,
};
use crate::integrations::plex::{
    Invite, PlexError, PlexSectionId, ShareSettings, ShareState as PlexShareState, ShareUpdate,
    SharedServer, SharedServerId,
};
use crate::jobs::InviteShare;
use crate::services::StepError;
use crate::services::placement::{self, SubscriberContext};
use crate::services::shares::{load_candidates, plan_needs};
use crate::services::{notify, trials};
use crate::store::servers::{self, ServerFlags};
use crate::store::shares::{self, ShareContext};
use crate::store::{Tx, audit, is_unique_violation, lifecycle, subscribers};

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

/// Whether a plex.tv share is for this identity (by plex.tv id, or email/username).
fn names(shared: &SharedServer, email: &PlexEmail, plex_user_id: Option<i64>) -> bool {
    if let (Some(theirs), Some(ours)) = (shared.invited_id, plex_user_id) {
        return i64::try_from(theirs).is_ok_and(|theirs| theirs == ours);
    }
    [
        shared.invited_email.as_deref(),
        shared.invited_username.as_deref(),
    ]
    .into_iter()
    .flatten()
    .any(|named| PlexEmail::parse(named).is_ok_and(|n| n == *email))
}

/// The server's share (accepted or pending, not left) for this identity, if plex.tv has one.
async fn existing_share(
    app: &App,
    token: &SecretString,
    ctx: &ShareContext,
) -> Result<Option<SharedServer>, StepError> {
    let mut all = app.plex.accepted_shares(token, &ctx.machine_id).await?;
    all.extend(app.plex.pending_invites(token, &ctx.machine_id).await?);
    Ok(all
        .into_iter()
        .find(|s| !s.left && names(s, &ctx.email_norm, None)))
}

/// What recording plex.tv's share for an identity found.
enum Recorded {
    /// Recorded; the account is the identity's own.
    Fine,
    /// plex.tv named a retired, banned or refused account (or another subscriber's): refused.
    Refused,
}

/// Records plex.tv's share for the share row, with the account plex.tv names; refuses the
/// account (see the module rules) when it is one Usher may never link.
async fn record(
    app: &App,
    token: &SecretString,
    ctx: &ShareContext,
    shared: &SharedServer,
) -> Result<Recorded, StepError> {
    let state = match shared.state {
        PlexShareState::Accepted => ShareState::Accepted,
        PlexShareState::Pending => ShareState::Pending,
    };
    let id = i64::try_from(shared.id.0).map_err(|e| StepError::Impossible(e.into()))?;
    let now = app.clock.now();
    let mut tx = app.db.begin().await?;
    shares::update_share_invited(&mut tx, ctx.id, id, state, now).await?;
    if learn_account(&mut tx, ctx.identity_id, shared).await? {
        if state == ShareState::Accepted {
            trials::finish_replacements_in(app, &mut tx, ctx.id)
                .await
                .map_err(StepError::Temporary)?;
        }
        app.queue.commit(tx).await?;
        return Ok(Recorded::Fine);
    }
    // The invited account is one Usher may never link: take the share back at once — unless
    // plex.tv answered with a share Usher made for another subscriber's identity (the same
    // account already on this server): that is their access, and it stays.
    drop(tx);
    let held_by_another = {
        let mut tx = app.db.read().await?;
        shares::find_live_holder_of(&mut tx, id, ctx.id)
            .await?
            .is_some()
    };
    if !held_by_another {
        match app.plex.delete_share(token, shared.id).await {
            Ok(()) | Err(PlexError::NotFound { .. }) => {}
            Err(err) => return Err(err.into()),
        }
    }
    let mut tx = app.db.begin().await?;
    if !held_by_another {
        shares::update_share_invited(&mut tx, ctx.id, id, state, now).await?;
    }
    refuse_identity(app, &mut tx, ctx, shared).await?;
    app.queue.commit(tx).await?;
    Ok(Recorded::Refused)
}

/// Records the plex.tv id and username plex.tv names for an identity. False when they belong to
/// another identity (retired, banned, refused, or another subscriber's): the account may not be
/// linked.
async fn learn_account(
    tx: &mut Tx,
    identity: crate::domain::PlexIdentityId,
    shared: &SharedServer,
) -> Result<bool, StepError> {
    let Some(plex_user_id) = shared.invited_id.and_then(|id| i64::try_from(id).ok()) else {
        return Ok(true); // plex.tv did not say whose it is: nothing to learn or to refuse.
    };
    if let Some(holder) = subscribers::find_identity_by_plex_id(tx, plex_user_id).await? {
        return Ok(holder.id == identity);
    }
    let username = shared
        .invited_username
        .as_deref()
        .and_then(|u| PlexEmail::parse(u).ok());
    match subscribers::update_identity_account(
        tx,
        identity,
        plex_user_id,
        username.as_ref().map(PlexEmail::as_str),
    )
    .await
    {
        Ok(()) => Ok(true),
        // The username is another identity's: the same account under another name.
        Err(err) if is_unique_violation(&err) => Ok(false),
        Err(err) => Err(err.into()),
    }
}

/// The share's identity is a plex.tv account Usher may never link (its email was changed on
/// plex.tv): the share is gone, the identity refused for good, the subscriber flagged again and
/// told why, the admins alerted, all audited — in the caller's transaction.
async fn refuse_identity(
    app: &App,
    tx: &mut Tx,
    ctx: &ShareContext,
    shared: &SharedServer,
) -> Result<(), StepError> {
    let now = app.clock.now();
    shares::update_share_removed(tx, ctx.id, now).await?;
    shares::update_share_unshared(tx, ctx.id, now).await?;
    subscribers::update_identity_retired(tx, ctx.identity_id, RetireReason::Refused, now).await?;
    subscribers::update_flag(tx, ctx.subscriber_id, true, now).await?;
    trials::end_refused_in(tx, ctx.subscriber_id, ctx.identity_id, now)
        .await
        .map_err(StepError::Temporary)?;
    let reason = "plex.tv says it is a Plex account that was used here before (its email was changed on plex.tv)";
    let detail = serde_json::json!({
        "share": ctx.id, "identity": ctx.identity_id, "email": ctx.email_norm.as_str(),
        "plex_user_id": shared.invited_id, "server": ctx.server_id,
    });
    audit::insert_audit(
        tx,
        &Actor::System,
        Some(ctx.subscriber_id),
        "identity.refused",
        &detail,
        now,
    )
    .await?;
    let event = format!("refused-share-{}", ctx.id);
    let dm = serde_json::json!({ "plex_account": ctx.email_norm.as_str(), "reason": reason });
    notify::enqueue_dm(
        app,
        tx,
        ctx.subscriber_id,
        NotificationKind::AccountRefused,
        &dm,
        &event,
    )
    .await?;
    let alert = serde_json::json!({ "plex_account": ctx.email_norm.as_str() });
    notify::enqueue_admin_alert(
        app,
        tx,
        Some(ctx.subscriber_id),
        NotificationKind::AdminAccountRefused,
        &alert,
        &event,
    )
    .await?;
    Ok(())
}

/// Deletes on plex.tv the subscriber's old shares on this server that Usher no longer counts
/// (the old account's share after an account change), and records them gone.
async fn unshare_leftovers(
    app: &App,
    token: &SecretString,
    ctx: &ShareContext,
) -> Result<(), StepError> {
    let leftovers = {
        let mut tx = app.db.read().await?;
        shares::find_leftovers(&mut tx, ctx.subscriber_id, ctx.server_id).await?
    };
    if leftovers.is_empty() {
        return Ok(());
    }
    let on_plex = {
        let mut all = app.plex.accepted_shares(token, &ctx.machine_id).await?;
        all.extend(app.plex.pending_invites(token, &ctx.machine_id).await?);
        all
    };
    for old in &leftovers {
        let held = on_plex.iter().filter(|s| {
            old.plex_share_id
                .is_some_and(|id| u64::try_from(id).is_ok_and(|id| id == s.id.0))
                || names(s, &old.email_norm, None)
        });
        for share in held {
            match app.plex.delete_share(token, share.id).await {
                Ok(()) | Err(PlexError::NotFound { .. }) => {}
                Err(err) => return Err(err.into()),
            }
        }
        let mut tx = app.db.begin().await?;
        shares::update_share_unshared(&mut tx, old.id, app.clock.now()).await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Why an invite is not sent now (a clear outcome for the job's record).
async fn invite_blocked(app: &App, ctx: &ShareContext) -> Result<Option<&'static str>, StepError> {
    if ctx.state == ShareState::Removed {
        return Ok(Some("the share was removed"));
    }
    if ctx.plex_share_id.is_some() {
        return Ok(Some("already invited"));
    }
    if ctx.suspended_at.is_some() {
        return Ok(Some("access was removed when the paid time ended"));
    }
    if ctx.identity_state != IdentityState::Active {
        return Ok(Some(
            "the share's Plex account is no longer the subscriber's",
        ));
    }
    if ctx.requires_plex_change {
        return Ok(Some("the subscriber must change Plex account first"));
    }
    let standing = {
        let mut tx = app.db.read().await?;
        lifecycle::find_standing(&mut tx, ctx.subscriber_id, app.clock.now()).await?
    };
    if standing.is_some_and(|s| s.paying && !s.active) {
        return Ok(Some("the subscriber's paid time has ended"));
    }
    Ok(None)
}

/// Sends the invite for a pending share.
pub async fn send_invite(app: &App, share: ShareId) -> Result<(), StepError> {
    let ctx = context(app, share).await?;
    if let Some(why) = invite_blocked(app, &ctx).await? {
        // Flagged or retired: the share will never be sent, so it stops holding a place (the
        // account change or a re-invite makes a new one). Others keep it (the sweep, a renewal).
        if ctx.state != ShareState::Removed
            && ctx.plex_share_id.is_none()
            && (ctx.requires_plex_change || ctx.identity_state != IdentityState::Active)
        {
            let now = app.clock.now();
            let mut tx = app.db.begin().await?;
            shares::update_share_removed(&mut tx, share, now).await?;
            shares::update_share_unshared(&mut tx, share, now).await?;
            let detail = serde_json::json!({ "share": share, "reason": why });
            audit::insert_audit(
                &mut tx,
                &Actor::System,
                Some(ctx.subscriber_id),
                "share.invite_cancelled",
                &detail,
                now,
            )
            .await?;
            tx.commit().await?;
        }
        tracing::info!(share = %share, reason = why, "invite not sent");
        return Ok(());
    }
    let token = owner_token(app, &ctx)?;
    let library_ids = sections(app, &ctx).await?;
    unshare_leftovers(app, &token, &ctx).await?;
    let request = Invite {
        machine_identifier: ctx.machine_id.clone(),
        invited: ctx.email_norm.as_str().to_owned(),
        library_ids,
        settings: ShareSettings::default(),
    };
    match app.plex.invite(&token, &request).await {
        Ok(shared) => record(app, &token, &ctx, &shared).await.map(drop),
        Err(PlexError::Rejected {
            status,
            code,
            message,
        }) => {
            if let Some(shared) = existing_share(app, &token, &ctx).await? {
                return record(app, &token, &ctx, &shared).await.map(drop);
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
    let candidates = load_candidates(&mut tx, app.settings.plex.seats_per_account).await?;
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

/// Deletes a share on plex.tv and marks it removed (it stops counting) and gone from plex.tv. A
/// share plex.tv no longer has counts as deleted; one whose invite was sent but never recorded
/// is found by re-reading the server's shares. On a banned owner account the delete is best
/// effort: its token may still work, and if plex.tv refuses it the share is marked gone anyway
/// (there is nobody to wait for). On a removed account nothing is called.
pub async fn remove_share(app: &App, share: ShareId) -> Result<(), StepError> {
    let ctx = context(app, share).await?;
    if ctx.unshared_at.is_none() && ctx.owner_state != OwnerAccountState::Removed {
        let banned = ctx.owner_state == OwnerAccountState::Banned;
        let token = open_token(app, &ctx.token_enc)?;
        let plex_share = match ctx.plex_share_id.and_then(|id| u64::try_from(id).ok()) {
            Some(id) => Some(SharedServerId(id)),
            None if !banned => existing_share(app, &token, &ctx).await?.map(|s| s.id),
            None => None,
        };
        if let Some(plex_share) = plex_share {
            match app.plex.delete_share(&token, plex_share).await {
                Ok(()) | Err(PlexError::NotFound { .. }) => {}
                Err(PlexError::Unauthorized | PlexError::Rejected { .. }) if banned => {
                    tracing::info!(share = %share, "banned owner account refused the removal; marking it removed");
                }
                Err(err) => return Err(err.into()),
            }
        }
    }
    let now = app.clock.now();
    let mut tx = app.db.begin().await?;
    shares::update_share_removed(&mut tx, share, now).await?;
    shares::update_share_unshared(&mut tx, share, now).await?;
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
    /// Shares whose invite plex.tv holds but whose answer was never recorded (now recorded).
    pub adopted: Vec<ShareId>,
    /// Shares whose plex.tv account turned out to be a retired or banned one (now refused).
    pub refused: Vec<ShareId>,
    /// plex.tv share ids on the server that Usher did not make.
    pub unknown: Vec<u64>,
}

/// Compares our shares on a server with plex.tv's accepted shares and pending invites (a share
/// whose user left counts as gone): pending → accepted is applied; a share invited before this
/// reconcile read Usher's shares that plex.tv no longer has is marked removed (one invited while
/// plex.tv was being read is never taken for vanished); a share of ours whose invite answer was
/// lost is adopted; the plex.tv ids plex.tv names are recorded (refusing a retired or banned
/// account's); unknown shares are recorded for the admins (never deleted: someone may have added
/// them by hand). The drift is written to the audit log as `reconcile.drift` when there is any.
pub async fn reconcile_server(app: &App, server: ServerId) -> Result<Drift, StepError> {
    let (owner, before) = {
        let mut tx = app.db.read().await?;
        let owner = servers::find_server_owner(&mut tx, server)
            .await?
            .ok_or_else(|| StepError::Impossible(anyhow!("server {server} no longer exists")))?;
        // Usher's view first: only what was invited before plex.tv is read can have vanished.
        let before: Vec<ShareId> = shares::find_live_shares_on_server(&mut tx, server)
            .await?
            .into_iter()
            .filter(|s| s.plex_share_id.is_some())
            .map(|s| s.id)
            .collect();
        (owner, before)
    };
    if owner.owner_state != OwnerAccountState::Active {
        return Ok(Drift::default()); // Nothing to compare with: the account is banned or removed.
    }
    let token = open_token(app, &owner.token_enc)?;
    let mut on_plex = app.plex.accepted_shares(&token, &owner.machine_id).await?;
    on_plex.extend(app.plex.pending_invites(&token, &owner.machine_id).await?);
    on_plex.retain(|s| !s.left);

    let now = app.clock.now();
    let mut tx = app.db.begin().await?;
    let ours = shares::find_live_shares_on_server(&mut tx, server).await?;
    let mut drift = Drift::default();
    let mut accepted = Vec::new();
    let mut refuse = Vec::new();
    let mut claimed: Vec<u64> = Vec::new();
    for share in &ours {
        let found = match share.plex_share_id.and_then(|id| u64::try_from(id).ok()) {
            Some(plex_id) => on_plex.iter().find(|s| s.id.0 == plex_id),
            // Sent but never recorded (a lost answer), or not sent yet: adopt what plex.tv holds.
            None if !share.suspended => on_plex.iter().find(|s| {
                !claimed.contains(&s.id.0) && names(s, &share.email_norm, share.plex_user_id)
            }),
            None => None,
        };
        let Some(found) = found else {
            if share.plex_share_id.is_some() && before.contains(&share.id) {
                shares::update_share_removed(&mut tx, share.id, now).await?;
                shares::update_share_unshared(&mut tx, share.id, now).await?;
                drift.vanished.push(share.id);
            }
            continue;
        };
        claimed.push(found.id.0);
        let state = match found.state {
            PlexShareState::Accepted => ShareState::Accepted,
            PlexShareState::Pending => ShareState::Pending,
        };
        if share.plex_share_id.is_none() {
            let id = i64::try_from(found.id.0).map_err(|e| StepError::Impossible(e.into()))?;
            shares::update_share_invited(&mut tx, share.id, id, state, now).await?;
            drift.adopted.push(share.id);
        } else if state == ShareState::Accepted && share.state == ShareState::Pending {
            shares::update_share_accepted(&mut tx, share.id, now).await?;
            drift.accepted.push(share.id);
        }
        if !learn_account(&mut tx, share.identity_id, found).await? {
            refuse.push((share.id, found.clone()));
        } else if state == ShareState::Accepted {
            accepted.push(share.id);
        }
    }
    let held = shares::find_held_plex_ids(&mut tx, server).await?;
    drift.unknown = on_plex
        .iter()
        .map(|s| s.id.0)
        .filter(|id| !claimed.contains(id) && !held.iter().any(|h| u64::try_from(*h) == Ok(*id)))
        .collect();
    if drift != Drift::default() || !refuse.is_empty() {
        let detail =
            serde_json::json!({ "server": server, "drift": drift, "refused": refuse.len() });
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
    // Shares a converted trial's new share replaces go once that one is accepted.
    for share in accepted {
        trials::finish_replacements_in(app, &mut tx, share)
            .await
            .map_err(StepError::Temporary)?;
    }
    app.queue.commit(tx).await?;
    // Accounts that turned out to be retired or banned ones: their shares go at once.
    for (share, found) in refuse {
        let ctx = context(app, share).await?;
        match app.plex.delete_share(&token, found.id).await {
            Ok(()) | Err(PlexError::NotFound { .. }) => {}
            Err(err) => return Err(err.into()),
        }
        let mut tx = app.db.begin().await?;
        refuse_identity(app, &mut tx, &ctx, &found).await?;
        app.queue.commit(tx).await?;
        drift.refused.push(share);
    }
    // The account's seats as plex.tv counts them (once per hour per account, not per server).
    crate::services::seats::refresh_seats(app, owner.owner_account_id, false).await?;
    Ok(drift)
}
