//! Telling people things: DMs to subscribers, emails, and alerts to the admins' channel.
//!
//! A notification is a row (`notification`) made in the same transaction as the change it reports,
//! plus a job that delivers it. Delivery is at most once per row: the job finishes the row, and a
//! DM carries the row as Discord's `nonce` with `enforce_nonce`, so a retry after a crash between
//! "sent" and "recorded" does not post twice.
//!
//! Rules it keeps:
//! - A DM that Discord refuses with 50007 (DMs closed) is recorded as `dm_closed` for the recovery
//!   board and, when configured, the subscriber is mentioned in the fallback channel (without the
//!   message itself: that channel is public).
//! - Buttons carry a signed `custom_id` with no expiry, so they work after restarts; the Discord
//!   door checks the signature and that the clicker is the subscriber it was made for.

use anyhow::Context as _;
use chrono::{DateTime, Utc};

use crate::app::App;
use crate::domain::SubscriberId;
use crate::integrations::discord::{Button, DiscordError, OutgoingMessage};
use crate::integrations::email::MailError;
use crate::jobs::{ClaimedJob, JobError, NewJob};
use crate::store::Tx;
use crate::store::lifecycle;
use crate::store::notifications::{self, NewNotification, NotificationRow};

/// Job kind: deliver one notification.
pub const DELIVER: &str = "notify.deliver";
/// Job kind: make the flag notifications of a confirmed bulk flag, a batch at a time.
pub const FLAG_FANOUT: &str = "notify.flag_fanout";
/// Signature purpose of the "Change my Plex account" button.
pub const CHANGE_BUTTON_PURPOSE: &str = "change-account";
/// Subscribers handled per fan-out step.
pub const FANOUT_BATCH: i64 = 500;

/// What a notification says; each names its template(s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// "Your Plex account must change" (DM with the button).
    Flagged,
    /// "Your Plex account is now X; accept the invite" (DM and email).
    ChangeConfirmed,
    /// "Your account changed but no server has room yet" (DM).
    WaitingForRoom,
    /// Admins: a re-invite found no server with room.
    AdminNoRoom,
    /// "A server had room: accept the invite to X" (DM), after waiting for room.
    Invited,
    /// "Your subscription ends in N days" (DM and email); not sent once renewed.
    Reminder,
    /// "Your subscription ended; access removed; your place is kept until …" (DM).
    Expired,
    /// "We received your payment; paid until …" (DM).
    Receipt,
    /// "Your renewal payment failed; the provider retries; update your payment method" (DM).
    PaymentFailed,
    /// "Your payment was refunded (or reversed); your paid time is now …" (DM).
    Refunded,
}

impl Kind {
    /// The template name (under `dms/` as `.md.j2`, under `emails/` as `.txt.j2` + `.html.j2`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Flagged => "flagged",
            Self::ChangeConfirmed => "change_confirmed",
            Self::WaitingForRoom => "waiting_for_room",
            Self::AdminNoRoom => "admin_no_room",
            Self::Invited => "invited",
            Self::Reminder => "reminder",
            Self::Expired => "expired",
            Self::Receipt => "receipt",
            Self::PaymentFailed => "payment_failed",
            Self::Refunded => "refunded",
        }
    }
}

/// `custom_id` of the DM button that answers with a fresh My Account sign-in link (links last 15
/// minutes, DMs are read hours later, so the DM carries this instead of a link).
pub const OPEN_ACCOUNT_BUTTON: &str = "usher:open-account";

/// Arguments of the deliver job.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct DeliverJob {
    /// The notification row.
    pub notification: i64,
}

/// Arguments of a fan-out step.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct FanoutJob {
    /// The confirmed bulk-flag preview.
    pub preview: i64,
    /// Members with a larger subscriber id are still to do.
    pub after: i64,
}

/// Records the notification and queues its delivery; false when this one was queued before.
async fn enqueue(app: &App, tx: &mut Tx, new: &NewNotification<'_>) -> Result<bool, sqlx::Error> {
    let now = app.clock.now();
    let Some(id) = notifications::insert_notification(tx, new, now).await? else {
        return Ok(false);
    };
    let job = NewJob::new(
        DELIVER,
        &DeliverJob { notification: id },
        format!("{DELIVER}:{id}"),
    );
    app.queue.enqueue(tx, &job).await?;
    Ok(true)
}

/// Queues a DM to a subscriber, once per `event` (e.g. the change request id); false when it was
/// queued before.
pub async fn enqueue_dm(
    app: &App,
    tx: &mut Tx,
    subscriber: SubscriberId,
    kind: Kind,
    detail: &serde_json::Value,
    event: &str,
) -> Result<bool, sqlx::Error> {
    let key = format!("dm:{}:{subscriber}:{event}", kind.as_str());
    let new = NewNotification {
        subscriber: Some(subscriber),
        kind: kind.as_str(),
        channel: "dm",
        email_to: None,
        detail,
        dedupe_key: &key,
    };
    enqueue(app, tx, &new).await
}

/// Queues an email to `to` about a subscriber, once per `event`.
pub async fn enqueue_email(
    app: &App,
    tx: &mut Tx,
    subscriber: SubscriberId,
    kind: Kind,
    to: &str,
    detail: &serde_json::Value,
    event: &str,
) -> Result<bool, sqlx::Error> {
    let key = format!("email:{}:{subscriber}:{event}", kind.as_str());
    let new = NewNotification {
        subscriber: Some(subscriber),
        kind: kind.as_str(),
        channel: "email",
        email_to: Some(to),
        detail,
        dedupe_key: &key,
    };
    enqueue(app, tx, &new).await
}

/// Queues an alert to the admins' channel, once per `event`.
pub async fn enqueue_admin_alert(
    app: &App,
    tx: &mut Tx,
    subscriber: Option<SubscriberId>,
    kind: Kind,
    detail: &serde_json::Value,
    event: &str,
) -> Result<bool, sqlx::Error> {
    let key = format!("admin:{}:{event}", kind.as_str());
    let new = NewNotification {
        subscriber,
        kind: kind.as_str(),
        channel: "admin",
        email_to: None,
        detail,
        dedupe_key: &key,
    };
    enqueue(app, tx, &new).await
}

/// Queues the "your Plex account must change" DM for one flagging (named by when it happened).
pub async fn enqueue_flagged(
    app: &App,
    tx: &mut Tx,
    subscriber: SubscriberId,
    flagged_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let event = flagged_at.timestamp_micros().to_string();
    enqueue_dm(
        app,
        tx,
        subscriber,
        Kind::Flagged,
        &serde_json::json!({}),
        &event,
    )
    .await
    .map(drop)
}

/// Queues the fan-out of a confirmed bulk flag: the confirm stays one statement whatever its size,
/// and the flag DMs are made in batches by jobs, each step in its own transaction.
pub async fn enqueue_flag_fanout(app: &App, tx: &mut Tx, preview: i64) -> Result<(), sqlx::Error> {
    let step = FanoutJob { preview, after: 0 };
    let job = NewJob::new(FLAG_FANOUT, &step, format!("{FLAG_FANOUT}:{preview}:0"));
    app.queue.enqueue(tx, &job).await.map(drop)
}

/// One fan-out step: notifications for the next batch, and the next step if there is more.
pub async fn fan_out_flagged(app: &App, step: FanoutJob) -> Result<(), JobError> {
    let mut tx = app.db.begin().await.map_err(JobError::retry)?;
    let batch =
        notifications::find_flagged_members(&mut tx, step.preview, step.after, FANOUT_BATCH)
            .await
            .map_err(JobError::retry)?;
    for member in &batch {
        enqueue_flagged(
            app,
            &mut tx,
            SubscriberId::new(member.subscriber_id),
            member.flagged_at,
        )
        .await
        .map_err(JobError::retry)?;
    }
    if let Some(last) = batch.last()
        && i64::try_from(batch.len()).unwrap_or(i64::MAX) == FANOUT_BATCH
    {
        let next = FanoutJob {
            preview: step.preview,
            after: last.subscriber_id,
        };
        let key = format!("{FLAG_FANOUT}:{}:{}", step.preview, next.after);
        app.queue
            .enqueue(&mut tx, &NewJob::new(FLAG_FANOUT, &next, key))
            .await
            .map_err(JobError::retry)?;
    }
    app.queue.commit(tx).await.map_err(JobError::retry)
}

/// The "Change my Plex account" button for `subscriber`.
pub fn change_button(app: &App, subscriber: SubscriberId) -> anyhow::Result<Button> {
    let custom_id = app
        .signer
        .sign_compact(CHANGE_BUTTON_PURPOSE, &subscriber.to_string(), None)
        .context("signing the change-account button")?;
    Ok(Button {
        custom_id,
        label: "Change my Plex account".into(),
    })
}

/// The subscriber a "Change my Plex account" button was made for, if it is genuine.
pub fn verify_change_button(app: &App, custom_id: &str) -> Option<SubscriberId> {
    let payload = app
        .signer
        .verify_compact(CHANGE_BUTTON_PURPOSE, custom_id, app.clock.now())
        .ok()?;
    payload.parse().ok().map(SubscriberId::new)
}

/// How a delivery attempt ended.
enum Delivery {
    Sent(&'static str),
    DmClosed { fallback_posted: bool },
    Undeliverable(String),
    Failed(String),
}

/// Delivers one notification (the deliver job).
pub async fn deliver(app: &App, job: &ClaimedJob, args: DeliverJob) -> Result<(), JobError> {
    let row = {
        let mut tx = app.db.read().await.map_err(JobError::retry)?;
        notifications::find_notification(&mut tx, args.notification)
            .await
            .map_err(JobError::retry)?
    };
    let Some(row) = row else {
        return Err(JobError::Fail(anyhow::anyhow!(
            "notification {} does not exist",
            args.notification
        )));
    };
    if row.state != "queued" {
        return Ok(());
    }
    let outcome = match attempt(app, &row).await {
        Ok(outcome) => outcome,
        Err(err) if !job.is_last_attempt() => return Err(JobError::retry(err)),
        Err(err) => Delivery::Failed(format!("{err:#}")),
    };
    let (state, via, error) = match &outcome {
        Delivery::Sent(via) => ("sent", Some(*via), None),
        Delivery::DmClosed { fallback_posted } => (
            "dm_closed",
            fallback_posted.then_some("fallback_channel"),
            Some("Discord code 50007: DMs closed".to_owned()),
        ),
        Delivery::Undeliverable(why) => ("undeliverable", None, Some(why.clone())),
        Delivery::Failed(why) => ("failed", None, Some(why.clone())),
    };
    if let Some(error) = &error {
        tracing::warn!(notification = row.id, kind = %row.kind, channel = %row.channel, state, error, "notification not delivered");
    }
    let mut tx = app.db.begin().await.map_err(JobError::retry)?;
    notifications::update_finished(
        &mut tx,
        row.id,
        state,
        via,
        error.as_deref(),
        app.clock.now(),
    )
    .await
    .map_err(JobError::retry)?;
    tx.commit().await.map_err(JobError::retry)
}

/// One try; `Err` is a passing fault worth retrying.
async fn attempt(app: &App, row: &NotificationRow) -> anyhow::Result<Delivery> {
    let mut vars: serde_json::Value =
        serde_json::from_str(&row.detail).context("notification detail is not JSON")?;
    if let Some(map) = vars.as_object_mut() {
        map.insert("name".into(), row.display_name.clone().into());
        if let Some(id) = row.discord_id {
            map.insert("mention".into(), format!("<@{id}>").into());
        }
    }
    if let Some(why) = stale(app, row, &vars).await? {
        return Ok(Delivery::Undeliverable(why));
    }
    match row.channel.as_str() {
        "dm" => deliver_dm(app, row, &vars).await,
        "email" => deliver_email(app, row, &vars).await,
        "admin" => deliver_admin(app, row, &vars).await,
        other => Ok(Delivery::Failed(format!("unknown channel `{other}`"))),
    }
}

/// Why a queued lifecycle message no longer holds when it is delivered: a reminder after the
/// subscriber renewed (their paid end moved) or set up automatic renewal, an "expired" message
/// after they paid again.
async fn stale(
    app: &App,
    row: &NotificationRow,
    vars: &serde_json::Value,
) -> anyhow::Result<Option<String>> {
    let reminder = row.kind == Kind::Reminder.as_str();
    if !(reminder || row.kind == Kind::Expired.as_str()) {
        return Ok(None);
    }
    let Some(subscriber) = row.subscriber_id else {
        return Ok(None);
    };
    let standing = {
        let mut tx = app.db.read().await?;
        lifecycle::find_standing(&mut tx, SubscriberId::new(subscriber), app.clock.now()).await?
    };
    let Some(standing) = standing else {
        return Ok(None);
    };
    if reminder {
        let queued_for: Option<DateTime<Utc>> =
            serde_json::from_value(vars["ends_at"].clone()).ok();
        if standing.renewing {
            return Ok(Some("the subscription renews automatically now".into()));
        }
        if queued_for.is_some() && standing.ended_at != queued_for {
            return Ok(Some(
                "the subscriber renewed before the reminder went out".into(),
            ));
        }
    } else if standing.active {
        return Ok(Some(
            "the subscriber paid again before the message went out".into(),
        ));
    }
    Ok(None)
}

async fn deliver_dm(
    app: &App,
    row: &NotificationRow,
    vars: &serde_json::Value,
) -> anyhow::Result<Delivery> {
    let Some(discord) = &app.discord else {
        return Ok(Delivery::Undeliverable(
            "no Discord bot is configured (discord.token)".into(),
        ));
    };
    let (Some(user), Some(subscriber)) = (row.discord_id, row.subscriber_id) else {
        return Ok(Delivery::Failed(
            "the notification has no subscriber".into(),
        ));
    };
    let user = u64::try_from(user).context("stored Discord id")?;
    let content = app
        .templates
        .render(&format!("dms/{}.md.j2", row.kind), vars)
        .context("rendering a DM")?;
    let mut message = OutgoingMessage {
        content,
        buttons: Vec::new(),
        nonce: Some(format!("usher-n{}", row.id)),
    };
    if row.kind == Kind::Flagged.as_str() {
        // A stale flag DM (flag cleared since) is not sent: the button would only say "not needed".
        if row.flagged != Some(true) {
            return Ok(Delivery::Undeliverable(
                "the flag was cleared before the DM went out".into(),
            ));
        }
        message
            .buttons
            .push(change_button(app, SubscriberId::new(subscriber))?);
        message.buttons.push(Button {
            custom_id: OPEN_ACCOUNT_BUTTON.to_owned(),
            label: "Open My Account".to_owned(),
        });
    }
    match discord.send_dm(user, &message).await {
        Ok(()) => Ok(Delivery::Sent("dm")),
        Err(DiscordError::CannotMessageUser) => {
            let fallback_posted = match app.settings.discord.fallback_channel_id {
                Some(channel) => {
                    let content = app
                        .templates
                        .render("dms/dm_closed_fallback.md.j2", vars)
                        .context("rendering the DM fallback")?;
                    let message = OutgoingMessage {
                        content,
                        buttons: Vec::new(),
                        nonce: Some(format!("usher-f{}", row.id)),
                    };
                    match discord.post(channel, &message).await {
                        Ok(()) => true,
                        Err(err) => {
                            tracing::warn!(notification = row.id, error = %err, "posting the DM fallback failed");
                            false
                        }
                    }
                }
                None => false,
            };
            Ok(Delivery::DmClosed { fallback_posted })
        }
        Err(DiscordError::Transient(why)) => Err(anyhow::anyhow!(why)),
        Err(err @ (DiscordError::Refused(_) | DiscordError::NotAMember)) => {
            Ok(Delivery::Failed(err.to_string()))
        }
    }
}

async fn deliver_email(
    app: &App,
    row: &NotificationRow,
    vars: &serde_json::Value,
) -> anyhow::Result<Delivery> {
    let Some(to) = &row.email_to else {
        return Ok(Delivery::Failed("the email has no recipient".into()));
    };
    let rendered = app
        .templates
        .render_email(&row.kind, vars)
        .context("rendering an email")?;
    match app
        .mailer
        .send(&app.settings.email.from, to, &rendered)
        .await
    {
        Ok(()) => Ok(Delivery::Sent("email")),
        Err(MailError::Transient(why)) => Err(anyhow::anyhow!(why)),
        Err(err @ (MailError::BadRecipient(_) | MailError::Permanent(_))) => {
            Ok(Delivery::Failed(err.to_string()))
        }
    }
}

async fn deliver_admin(
    app: &App,
    row: &NotificationRow,
    vars: &serde_json::Value,
) -> anyhow::Result<Delivery> {
    let (Some(discord), Some(channel)) = (&app.discord, app.settings.discord.alert_channel_id)
    else {
        return Ok(Delivery::Undeliverable(
            "no admin alert channel is configured (discord.alert_channel_id)".into(),
        ));
    };
    let content = app
        .templates
        .render(&format!("dms/{}.md.j2", row.kind), vars)
        .context("rendering an admin alert")?;
    let message = OutgoingMessage {
        content,
        buttons: Vec::new(),
        nonce: Some(format!("usher-n{}", row.id)),
    };
    match discord.post(channel, &message).await {
        Ok(()) => Ok(Delivery::Sent("admin_channel")),
        Err(DiscordError::Transient(why)) => Err(anyhow::anyhow!(why)),
        Err(err) => Ok(Delivery::Failed(err.to_string())),
    }
}
