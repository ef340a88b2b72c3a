//! `/admin user …` (one subscriber: show, flag, unflag, note) and `/admin users …` (many: bulk
//! flag with preview and Confirm, export). The Confirm and Cancel buttons are answered here too,
//! and check the clicker's admin rights again (Discord lets anyone click).
// Group roots are never run (Discord only invokes leaves), but poise needs them async.
#![allow(clippy::unused_async)]

use std::fmt::Write as _;

use poise::serenity_prelude as serenity;

use crate::app::App;
use crate::bot::{Context, Error, Refusal, reply_failure};
use crate::domain::{DiscordId, OwnerAccountId, PlanId, ServerId};
use crate::services::{account, account_change, export};
use crate::store::bulk_flags::{FlagFilter, SubscriptionState};

use super::common::{
    admin_actor, autocomplete_owner, autocomplete_plan, autocomplete_server, ephemeral, is_admin,
    parse_id, say,
};

/// Prefix of a bulk-flag Confirm button; the signed confirmation token follows.
const BULK_CONFIRM: &str = "usher:bf-ok:";
/// A bulk-flag Cancel button.
const BULK_CANCEL: &str = "usher:bf-no";

// ---- /admin user ----------------------------------------------------------------------------

/// One subscriber: show, flag, unflag, note.
#[poise::command(
    slash_command,
    subcommands("user_show", "user_flag", "user_unflag", "user_note")
)]
pub async fn user(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

async fn subscriber_of(app: &App, user: &serenity::User) -> Result<account::AccountStatus, Error> {
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

// ---- /admin users ---------------------------------------------------------------------------

/// Many subscribers: bulk flag, export.
#[poise::command(slash_command, subcommands("users_flag", "users_export"))]
pub async fn users(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// Subscription state, as a bulk-flag filter.
#[derive(Debug, Clone, Copy, poise::ChoiceParameter)]
pub enum StateChoice {
    /// Permanent or paid for now.
    #[name = "active"]
    Active,
    /// Neither.
    #[name = "inactive"]
    Inactive,
}

/// Flags many subscribers at once: shows who first, then asks to confirm.
#[poise::command(slash_command, rename = "flag")]
pub async fn users_flag(
    ctx: Context<'_>,
    #[description = "Everyone"] everyone: Option<bool>,
    #[description = "Subscribers with access to this server"]
    #[autocomplete = "autocomplete_server"]
    server: Option<String>,
    #[description = "Subscribers on any server of this owner Plex account"]
    #[autocomplete = "autocomplete_owner"]
    owner_account: Option<String>,
    #[description = "Subscribers on this plan"]
    #[autocomplete = "autocomplete_plan"]
    plan: Option<String>,
    #[description = "Subscribers whose subscription is active or inactive"] state: Option<
        StateChoice,
    >,
) -> Result<(), Error> {
    let mut filters = Vec::new();
    if everyone == Some(true) {
        filters.push(FlagFilter::Everyone);
    }
    if let Some(raw) = server {
        filters.push(FlagFilter::Server(parse_id::<ServerId>(&raw, "server")?));
    }
    if let Some(raw) = owner_account {
        filters.push(FlagFilter::OwnerAccount(parse_id::<OwnerAccountId>(
            &raw,
            "owner account",
        )?));
    }
    if let Some(raw) = plan {
        filters.push(FlagFilter::Plan(parse_id::<PlanId>(&raw, "plan")?));
    }
    if let Some(state) = state {
        filters.push(FlagFilter::State(match state {
            StateChoice::Active => SubscriptionState::Active,
            StateChoice::Inactive => SubscriptionState::Inactive,
        }));
    }
    let [filter] = filters[..] else {
        return Err(Refusal::new(
            "give exactly one filter: everyone, server, owner_account, plan or state",
        )
        .into());
    };
    ctx.defer_ephemeral().await?;
    let actor = admin_actor(ctx.author().id)?;
    let preview = account_change::preview_bulk_flag(ctx.data(), &actor, filter).await?;
    if preview.count == 0 {
        ctx.send(
            poise::CreateReply::default()
                .content("Nobody matches that filter (or everyone matching is flagged already); nothing to do.")
                .ephemeral(true),
        )
        .await?;
        return Ok(());
    }
    let mut names = preview.first_names.join("\n");
    if preview.count > i64::try_from(preview.first_names.len()).unwrap_or(i64::MAX) {
        let _ = write!(
            names,
            "\n… and {} more",
            preview.count - i64::try_from(preview.first_names.len()).unwrap_or(0)
        );
    }
    let embed = serenity::CreateEmbed::new()
        .title(format!("Flag {} subscribers?", preview.count))
        .description(format!(
            "They must change to a new Plex account, and each gets a DM with a button.\n\n{names}"
        ))
        .footer(serenity::CreateEmbedFooter::new(format!(
            "This confirmation works for {} minutes, once.",
            account_change::PREVIEW_MINUTES
        )))
        .color(0x00E7_4C3C);
    let confirm = format!("{BULK_CONFIRM}{}", preview.token);
    if confirm.len() > 100 {
        return Err(Error::Unexpected(anyhow::anyhow!(
            "bulk-flag confirmation id is {} characters",
            confirm.len()
        )));
    }
    let buttons = serenity::CreateActionRow::Buttons(vec![
        serenity::CreateButton::new(confirm)
            .label(format!("Flag {}", preview.count))
            .style(serenity::ButtonStyle::Danger),
        serenity::CreateButton::new(BULK_CANCEL)
            .label("Cancel")
            .style(serenity::ButtonStyle::Secondary),
    ]);
    ctx.send(
        poise::CreateReply::default()
            .embed(embed)
            .components(vec![buttons])
            .ephemeral(true),
    )
    .await?;
    Ok(())
}

/// Exports every subscriber as CSV (Discord id, name, Plex email, plan, server, state…).
#[poise::command(slash_command, rename = "export")]
pub async fn users_export(ctx: Context<'_>) -> Result<(), Error> {
    ctx.defer_ephemeral().await?;
    let csv = export::all_users_csv(ctx.data()).await?;
    let name = format!(
        "usher-users-{}.csv",
        ctx.data().clock.now().format("%Y%m%d-%H%M")
    );
    ctx.send(
        poise::CreateReply::default()
            .content("Every subscriber, as of now:")
            .attachment(serenity::CreateAttachment::bytes(csv, name))
            .ephemeral(true),
    )
    .await?;
    Ok(())
}

// ---- buttons and modals ---------------------------------------------------------------------

/// Answers the bulk-flag buttons; false for other ids.
pub async fn on_click(
    ctx: &serenity::Context,
    app: &App,
    click: &serenity::ComponentInteraction,
) -> Result<bool, Error> {
    let id = click.data.custom_id.as_str();
    let confirm = id.strip_prefix(BULK_CONFIRM);
    if confirm.is_none() && id != BULK_CANCEL {
        return Ok(false);
    }
    if !is_admin(app, click.user.id, click.member.as_ref(), click.guild_id) {
        click
            .create_response(
                &ctx.http,
                ephemeral(super::not_admin_reason(app, click.guild_id)),
            )
            .await?;
        return Ok(true);
    }
    let text = match confirm {
        Some(token) => {
            let result = async {
                let actor = admin_actor(click.user.id)?;
                Ok::<_, Error>(account_change::confirm_bulk_flag(app, &actor, token).await?)
            }
            .await;
            match result {
                Ok(n) => format!(
                    "Flagged {n} subscribers. Their DMs are on the way; follow along with `/admin recovery status`."
                ),
                Err(err) => reply_failure(&err),
            }
        }
        None => "Cancelled: nobody was flagged.".to_owned(),
    };
    let update = serenity::CreateInteractionResponse::UpdateMessage(
        serenity::CreateInteractionResponseMessage::new()
            .content(text)
            .embeds(Vec::new())
            .components(Vec::new()),
    );
    click.create_response(&ctx.http, update).await?;
    Ok(true)
}
