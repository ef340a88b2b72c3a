//! The everyday lifecycle (PRODUCT.md "Everyday lifecycle"): what happens on the clock after a
//! payment, run by an hourly sweep.
//!
//! Rules it keeps:
//! - **Access removed within the hour** after the paid time ends: the sweep queues a suspend job
//!   per share, which deletes the shared server on plex.tv (plex.tv has no share without
//!   libraries: an empty library list means *all* of them) and keeps the share row as
//!   `suspended`, holding the subscriber's place on that server.
//! - **Share deleted after N days** (setting `share_grace_days`): a suspended share older than that
//!   is released (marked removed), and its place counts as free again.
//! - **A renewal cancels the removal**: every job re-checks at run time, so a payment that lands
//!   between the sweep and the job leaves the share alone; a payment after the removal gives the
//!   access back on the same server (the place was kept), at once, and the sweep does the same
//!   for anyone it finds active with a suspended share.
//! - **Reminders** N days before the end (setting `reminder_days`, e.g. `3,1`) by DM and email,
//!   once per (paid end, day); only the nearest due day is sent when the sweep runs late; none when
//!   already renewed (the end moved) or renewing automatically at a provider, and a reminder
//!   queued before a renewal is dropped at delivery.
//! - **Discord roles** (`discord.subscriber_role_ids`) are given on payment and taken when the paid
//!   time ends, by a job that reads the subscriber's standing when it runs, so jobs that race end
//!   in the right state.
//! - Only subscribers who have paid are expired: a subscriber added by hand without any payment is
//!   left to the admins. Permanent subscribers never expire.
//! - Everything the sweep finds is queued in one transaction with idempotency keys named after the
//!   paid end (or the suspension time), so sweeps that overlap, repeat or restart add nothing.

use chrono::{DateTime, Duration, Utc};

use crate::app::App;
use crate::domain::{Actor, DiscordId, SubscriberId};
use crate::integrations::discord::DiscordError;
use crate::jobs::{InviteShare, LifecycleSweep, ReleaseShare, SuspendShare, SyncRoles};
use crate::services::StepError;
use crate::services::notify::{self, Kind};
use crate::services::settings;
use crate::store::lifecycle::{self as store, Ending};
use crate::store::{Tx, audit, subscribers};

/// What one sweep queued or changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Swept {
    /// Shares whose access removal was queued.
    pub suspended: usize,
    /// Shares given their access back.
    pub restored: usize,
    /// Suspended shares past the grace days, queued for deletion.
    pub released: usize,
    /// Reminders queued (a DM and an email count as one).
    pub reminded: usize,
    /// Role changes queued.
    pub roles: usize,
}

/// Queues the sweep once per `period` label (the hour).
pub async fn enqueue_sweep(app: &App, tx: &mut Tx, period: &str) -> Result<bool, sqlx::Error> {
    app.queue.enqueue(tx, &LifecycleSweep::new(period)).await
}

/// A stable label of a paid end for idempotency keys ("none" when the only payment was
/// refunded).
fn end_label(end: Option<DateTime<Utc>>) -> String {
    end.map_or_else(|| "none".to_owned(), |t| t.timestamp_micros().to_string())
}

/// How a date is written to subscribers.
pub fn human_date(at: DateTime<Utc>) -> String {
    at.format("%-d %B %Y, %H:%M UTC").to_string()
}

/// Whether subscriber roles are configured and a bot is there to give them.
pub fn roles_configured(app: &App) -> bool {
    app.discord.is_some()
        && app.settings.discord.subscriber_guild_id.is_some()
        && !app.settings.discord.subscriber_role_ids.is_empty()
}

/// Queues a role job for the subscriber, once per `event`; nothing when roles are not configured.
pub async fn enqueue_role_sync(
    app: &App,
    tx: &mut Tx,
    subscriber: SubscriberId,
    event: &str,
) -> Result<bool, sqlx::Error> {
    if !roles_configured(app) {
        return Ok(false);
    }
    app.queue
        .enqueue(tx, &SyncRoles::new(subscriber, event))
        .await
}

/// Gives back the library access of the subscriber's suspended shares (active again, not
/// flagged), in the caller's transaction: each is pending again with its invite queued. Returns
/// how many.
pub async fn restore_access(
    app: &App,
    tx: &mut Tx,
    subscriber: SubscriberId,
) -> anyhow::Result<usize> {
    let now = app.clock.now();
    let due = store::find_restorable_shares(tx, now, Some(subscriber)).await?;
    restore(app, tx, &due).await
}

async fn restore(app: &App, tx: &mut Tx, due: &[store::ShareDue]) -> anyhow::Result<usize> {
    let now = app.clock.now();
    let mut restored = 0;
    for share in due {
        let id = share.id;
        if !store::update_share_restored(tx, id, now).await? {
            continue;
        }
        let generation = format!("restore-{}", end_label(share.suspended_at));
        let owner = share.owner_account_id;
        app.queue
            .enqueue(tx, &InviteShare::new(id, owner, &generation))
            .await?;
        let subscriber = share.subscriber_id;
        let detail = serde_json::json!({ "share": share.id, "suspended_at": share.suspended_at });
        audit::insert_audit(
            tx,
            &Actor::System,
            Some(subscriber),
            "share.access_restored",
            &detail,
            now,
        )
        .await?;
        restored += 1;
    }
    Ok(restored)
}

/// The hourly sweep: queues what the clock made due (see the module rules).
pub async fn sweep(app: &App) -> anyhow::Result<Swept> {
    let now = app.clock.now();
    let mut tx = app.db.begin().await?;
    let config = settings::lifecycle_in(&mut tx).await?;
    let mut swept = Swept::default();

    // Access ends: one suspend job per share, one "expired" DM per subscriber and paid end.
    let lapsed = store::find_lapsed_shares(&mut tx, now).await?;
    for share in &lapsed {
        let end = end_label(share.ended_at);
        let owner = share.owner_account_id;
        let id = share.id;
        if app
            .queue
            .enqueue(&mut tx, &SuspendShare::new(id, owner, &end))
            .await?
        {
            swept.suspended += 1;
        }
        let subscriber = share.subscriber_id;
        let ended = share.ended_at.unwrap_or(now);
        let kept_until = now + Duration::days(i64::from(config.share_grace_days));
        let detail = serde_json::json!({
            "plan_name": share.plan_name.clone().unwrap_or_default(),
            "ended_on": human_date(ended),
            "grace_days": config.share_grace_days,
            "kept_until": human_date(kept_until),
        });
        notify::enqueue_dm(
            app,
            &mut tx,
            subscriber,
            Kind::Expired,
            &detail,
            &format!("ended-{end}"),
        )
        .await?;
    }

    // Lapsed subscribers: no longer waiting for room, and their roles go.
    for sub in store::find_lapsed_subscribers(&mut tx, now).await? {
        let id = sub.id;
        if sub.waiting {
            subscribers::update_waiting_for_room(&mut tx, id, false, now).await?;
        }
        if sub.role_granted
            && enqueue_role_sync(
                app,
                &mut tx,
                id,
                &format!("lapsed-{}", end_label(sub.ended_at)),
            )
            .await?
        {
            swept.roles += 1;
        }
    }

    // Active again with a suspended share (paid after the removal): access comes back.
    let restorable = store::find_restorable_shares(&mut tx, now, None).await?;
    swept.restored = restore(app, &mut tx, &restorable).await?;

    // Suspended past the grace days: the share is deleted and the place freed.
    let cutoff = now - Duration::days(i64::from(config.share_grace_days));
    for share in store::find_suspensions_over(&mut tx, now, cutoff).await? {
        let owner = share.owner_account_id;
        let generation = end_label(share.suspended_at);
        let release = ReleaseShare::new(share.id, owner, &generation);
        if app.queue.enqueue(&mut tx, &release).await? {
            swept.released += 1;
        }
    }

    // Reminders.
    if let Some(furthest) = config.reminder_days.first() {
        let horizon = now + Duration::days(i64::from(*furthest));
        for ending in store::find_ending(&mut tx, now, horizon).await? {
            if remind(app, &mut tx, &config.reminder_days, &ending, now).await? {
                swept.reminded += 1;
            }
        }
    }

    // Active without the roles (e.g. active before the roles were configured).
    if roles_configured(app) {
        for due in store::find_role_grants_due(&mut tx, now).await? {
            let event = format!("active-{}", end_label(due.ended_at));
            if enqueue_role_sync(app, &mut tx, due.id, &event).await? {
                swept.roles += 1;
            }
        }
    }

    app.queue.commit(tx).await?;
    if swept != Swept::default() {
        tracing::info!(?swept, "lifecycle sweep");
    }
    Ok(swept)
}

/// Queues the reminder due for one ending subscriber: the nearest configured day whose time has
/// come (so a late sweep sends one reminder, not several). True when one was queued now.
async fn remind(
    app: &App,
    tx: &mut Tx,
    days: &[u32],
    ending: &Ending,
    now: DateTime<Utc>,
) -> anyhow::Result<bool> {
    let left = ending.ended_at - now;
    let Some(day) = days
        .iter()
        .copied()
        .filter(|d| left <= Duration::days(i64::from(*d)))
        .min()
    else {
        return Ok(false);
    };
    let subscriber = ending.id;
    // Whole days left, rounded up: "ends in 3 days" two hours after the 3-day mark is still true
    // to the day, and the date is written next to it.
    let days_left = (left.num_minutes() + 24 * 60 - 1) / (24 * 60);
    let detail = serde_json::json!({
        "plan_name": ending.plan_name.clone().unwrap_or_default(),
        "days": days_left.max(1),
        "ends_on": human_date(ending.ended_at),
        "ends_at": ending.ended_at,
    });
    let event = format!("{}-{day}", end_label(Some(ending.ended_at)));
    let queued = notify::enqueue_dm(app, tx, subscriber, Kind::Reminder, &detail, &event).await?;
    if let Some(email) = &ending.contact_email {
        notify::enqueue_email(app, tx, subscriber, Kind::Reminder, email, &detail, &event).await?;
    }
    Ok(queued)
}

/// The role job: gives the configured roles to an active subscriber and takes them from one who
/// is not, whatever queued it.
pub async fn sync_roles(app: &App, subscriber: SubscriberId) -> Result<(), StepError> {
    let (Some(discord), Some(guild)) = (&app.discord, app.settings.discord.subscriber_guild_id)
    else {
        return Ok(()); // Roles were unconfigured since: nothing to do.
    };
    let now = app.clock.now();
    let (standing, row) = {
        let mut tx = app.db.read().await?;
        let standing = store::find_standing(&mut tx, subscriber, now).await?;
        let row = subscribers::find_subscriber(&mut tx, subscriber).await?;
        (standing, row)
    };
    let (Some(standing), Some(row)) = (standing, row) else {
        return Err(StepError::Impossible(anyhow::anyhow!(
            "subscriber {subscriber} no longer exists"
        )));
    };
    let Some(user) = row.discord_id.map(DiscordId::get) else {
        return Ok(()); // Unclaimed (imported): no Discord member to give roles to yet.
    };
    let mut member = true;
    for role in &app.settings.discord.subscriber_role_ids {
        let result = if standing.active {
            discord.add_role(guild, user, *role).await
        } else {
            discord.remove_role(guild, user, *role).await
        };
        match result {
            Ok(()) => {}
            Err(DiscordError::NotAMember) => {
                member = false; // Left the guild (or never joined): nothing to give or take.
                break;
            }
            Err(DiscordError::Transient(why)) => {
                return Err(StepError::Temporary(anyhow::anyhow!(why)));
            }
            Err(err) => {
                // Missing permissions or an unknown role: an admin must fix the bot's role.
                return Err(StepError::NeedsAdmin(anyhow::anyhow!(
                    "changing role {role}: {err}; give the bot Manage Roles, put its role above the subscriber roles, and check discord.subscriber_role_ids"
                )));
            }
        }
    }
    let granted = standing.active && member;
    let mut tx = app.db.begin().await?;
    store::update_role_granted(&mut tx, subscriber, granted).await?;
    let action = if granted {
        "discord.roles_given"
    } else {
        "discord.roles_taken"
    };
    let detail = serde_json::json!({ "member": member, "active": standing.active });
    audit::insert_audit(
        &mut tx,
        &Actor::System,
        Some(subscriber),
        action,
        &detail,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
