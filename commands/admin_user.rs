//! `/admin user …`: one subscriber — show, flag, unflag, note; and the hand tools: add a cash or
//! bank customer, record a payment, make permanent, change plan (with a Confirm button that shows
//! old end → new end), end access, re-invite, link a member to an imported subscriber.
// The group root is never run (Discord only invokes leaves), but poise needs it async.
#![allow(clippy::unused_async)]

use poise::serenity_prelude as serenity;

use crate::app::App;
use crate::bot::{Context, Error, Refusal};
use crate::domain::{DiscordId, PlanId, PlexEmail};
use crate::services::members::{self, NewMember, Standing};
use crate::services::payments::Coverage;
use crate::services::{access, account, account_change};

use super::common::{admin_actor, autocomplete_plan, parse_id, say};

// ---- /admin user ----------------------------------------------------------------------------

/// One subscriber: show, add, pay, permanent, plan, remove, reinvite, link, flag, unflag, note.
#[poise::command(
    slash_command,
    subcommands(
        "user_show",
        "user_add",
        "user_pay",
        "user_permanent",
        "super::admin_user_plan::user_plan",
        "user_remove",
        "user_reinvite",
        "user_link",
        "user_flag",
        "user_unflag",
        "user_note"
    )
)]
pub async fn user(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

pub(super) async fn subscriber_of(
    app: &App,
    user: &serenity::User,
) -> Result<account::AccountStatus, Error> {
    account::status(app, DiscordId::new(user.id.get())?)
        .await?
        .ok_or_else(|| Refusal::new(format!("{} is not a subscriber.", user.name)).into())
}

/// Shows a subscriber's account, flag and notes.
#[poise::command(slash_command, rename = "show")]
pub async fn user_show(
    ctx: Context<'_>,
    #[description = "The subscriber"] user: serenity::User,
) -> Result<(), Error> {
    let status = subscriber_of(ctx.data(), &user).await?;
    let embed = super::account::status_embed(&status, true);
    ctx.send(poise::CreateReply::default().embed(embed).ephemeral(true))
        .await?;
    Ok(())
}

/// Flags a subscriber: they must change to a new Plex account (they get a DM).
#[poise::command(slash_command, rename = "flag")]
pub async fn user_flag(
    ctx: Context<'_>,
    #[description = "The subscriber"] user: serenity::User,
) -> Result<(), Error> {
    set_flag(ctx, &user, true).await
}

/// Clears a subscriber's "must change Plex account" flag.
#[poise::command(slash_command, rename = "unflag")]
pub async fn user_unflag(
    ctx: Context<'_>,
    #[description = "The subscriber"] user: serenity::User,
) -> Result<(), Error> {
    set_flag(ctx, &user, false).await
}

async fn set_flag(ctx: Context<'_>, user: &serenity::User, flagged: bool) -> Result<(), Error> {
    let status = subscriber_of(ctx.data(), user).await?;
    let actor = admin_actor(ctx.author().id)?;
    let changed = account_change::set_flag(ctx.data(), &actor, status.subscriber, flagged).await?;
    let text = match (changed, flagged) {
        (true, true) => format!(
            "{} is flagged: they must change Plex account. A DM with a button is on its way.",
            user.name
        ),
        (true, false) => format!("{} is no longer flagged.", user.name),
        (false, true) => format!("{} was already flagged; nothing changed.", user.name),
        (false, false) => format!("{} was not flagged; nothing changed.", user.name),
    };
    say(ctx, text).await
}

/// Replaces a subscriber's admin note (empty text clears it).
#[poise::command(slash_command, rename = "note")]
pub async fn user_note(
    ctx: Context<'_>,
    #[description = "The subscriber"] user: serenity::User,
    #[description = "The note (replaces the old one; leave out to clear)"] text: Option<String>,
) -> Result<(), Error> {
    let status = subscriber_of(ctx.data(), &user).await?;
    let actor = admin_actor(ctx.author().id)?;
    let text = text.unwrap_or_default();
    account::set_note(ctx.data(), &actor, status.subscriber, &text).await?;
    let reply = if text.trim().is_empty() {
        format!("Cleared the note on {}.", user.name)
    } else {
        format!("Saved the note on {}.", user.name)
    };
    say(ctx, reply).await
}

/// Parses `until` (`2026-12-31`, or with a time) as the end of paid time, in UTC.
pub(super) fn parse_until(raw: &str) -> Result<chrono::DateTime<chrono::Utc>, Error> {
    let raw = raw.trim();
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Ok(at.to_utc());
    }
    chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(23, 59, 59))
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            Refusal::new(format!(
                "`{raw}` is not a date like 2026-12-31 (or 2026-12-31T18:00:00Z)"
            ))
            .into()
        })
}

/// `days:`, `until:` or `permanent:`, exactly one of them.
pub(super) fn standing(
    days: Option<i64>,
    until: Option<&str>,
    permanent: Option<bool>,
) -> Result<Standing, Error> {
    match (days, until, permanent == Some(true)) {
        (Some(days), None, false) => Ok(Standing::Days(days)),
        (None, Some(until), false) => Ok(Standing::Until(parse_until(until)?)),
        (None, None, true) => Ok(Standing::Permanent),
        _ => Err(Refusal::new("give exactly one of days, until or permanent").into()),
    }
}

/// Adds a cash or bank customer: their Plex account, plan and payment; they are invited.
#[poise::command(slash_command, rename = "add")]
#[allow(clippy::too_many_arguments)] // one per option of the command
pub async fn user_add(
    ctx: Context<'_>,
    #[description = "The Discord member"] member: serenity::User,
    #[description = "Their Plex account's email (or username)"] plex_email: String,
    #[description = "Their plan"]
    #[autocomplete = "autocomplete_plan"]
    plan: String,
    #[description = "Days paid from today"] days: Option<i64>,
    #[description = "Paid until this date (2026-12-31)"] until: Option<String>,
    #[description = "Never expires"] permanent: Option<bool>,
    #[description = "The payment's receipt or bank reference (unique)"] transaction: Option<String>,
    #[description = "How much they paid, e.g. 8 or 7.50 (the plan's currency)"] amount: Option<
        String,
    >,
    #[description = "Where receipts and reminders are emailed"] contact_email: Option<String>,
    #[description = "A note for the admins"] note: Option<String>,
) -> Result<(), Error> {
    let new = NewMember {
        member: DiscordId::new(member.id.get())?,
        name: member
            .global_name
            .clone()
            .unwrap_or_else(|| member.name.clone()),
        plex_email: PlexEmail::parse(&plex_email).map_err(|e| Refusal::new(e.to_string()))?,
        contact_email: contact_email.filter(|e| !e.trim().is_empty()),
        plan: parse_id::<PlanId>(&plan, "plan")?,
        standing: standing(days, until.as_deref(), permanent)?,
        transaction,
        amount,
        note,
    };
    ctx.defer_ephemeral().await?;
    let actor = admin_actor(ctx.author().id)?;
    let added = members::add_member(ctx.data(), &actor, &new).await?;
    let until = added.paid_until.map_or_else(
        || "permanent".to_owned(),
        |t| format!("paid until <t:{}:D>", t.timestamp()),
    );
    let invite = if added.server.is_some() {
        "their Plex invite is on its way"
    } else {
        "they are invited as soon as a server has room"
    };
    let text = format!(
        "Added **{}** ({}), {until}; {invite}.{}",
        new.name,
        new.plex_email,
        if added.completed_import {
            " They were imported from plex.tv before: that subscriber is theirs now."
        } else {
            ""
        }
    );
    say(ctx, text).await
}

/// Records a cash or bank payment: days from the later of now and their paid end, or until a date.
#[poise::command(slash_command, rename = "pay")]
pub async fn user_pay(
    ctx: Context<'_>,
    #[description = "The subscriber"] user: serenity::User,
    #[description = "Days it pays for"] days: Option<i64>,
    #[description = "Paid until this date (2026-12-31)"] until: Option<String>,
    #[description = "The payment's receipt or bank reference (unique)"] transaction: Option<String>,
    #[description = "How much they paid, e.g. 8 or 7.50 (the plan's currency)"] amount: Option<
        String,
    >,
) -> Result<(), Error> {
    let status = subscriber_of(ctx.data(), &user).await?;
    let coverage = match standing(days, until.as_deref(), None)? {
        Standing::Days(days) => Coverage::Days(days),
        Standing::Until(until) => Coverage::Until(until),
        Standing::Permanent => unreachable!("permanent is not an option here"),
    };
    let actor = admin_actor(ctx.author().id)?;
    let paid = members::record_payment(
        ctx.data(),
        &actor,
        status.subscriber,
        coverage,
        transaction,
        amount,
    )
    .await?;
    let text = format!(
        "Recorded `{}` for **{}** ({}): paid until <t:{}:D>.",
        paid.transaction,
        user.name,
        paid.plan,
        paid.paid_to.timestamp()
    );
    say(ctx, text).await
}

/// Makes a subscriber permanent (never expires) or not.
#[poise::command(slash_command, rename = "permanent")]
pub async fn user_permanent(
    ctx: Context<'_>,
    #[description = "The subscriber"] user: serenity::User,
    #[description = "On: never expires; off: like everyone"] on: bool,
) -> Result<(), Error> {
    let status = subscriber_of(ctx.data(), &user).await?;
    let actor = admin_actor(ctx.author().id)?;
    let set = members::set_permanent(ctx.data(), &actor, status.subscriber, on).await?;
    let text = match (set.changed, on) {
        (false, _) => format!("Nothing changed: {} was so already.", user.name),
        (true, true) => format!("{} never expires now.", user.name),
        (true, false) => format!(
            "{} is no longer permanent: their paid time decides from now on.",
            user.name
        ),
    };
    say(ctx, text).await
}

/// Ends a subscriber's access now (Plex share deleted, roles taken); their data stays.
#[poise::command(slash_command, rename = "remove")]
pub async fn user_remove(
    ctx: Context<'_>,
    #[description = "The subscriber"] user: serenity::User,
) -> Result<(), Error> {
    let status = subscriber_of(ctx.data(), &user).await?;
    let actor = admin_actor(ctx.author().id)?;
    let ended = members::end_access(ctx.data(), &actor, status.subscriber).await?;
    let text = format!(
        "Access of {} ended: {} Plex shares are being removed and their roles taken; their payments, notes and history stay. A new payment brings them back.",
        user.name, ended.shares
    );
    say(ctx, text).await
}

/// Invites a paid-up subscriber who lost access again (as their own "Re-invite me").
#[poise::command(slash_command, rename = "reinvite")]
pub async fn user_reinvite(
    ctx: Context<'_>,
    #[description = "The subscriber"] user: serenity::User,
) -> Result<(), Error> {
    let status = subscriber_of(ctx.data(), &user).await?;
    let actor = admin_actor(ctx.author().id)?;
    let text = match access::reinvite(ctx.data(), &actor, status.subscriber).await? {
        access::Reinvited::Invited(server) => {
            format!("An invite to {server} is on its way to {}.", user.name)
        }
        access::Reinvited::Waiting(plan) => format!(
            "No server has room for {plan}; {} waits and is invited as soon as one has.",
            user.name
        ),
    };
    say(ctx, text).await
}

/// Links a member to the imported subscriber that has their Plex account (for them).
#[poise::command(slash_command, rename = "link")]
pub async fn user_link(
    ctx: Context<'_>,
    #[description = "The Discord member"] member: serenity::User,
    #[description = "The Plex account's email (or username) of the imported subscriber"]
    plex_email: String,
) -> Result<(), Error> {
    let email = PlexEmail::parse(&plex_email).map_err(|e| Refusal::new(e.to_string()))?;
    let actor = admin_actor(ctx.author().id)?;
    let name = member
        .global_name
        .clone()
        .unwrap_or_else(|| member.name.clone());
    members::link_member(
        ctx.data(),
        &actor,
        DiscordId::new(member.id.get())?,
        &name,
        &email,
    )
    .await?;
    say(
        ctx,
        format!("{name} is now the subscriber of {email}; they get a welcome DM."),
    )
    .await
}
