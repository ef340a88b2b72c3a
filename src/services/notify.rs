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
use crate::domain::{NotificationChannel, NotificationState, SubscriberId};
use crate::integrations::discord::{Button, DiscordError, OutgoingMessage};
use crate::integrations::email::MailError;
use crate::jobs::{DeliverNotification, FlagFanout};
use crate::services::{StepError, sign_in};
use crate::store::Tx;
use crate::store::notifications::{self, NewNotification, NotificationRow};
use crate::store::{lifecycle, subscribers};

/// Signature purpose of the "Change my Plex account" button.
pub const CHANGE_BUTTON_PURPOSE: &str = "change-account";
/// Subscribers handled per fan-out step.
pub const FANOUT_BATCH: i64 = 500;

pub use crate::domain::NotificationKind as Kind;

/// `custom_id` of the DM button that answers with a fresh My Account sign-in link (links last 15
/// minutes, DMs are read hours later, so the DM carries this instead of a link).
pub const OPEN_ACCOUNT_BUTTON: &str = "usher:open-account";

/// Records the notification and queues its delivery; false when this one was queued before.
async fn enqueue(app: &App, tx: &mut Tx, new: &NewNotification<'_>) -> Result<bool, sqlx::Error> {
    let now = app.clock.now();
    let Some(id) = notifications::insert_notification(tx, new, now).await? else {
        return Ok(false);
    };
    app.queue
        .enqueue(tx, &DeliverNotification { notification: id })
        .await?;
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
        kind,
        channel: NotificationChannel::Dm,
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
        kind,
        channel: NotificationChannel::Email,
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
        kind,
        channel: NotificationChannel::Admin,
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
    let Some(row) = subscribers::find_status(tx, subscriber, app.clock.now()).await? else {
        return Ok(());
    };
    if row.discord_id.is_some() {
        enqueue_dm(
            app,
            tx,
            subscriber,
            Kind::Flagged,
            &serde_json::json!({}),
            &event,
        )
        .await?;
    } else if let Some(to) = row
        .contact_email
        .or_else(|| row.plex_email.map(|e| e.as_str().to_owned()))
    {
        // Unclaimed (imported, no Discord member yet): by email, with a one-time My Account link
        // made when the mail goes out.
        let detail = serde_json::json!({});
        enqueue_email(app, tx, subscriber, Kind::Flagged, &to, &detail, &event).await?;
    }
    Ok(())
}

/// Queues the fan-out of a confirmed bulk flag: the confirm stays one statement whatever its size,
/// and the flag DMs are made in batches by jobs, each step in its own transaction.
pub async fn enqueue_flag_fanout(app: &App, tx: &mut Tx, preview: i64) -> Result<(), sqlx::Error> {
    app.queue
        .enqueue(
            tx,
            &FlagFanout {
                preview,
                after: SubscriberId::new(0),
            },
        )
        .await
        .map(drop)
}

/// One fan-out step: notifications for the members of `preview` after subscriber `after`, and
/// the next step if there is more.
pub async fn fan_out_flagged(
    app: &App,
    preview: i64,
    after: SubscriberId,
) -> Result<(), StepError> {
    let mut tx = app.db.begin().await?;
    let batch = notifications::find_flagged_members(&mut tx, preview, after, FANOUT_BATCH).await?;
    for member in &batch {
        enqueue_flagged(app, &mut tx, member.subscriber_id, member.flagged_at).await?;
    }
    if let Some(last) = batch.last()
        && i64::try_from(batch.len()).unwrap_or(i64::MAX) == FANOUT_BATCH
    {
        let next = FlagFanout {
            preview,
            after: last.subscriber_id,
        };
        app.queue.enqueue(&mut tx, &next).await?;
    }
    app.queue.commit(tx).await?;
    Ok(())
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

/// Signature purpose of the "Sign in with Plex" button.
pub const SIGN_IN_BUTTON_PURPOSE: &str = "plex-sign-in";

/// The "Sign in with Plex" button for `subscriber` (the account change by Plex sign-in).
pub fn sign_in_button(app: &App, subscriber: SubscriberId) -> anyhow::Result<Button> {
    let custom_id = app
        .signer
        .sign_compact(SIGN_IN_BUTTON_PURPOSE, &subscriber.to_string(), None)
        .context("signing the sign-in button")?;
    Ok(Button {
        custom_id,
        label: "Sign in with Plex".into(),
    })
}

/// The subscriber a "Sign in with Plex" button was made for, if it is genuine.
pub fn verify_sign_in_button(app: &App, custom_id: &str) -> Option<SubscriberId> {
    let payload = app
        .signer
        .verify_compact(SIGN_IN_BUTTON_PURPOSE, custom_id, app.clock.now())
        .ok()?;
    payload.parse().ok()
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

/// Delivers one notification (the deliver job). A passing fault is retried, except on the
/// `last_attempt`, which records the notification as failed instead.
pub async fn deliver(app: &App, notification: i64, last_attempt: bool) -> Result<(), StepError> {
    let row = {
        let mut tx = app.db.read().await?;
        notifications::find_notification(&mut tx, notification).await?
    };
    let Some(row) = row else {
        return Err(StepError::Impossible(anyhow::anyhow!(
            "notification {notification} does not exist"
        )));
    };
    if row.state != NotificationState::Queued {
        return Ok(());
    }
    let outcome = match attempt(app, &row).await {
        Ok(outcome) => outcome,
        Err(err) if !last_attempt => return Err(StepError::Temporary(err)),
        Err(err) => Delivery::Failed(format!("{err:#}")),
    };
    let (state, via, error) = match &outcome {
        Delivery::Sent(via) => (NotificationState::Sent, Some(*via), None),
        Delivery::DmClosed { fallback_posted } => (
            NotificationState::DmClosed,
            fallback_posted.then_some("fallback_channel"),
            Some("Discord code 50007: DMs closed".to_owned()),
        ),
        Delivery::Undeliverable(why) => (NotificationState::Undeliverable, None, Some(why.clone())),
        Delivery::Failed(why) => (NotificationState::Failed, None, Some(why.clone())),
    };
    if let Some(error) = &error {
        tracing::warn!(notification = row.id, kind = %row.kind, channel = %row.channel, %state, error, "notification not delivered");
    }
    let mut tx = app.db.begin().await?;
    notifications::update_finished(
        &mut tx,
        row.id,
        state,
        via,
        error.as_deref(),
        app.clock.now(),
    )
    .await?;
    tx.commit().await?;
    Ok(())
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
    match row.channel {
        NotificationChannel::Dm => deliver_dm(app, row, &vars).await,
        NotificationChannel::Email => deliver_email(app, row, &vars).await,
        NotificationChannel::Admin => deliver_admin(app, row, &vars).await,
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
    let reminder = row.kind == Kind::Reminder;
    if !(reminder || row.kind == Kind::Expired) {
        return Ok(None);
    }
    let Some(subscriber) = row.subscriber_id else {
        return Ok(None);
    };
    let standing = {
        let mut tx = app.db.read().await?;
        lifecycle::find_standing(&mut tx, subscriber, app.clock.now()).await?
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
    let Some(subscriber) = row.subscriber_id else {
        return Ok(Delivery::Failed(
            "the notification has no subscriber".into(),
        ));
    };
    let Some(user) = row.discord_id else {
        return Ok(Delivery::Undeliverable(
            "the subscriber is unclaimed (no Discord member yet); they hear by email".into(),
        ));
    };
    let Some(discord) = &app.discord else {
        return Ok(Delivery::Undeliverable(
            "no Discord bot is configured (discord.token)".into(),
        ));
    };
    let user = user.get();
    let content = app
        .templates
        .render(&format!("dms/{}.md.j2", row.kind), vars)
        .context("rendering a DM")?;
    let mut message = OutgoingMessage {
        content,
        buttons: Vec::new(),
        nonce: Some(format!("usher-n{}", row.id)),
    };
    if row.kind == Kind::Flagged {
        // A stale flag DM (flag cleared since) is not sent: the button would only say "not needed".
        if row.flagged != Some(true) {
            return Ok(Delivery::Undeliverable(
                "the flag was cleared before the DM went out".into(),
            ));
        }
        let methods = {
            let mut tx = app.db.read().await?;
            crate::services::settings::proof_methods_in(&mut tx).await?
        };
        if methods.email_code {
            message.buttons.push(change_button(app, subscriber)?);
        }
        if methods.plex_sign_in {
            message.buttons.push(sign_in_button(app, subscriber)?);
        }
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
    let mut vars = vars.clone();
    if row.kind == Kind::Flagged {
        if row.flagged != Some(true) {
            return Ok(Delivery::Undeliverable(
                "the flag was cleared before the email went out".into(),
            ));
        }
        let subscriber = row
            .subscriber_id
            .context("a flag email has its subscriber")?;
        let valid = chrono::Duration::hours(sign_in::EMAIL_LINK_HOURS);
        let link = sign_in::issue_link_valid_for(app, subscriber, valid).await?;
        if let Some(map) = vars.as_object_mut() {
            map.insert("account_link".into(), link.url.as_str().into());
            map.insert("link_hours".into(), sign_in::EMAIL_LINK_HOURS.into());
        }
    }
    let rendered = app
        .templates
        .render_email(row.kind.as_str(), &vars)
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
