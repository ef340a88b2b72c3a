//! Who gets a share: placing a subscriber on a server and queueing the invite, the self re-invite
//! ("Re-invite me"), and retrying subscribers who waited for a server with room.
//!
//! Rules it keeps (PRODUCT.md "Server placement", "Ban recovery" 5, "Everyday lifecycle"):
//! - A share is made and its invite job queued in the caller's transaction, or nothing happens.
//! - When nothing fits, the subscriber is marked waiting (and the caller tells them and the
//!   admins); the hourly placement retries exactly the waiting ones, spreading them over servers.
//! - A flagged subscriber is never re-invited, and only a paid-up one is.

use std::collections::BTreeMap;

use anyhow::Context as _;

use crate::app::App;
use crate::domain::{Actor, PlanId, PlexIdentityId, ServerId, ShareState, SubscriberId};
use crate::jobs::{InviteShare, PlaceWaiting};
use crate::services::lifecycle;
use crate::services::notify::{self, Kind};
use crate::services::placement::{self, Placement, SubscriberContext};
use crate::services::shares::{load_candidates, plan_needs};
use crate::store::{Tx, audit, servers, shares, subscribers};

/// Places the subscriber on `plan` and queues the invite of `identity` there. `Ok(Err(reason))`
/// when nothing fits: the subscriber is then marked waiting for room, and the caller tells them.
pub async fn place_and_invite(
    app: &App,
    tx: &mut Tx,
    subscriber: SubscriberId,
    identity: PlexIdentityId,
    plan: PlanId,
    previous: Vec<ServerId>,
    preferred_location: Option<String>,
) -> anyhow::Result<Result<ServerId, String>> {
    let now = app.clock.now();
    let candidates = load_candidates(tx, app.settings.plex.seats_per_account).await?;
    let Some(needs) = plan_needs(tx, plan).await? else {
        return Ok(Err("the plan no longer exists".into()));
    };
    let seated_on = shares::find_live_shares_of(tx, subscriber)
        .await?
        .into_iter()
        .map(|s| s.owner_account_id)
        .collect();
    let context = SubscriberContext {
        current: None,
        previous,
        preferred_location,
        seated_on,
    };
    match placement::place_one(&candidates, &context, &needs) {
        Ok(Placement::Place(server) | Placement::Keep(server)) => {
            let owner = candidates
                .iter()
                .find(|c| c.id == server)
                .map(|c| c.owner)
                .context("placed server is a candidate")?;
            let share =
                shares::insert_share(tx, subscriber, server, identity, ShareState::Pending, now)
                    .await?;
            app.queue
                .enqueue(tx, &InviteShare::new(share, owner, "1"))
                .await?;
            subscribers::update_waiting_for_room(tx, subscriber, false, now).await?;
            Ok(Ok(server))
        }
        Err(no_fit) => {
            let detail = serde_json::json!({ "plan": plan, "reason": no_fit.to_string() });
            audit::insert_audit(
                tx,
                &Actor::System,
                Some(subscriber),
                "placement.no_fit",
                &detail,
                now,
            )
            .await?;
            subscribers::update_waiting_for_room(tx, subscriber, true, now).await?;
            tracing::warn!(subscriber = %subscriber, reason = %no_fit, "no server has room");
            Ok(Err(no_fit.to_string()))
        }
    }
}

/// Why "Re-invite me" was refused; each is a message for the subscriber.
#[derive(Debug, thiserror::Error)]
pub enum ReinviteError {
    /// Not a subscriber.
    #[error("you are not a subscriber here yet")]
    NotSubscriber,
    /// Flagged: the account change comes first.
    #[error(
        "your Plex account must be changed first; use \"Change your Plex account\" and you will be invited on the new one"
    )]
    Flagged,
    /// Not paid up.
    #[error("your subscription is not active; renew it first and you will be invited")]
    NotActive,
    /// No plan on file.
    #[error("you have no plan yet; ask the admins")]
    NoPlan,
    /// No Plex account on file.
    #[error("there is no Plex account on file for you; ask the admins")]
    NoPlexAccount,
    /// An invite is waiting.
    #[error(
        "your invite to {0} is still waiting: accept it at https://app.plex.tv (Settings → Manage Library Access) or in the Plex app"
    )]
    InvitePending(String),
    /// Access is there.
    #[error(
        "you already have access to {0}; if you cannot see it, sign out of Plex and back in, then ask the admins"
    )]
    HasAccess(String),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// What "Re-invite me" did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reinvited {
    /// An invite to this server is on its way.
    Invited(String),
    /// No server has room for the plan; the admins were told and the hourly placement retries.
    Waiting(String),
}

/// "Re-invite me": a paid-up, unflagged subscriber without a live share is placed and invited
/// again, on a server they used before when it has room.
pub async fn reinvite(
    app: &App,
    actor: &Actor,
    subscriber: SubscriberId,
) -> Result<Reinvited, ReinviteError> {
    let now = app.clock.now();
    let mut tx = app.db.begin().await?;
    let status = subscribers::find_status(&mut tx, subscriber, now)
        .await?
        .ok_or(ReinviteError::NotSubscriber)?;
    if status.requires_plex_change {
        return Err(ReinviteError::Flagged);
    }
    if !(status.permanent || status.paid_now) {
        return Err(ReinviteError::NotActive);
    }
    if let Some(server) = status.server {
        return Err(if status.share_state == Some(ShareState::Accepted) {
            ReinviteError::HasAccess(server)
        } else {
            ReinviteError::InvitePending(server)
        });
    }
    // A share whose access was removed when the paid time ended keeps its place: give it back.
    if lifecycle::restore_access(app, &mut tx, subscriber).await? > 0 {
        let server = subscribers::find_status(&mut tx, subscriber, now)
            .await?
            .and_then(|s| s.server)
            .unwrap_or_default();
        let detail = serde_json::json!({ "outcome": "restored", "server": server });
        audit::insert_audit(
            &mut tx,
            actor,
            Some(subscriber),
            "access.reinvite",
            &detail,
            now,
        )
        .await?;
        app.queue.commit(tx).await?;
        return Ok(Reinvited::Invited(server));
    }
    let row = subscribers::find_subscriber(&mut tx, subscriber)
        .await?
        .ok_or(ReinviteError::NotSubscriber)?;
    let plan = row.plan_id.ok_or(ReinviteError::NoPlan)?;
    let identity = subscribers::find_active_identity(&mut tx, subscriber)
        .await?
        .ok_or(ReinviteError::NoPlexAccount)?;
    let previous = shares::find_previous_servers(&mut tx, subscriber).await?;
    let placed = place_and_invite(
        app,
        &mut tx,
        subscriber,
        identity.id,
        plan,
        previous,
        row.preferred_location,
    )
    .await?;
    let plan_name = servers::find_plan_name(&mut tx, plan)
        .await?
        .unwrap_or_default();
    let outcome = match placed {
        Ok(server) => {
            let name = servers::find_server(&mut tx, server)
                .await?
                .map(|s| s.name)
                .unwrap_or_default();
            Reinvited::Invited(name)
        }
        Err(reason) => {
            let detail = serde_json::json!({
                "plex_account": identity.email_norm, "plan_name": plan_name, "reason": reason,
            });
            let event = format!("reinvite-{subscriber}-{}", now.timestamp());
            notify::enqueue_admin_alert(
                app,
                &mut tx,
                Some(subscriber),
                Kind::AdminNoRoom,
                &detail,
                &event,
            )
            .await?;
            Reinvited::Waiting(plan_name)
        }
    };
    let detail = serde_json::json!({ "outcome": format!("{outcome:?}") });
    audit::insert_audit(
        &mut tx,
        actor,
        Some(subscriber),
        "access.reinvite",
        &detail,
        now,
    )
    .await?;
    app.queue.commit(tx).await?;
    Ok(outcome)
}

/// Queues a run of [`place_waiting`] keyed by `period` (the hour, or an admin change's stamp), so
/// repeated ticks add nothing; queues nothing while nobody waits.
pub async fn enqueue_place_waiting(
    app: &App,
    tx: &mut Tx,
    period: &str,
) -> Result<bool, sqlx::Error> {
    if !subscribers::find_anyone_waiting_for_room(tx).await? {
        return Ok(false);
    }
    app.queue.enqueue(tx, &PlaceWaiting::new(period)).await
}

/// Places the subscribers waiting for room who may be invited now (paid up or permanent, not
/// flagged, a Plex account and a plan, no live share), as one cohort per plan so they spread over
/// the servers with room. Returns how many were invited. Those who still do not fit stay waiting.
pub async fn place_waiting(app: &App) -> anyhow::Result<usize> {
    let now = app.clock.now();
    let mut tx = app.db.begin().await?;
    let waiting = subscribers::find_waiting_for_room(&mut tx, now).await?;
    if waiting.is_empty() {
        return Ok(0);
    }
    let mut candidates = load_candidates(&mut tx, app.settings.plex.seats_per_account).await?;
    let mut by_plan: BTreeMap<PlanId, Vec<&subscribers::WaitingRow>> = BTreeMap::new();
    for row in &waiting {
        by_plan.entry(row.plan_id).or_default().push(row);
    }
    let mut invited = 0;
    for (plan, rows) in by_plan {
        let Some(needs) = plan_needs(&mut tx, plan).await? else {
            continue;
        };
        let mut requests = Vec::with_capacity(rows.len());
        for row in &rows {
            let previous = shares::find_previous_servers(&mut tx, row.id).await?;
            let context = SubscriberContext {
                current: None,
                previous,
                preferred_location: row.preferred_location.clone(),
                seated_on: Vec::new(),
            };
            requests.push((context, needs.clone()));
        }
        let placed = placement::place_cohort(&candidates, &requests);
        for (row, result) in rows.iter().zip(placed) {
            let Ok(Placement::Place(server) | Placement::Keep(server)) = result else {
                continue;
            };
            let subscriber = row.id;
            let owner = candidates
                .iter()
                .find(|c| c.id == server)
                .map(|c| c.owner)
                .context("placed server is a candidate")?;
            let share = shares::insert_share(
                &mut tx,
                subscriber,
                server,
                row.identity_id,
                ShareState::Pending,
                now,
            )
            .await?;
            app.queue
                .enqueue(&mut tx, &InviteShare::new(share, owner, "1"))
                .await?;
            subscribers::update_waiting_for_room(&mut tx, subscriber, false, now).await?;
            let server_name = servers::find_server(&mut tx, server).await?.map(|s| s.name);
            let detail = serde_json::json!({ "plex_account": row.email_norm, "server_name": server_name, "waited": true });
            let event = format!("placed-{share}");
            notify::enqueue_dm(app, &mut tx, subscriber, Kind::Invited, &detail, &event).await?;
            audit::insert_audit(
                &mut tx,
                &Actor::System,
                Some(subscriber),
                "access.placed_after_wait",
                &serde_json::json!({ "server": server, "share": share }),
                now,
            )
            .await?;
            invited += 1;
        }
        // Later plans see the users this plan just added.
        candidates = load_candidates(&mut tx, app.settings.plex.seats_per_account).await?;
    }
    app.queue.commit(tx).await?;
    Ok(invited)
}
