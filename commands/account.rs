//! `/account`: the subscriber's own status, ephemeral, with a one-time "Open My Account" link
//! button (a link button, so Discord does not fetch it for a preview and use it up).

use poise::serenity_prelude as serenity;

use crate::app::App;
use crate::bot::{Context, Error, Refusal, reply_failure};
use crate::domain::{DiscordId, PlexEmail, ShareState};
use crate::services::account::{self, AccountStatus};
use crate::services::notify::OPEN_ACCOUNT_BUTTON;
use crate::services::sign_in;

use super::common::ephemeral;

/// Red, for the "must change" banner.
const RED: u32 = 0x00E7_4C3C;
/// Plex orange, for everything else.
const ORANGE: u32 = 0x00E5_A00D;

/// Shows your plan, paid-until date, server and invite.
#[poise::command(slash_command)]
pub async fn account(ctx: Context<'_>) -> Result<(), Error> {
    let user = DiscordId::new(ctx.author().id.get())?;
    let reply = match account::status(ctx.data(), user).await? {
        Some(status) => poise::CreateReply::default()
            .embed(status_embed(&status, false))
            .components(link_row(ctx.data(), &status).await?),
        None => poise::CreateReply::default()
            .content("You are not a subscriber here yet: run `/join` to link your Plex account (or `/plex link` if the admins imported you)."),
    };
    ctx.send(reply.ephemeral(true)).await?;
    Ok(())
}

/// One link button to My Account, signing this subscriber in once within 15 minutes.
async fn link_row(
    app: &App,
    status: &AccountStatus,
) -> Result<Vec<serenity::CreateActionRow>, Error> {
    let link = sign_in::issue_link(app, status.subscriber).await?;
    Ok(vec![serenity::CreateActionRow::Buttons(vec![
        serenity::CreateButton::new_link(link.url.as_str())
            .label("Open My Account (link works once, 15 min)"),
    ])])
}

/// The "Open My Account" button of DMs: answers the clicker with a fresh link of their own.
pub async fn on_click(
    ctx: &serenity::Context,
    app: &App,
    click: &serenity::ComponentInteraction,
) -> Result<bool, Error> {
    if click.data.custom_id != OPEN_ACCOUNT_BUTTON {
        return Ok(false);
    }
    let result = async {
        let status = account::status(app, DiscordId::new(click.user.id.get())?)
            .await?
            .ok_or_else(|| Refusal::new("You are not a subscriber here yet: run `/join` to link your Plex account (or `/plex link` if the admins imported you)."))?;
        let row = link_row(app, &status).await?;
        Ok::<_, Error>(serenity::CreateInteractionResponse::Message(
            serenity::CreateInteractionResponseMessage::new()
                .content("Your sign-in link (it works once, within 15 minutes):")
                .components(row)
                .ephemeral(true),
        ))
    }
    .await;
    let response = match result {
        Ok(response) => response,
        Err(err) => ephemeral(reply_failure(&err)),
    };
    click.create_response(&ctx.http, response).await?;
    Ok(true)
}

/// The status card, for the subscriber or (with notes) for an admin.
pub fn status_embed(status: &AccountStatus, for_admin: bool) -> serenity::CreateEmbed {
    let paid = match (status.permanent, status.paid_until) {
        (true, _) => "permanent".to_owned(),
        (false, Some(until)) => format!("<t:{}:D>", until.timestamp()),
        (false, None) => "never paid".to_owned(),
    };
    let invite = match status.invite {
        Some(ShareState::Pending) => "sent: accept it in Plex (Settings → Manage Library Access)",
        Some(ShareState::Accepted) => "accepted",
        Some(ShareState::Removed) | None => "none",
    };
    let mut embed = serenity::CreateEmbed::new()
        .title(if for_admin {
            format!("{} (subscriber {})", status.name, status.subscriber)
        } else {
            "Your account".to_owned()
        })
        .color(if status.flagged { RED } else { ORANGE })
        .field("Plan", status.plan.as_deref().unwrap_or("none"), true)
        .field(
            "Status",
            if status.active { "active" } else { "inactive" },
            true,
        )
        .field("Paid until", paid, true)
        .field(
            "Plex account",
            status
                .plex_email
                .as_ref()
                .map_or("none linked", PlexEmail::as_str),
            true,
        )
        .field("Server", status.server.as_deref().unwrap_or("none"), true)
        .field("Invite", invite, true);
    if status.flagged {
        let banner = match (for_admin, status.code_pending) {
            (true, _) => "⚠️ Flagged: must change Plex account.",
            (false, false) => {
                "⚠️ **Your Plex account must change.** Run `/plex change-account` (or open My Account below) and give the email of a NEW Plex account."
            }
            (false, true) => {
                "⚠️ **Your Plex account must change.** Run `/plex change-account` and give the email of a NEW Plex account. A code is waiting in that mailbox."
            }
        };
        embed = embed.description(banner);
    }
    if for_admin && !status.notes.is_empty() {
        embed = embed.field("Notes", &status.notes, false);
    }
    embed
}
