//! Free trials (PRODUCT.md "Getting in"; settings `trials`, `trial_hours`, `trial_plan`,
//! `max_active_trials`).
//!
//! Rules it keeps:
//! - One trial per Discord member and per plex.tv account, ever: a grant is unique per subscriber
//!   and per identity, and an account whose any identity (retired and banned ones included, by
//!   email, username or plex.tv id) had one gets none. An account whose plex.tv id is learnt only
//!   when its invite is answered, and turns out to be one used here before, is refused there
//!   ([`plex_sync`](crate::services::plex_sync)), and its trial ends at once ([`end_refused_in`]).
//! - Trials are for newcomers: not for someone with access, nor for someone who paid before.
//! - A trial is time on the trial plan, recorded like any paid time (a `manual` payment with
//!   reference `trial`, no receipt), placed only on servers that allow trials; it ends exactly
//!   like a paid period ends. Nothing is written when no such server has room.
//! - A payment on a paid plan converts it ([`convert_in`]): a share on a server that would take the
//!   paid plan stays and gets the plan's libraries; one on a server that would not (a trial-only
//!   server) keeps its access until a new share on a server that takes the plan is accepted on
//!   plex.tv, then it is removed — never a moment without access, never two shares left.

use anyhow::Context as _;
use chrono::{DateTime, Duration, Utc};

use crate::app::App;
use crate::domain::{
    Actor, DiscordId, NotificationKind, PlanId, ServerId, ShareState, SubscriberId,
};
use crate::jobs::{InviteShare, RemoveShare, UpdateShare};
use crate::services::notify;
use crate::services::payments::{self, Coverage, ManualPayment, ManualPaymentError};
use crate::services::placement::{self, SubscriberContext};
use crate::services::settings;
use crate::services::shares::{load_candidates, plan_needs};
use crate::store::subscribers::{self, AccountKeys};
use crate::store::{Tx, audit, is_unique_violation, servers, shares, trials};

/// Why a trial was refused; each is a message for the member, and nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum TrialError {
    /// Trials are off (or have no plan).
    #[error("free trials are not offered here right now; `/subscribe` shows the plans")]
    Off,
    /// Not joined.
    #[error("join first with `/join`, then start your trial")]
    NotJoined,
    /// Flagged.
    #[error("your Plex account must be changed first: run `/plex change-account`")]
    Flagged,
    /// No Plex account on file.
    #[error("there is no Plex account on file for you; ask the admins")]
    NoPlexAccount,
    /// The member had theirs.
    #[error("you have had your free trial already; `/subscribe` to carry on")]
    Taken,
    /// The Plex account had one (under any email).
    #[error("this Plex account has had a free trial here already; `/subscribe` to carry on")]
    AccountTaken,
    /// They have access now.
    #[error("you have access already, so there is nothing to try: `/account` shows until when")]
    HasAccess,
    /// They paid before.
    #[error("free trials are for new members; `/subscribe` to come back")]
    PaidBefore,
    /// The limit of running trials is reached.
    #[error("all free trial places are taken right now; try again in a few days, or `/subscribe`")]
    Full,
    /// No server that takes trials has room.
    #[error("no server has room for a trial right now; try again later, or `/subscribe`")]
    NoRoom,
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// A trial started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialStarted {
    /// When it ends.
    pub ends_at: DateTime<Utc>,
    /// The trial plan's name.
    pub plan: String,
    /// The server the invite goes to.
    pub server: Option<String>,
}

/// Starts the member's free trial: checks every rule, records the grant and the trial's time on
/// the trial plan, and queues the invite to a server that allows trials — one transaction.
pub async fn start_trial(app: &App, member: DiscordId) -> Result<TrialStarted, TrialError> {
    let now = app.clock.now();
    let mut tx = app.db.begin().await?;
    let setting = settings::trials_in(&mut tx).await?;
    let (true, Some(plan)) = (setting.on, setting.plan) else {
        return Err(TrialError::Off);
    };
    let subscriber = subscribers::find_id_by_discord(&mut tx, member)
        .await?
        .ok_or(TrialError::NotJoined)?;
    payments::lock_subscriber_in(&mut tx, subscriber).await?;
    check_eligible(&mut tx, subscriber, now).await?;
    if setting.max_active > 0
        && trials::find_running_count(&mut tx, now).await? >= setting.max_active
    {
        return Err(TrialError::Full);
    }
    let identity = subscribers::find_active_identity(&mut tx, subscriber)
        .await?
        .ok_or(TrialError::NoPlexAccount)?;
    // Nothing is written when no server that takes trials has room.
    let needs = plan_needs(&mut tx, plan).await?.ok_or(TrialError::Off)?;
    let candidates = load_candidates(&mut tx, app.settings.plex.seats_per_account).await?;
    if placement::place_one(&candidates, &SubscriberContext::default(), &needs).is_err() {
        return Err(TrialError::NoRoom);
    }
    let ends_at = now + Duration::hours(setting.hours);
    match trials::insert_trial(&mut tx, subscriber, identity.id, plan, (now, ends_at)).await {
        Ok(()) => {}
        Err(err) if is_unique_violation(&err) => return Err(TrialError::Taken),
        Err(err) => return Err(err.into()),
    }
    subscribers::update_subscriber_plan(&mut tx, subscriber, Some(plan), now).await?;
    let manual = ManualPayment {
        subscriber,
        plan,
        coverage: Coverage::Until(ends_at),
        transaction: Some(format!("trial-{subscriber}")),
        amount: None,
        note: None,
        reference: Some("trial".into()),
    };
    let paid = payments::record_manual_payment_in(app, &mut tx, &Actor::Member(member), &manual)
        .await
        .map_err(|err| match err {
            ManualPaymentError::Unexpected(err) => TrialError::Unexpected(err),
            other => TrialError::Unexpected(anyhow::anyhow!("recording a trial: {other}")),
        })?;
    let server = match shares::find_live_shares_of(&mut tx, subscriber)
        .await?
        .first()
    {
        Some(share) => servers::find_server(&mut tx, share.server_id)
            .await?
            .map(|s| s.name),
        None => None,
    };
    let detail = serde_json::json!({ "plan": plan, "ends_at": ends_at, "identity": identity.id });
    audit::insert_audit(
        &mut tx,
        &Actor::Subscriber(subscriber),
        Some(subscriber),
        "trial.started",
        &detail,
        now,
    )
    .await?;
    app.queue.commit(tx).await?;
    Ok(TrialStarted {
        ends_at,
        plan: paid.plan,
        server,
    })
}

/// The trial rules about the person (not the limits), in the caller's transaction.
async fn check_eligible(
    tx: &mut Tx,
    subscriber: SubscriberId,
    now: DateTime<Utc>,
) -> Result<(), TrialError> {
    let row = subscribers::find_status(tx, subscriber, now)
        .await?
        .context("the subscriber exists")?;
    if row.requires_plex_change {
        return Err(TrialError::Flagged);
    }
    if trials::find_trial(tx, subscriber).await?.is_some() {
        return Err(TrialError::Taken);
    }
    if row.permanent {
        return Err(TrialError::HasAccess);
    }
    let identity = subscribers::find_active_identity(tx, subscriber)
        .await?
        .ok_or(TrialError::NoPlexAccount)?;
    let keys = AccountKeys {
        email: &identity.email_norm,
        plex_user_id: identity.plex_user_id,
        username: identity.plex_username.as_deref(),
    };
    if trials::find_account_had_trial(tx, &keys).await? {
        return Err(TrialError::AccountTaken);
    }
    match payments::paid_end_in(tx, subscriber).await? {
        Some(end) if end > now => Err(TrialError::HasAccess),
        Some(_) => Err(TrialError::PaidBefore),
        None => Ok(()),
    }
}

/// A payment on `plan` was applied for `subscriber`: when it is a paid plan after their trial,
/// converts the trial (see the module rules) in the caller's transaction. True when their access
/// was dealt with here (the caller places nobody); false when the usual path applies (no trial,
/// no live share, or only a paused one on a server that takes the plan).
pub async fn convert_in(
    app: &App,
    tx: &mut Tx,
    subscriber: SubscriberId,
    plan: PlanId,
    preferred_location: &Option<String>,
) -> anyhow::Result<bool> {
    let now = app.clock.now();
    match trials::find_trial(tx, subscriber).await? {
        Some(trial) if trial.converted_at.is_none() => {}
        _ => return Ok(false),
    }
    // The trial's own time is on the trial plan: that is no conversion.
    if servers::find_plan_trial(tx, plan).await? != Some(false) {
        return Ok(false);
    }
    trials::update_converted(tx, subscriber, now).await?;
    let Some(needs) = plan_needs(tx, plan).await? else {
        return Ok(false);
    };
    let Some(identity) = subscribers::find_active_identity(tx, subscriber).await? else {
        return Ok(false);
    };
    let candidates = load_candidates(tx, app.settings.plex.seats_per_account).await?;
    let mut handled = false;
    let mut moves = Vec::new();
    for share in shares::find_live_shares_of(tx, subscriber).await? {
        let stays = candidates
            .iter()
            .find(|c| c.id == share.server_id)
            .is_some_and(|c| placement::converts_in_place(c, &needs));
        if stays && !share.suspended {
            // Same server: the paid plan's libraries at once.
            let update =
                UpdateShare::new(share.id, share.owner_account_id, &format!("trial-{now}"));
            app.queue.enqueue(tx, &update).await?;
            handled = true;
        } else if stays {
            // Paused on a server that takes the plan: the usual restore gives it back.
        } else if share.suspended {
            // No access to keep: it goes, and the usual placement finds a server.
            shares::update_share_removed(tx, share.id, now).await?;
            let remove = RemoveShare::new(share.id, share.owner_account_id, "trial-converted");
            app.queue.enqueue(tx, &remove).await?;
        } else {
            moves.push(share);
        }
    }
    for old in moves {
        handled = true;
        let others: Vec<_> = candidates
            .iter()
            .filter(|c| c.id != old.server_id)
            .cloned()
            .collect();
        let context = SubscriberContext {
            current: None,
            previous: Vec::new(),
            preferred_location: preferred_location.clone(),
            // The old share holds a seat on its account until the new one is accepted.
            seated_on: vec![old.owner_account_id],
        };
        match placement::place_one(&others, &context, &needs) {
            Ok(placed) => {
                let server: ServerId = placed.server();
                let owner = others
                    .iter()
                    .find(|c| c.id == server)
                    .map(|c| c.owner)
                    .context("a placed server is a candidate")?;
                let new = shares::insert_share(
                    tx,
                    subscriber,
                    server,
                    identity.id,
                    ShareState::Pending,
                    now,
                )
                .await?;
                shares::update_share_replaced_by(tx, old.id, new, now).await?;
                app.queue
                    .enqueue(tx, &InviteShare::new(new, owner, "1"))
                    .await?;
                let detail =
                    serde_json::json!({ "from_share": old.id, "to_share": new, "server": server });
                audit::insert_audit(
                    tx,
                    &Actor::System,
                    Some(subscriber),
                    "trial.moved",
                    &detail,
                    now,
                )
                .await?;
            }
            Err(no_fit) => {
                // They keep the trial server's access; the admins find them a place.
                let detail = serde_json::json!({
                    "plex_account": identity.email_norm.as_str(), "plan": plan,
                    "reason": no_fit.to_string(),
                });
                notify::enqueue_admin_alert(
                    app,
                    tx,
                    Some(subscriber),
                    NotificationKind::AdminNoRoom,
                    &detail,
                    &format!("trial-move-{}", old.id),
                )
                .await?;
            }
        }
    }
    let detail = serde_json::json!({ "plan": plan });
    audit::insert_audit(
        tx,
        &Actor::System,
        Some(subscriber),
        "trial.converted",
        &detail,
        now,
    )
    .await?;
    Ok(handled)
}

/// The share `accepted` was accepted on plex.tv: shares it replaces (a converted trial's) are
/// removed now, in the caller's transaction. Returns how many.
pub async fn finish_replacements_in(
    app: &App,
    tx: &mut Tx,
    accepted: crate::domain::ShareId,
) -> anyhow::Result<usize> {
    let now = app.clock.now();
    let old = shares::find_replaced_by(tx, accepted).await?;
    for share in &old {
        shares::update_share_removed(tx, share.id, now).await?;
        if share.owner_state == crate::domain::OwnerAccountState::Active {
            let remove = RemoveShare::new(share.id, share.owner_account_id, "replaced");
            app.queue.enqueue(tx, &remove).await?;
        } else {
            shares::update_share_unshared(tx, share.id, now).await?;
        }
    }
    Ok(old.len())
}

/// The identity a trial ran on was refused (its plex.tv account turned out to be one used here
/// before): the trial ends now, in the caller's transaction.
pub async fn end_refused_in(
    tx: &mut Tx,
    subscriber: SubscriberId,
    identity: crate::domain::PlexIdentityId,
    now: DateTime<Utc>,
) -> anyhow::Result<bool> {
    let Some(trial) = trials::find_trial(tx, subscriber).await? else {
        return Ok(false);
    };
    if trial.identity_id != identity || trial.converted_at.is_some() || trial.ends_at <= now {
        return Ok(false);
    }
    trials::update_ended(tx, subscriber, now).await?;
    payments::keep_paid_time_in(tx, subscriber, Duration::zero(), now).await?;
    Ok(true)
}
