//! `/admin users …`: many subscribers at once — bulk flag with preview and Confirm, and export
//! (the list is in `admin_users_list`). The Confirm and Cancel buttons are answered here too, and
//! check the clicker's admin rights again (Discord lets anyone click).
// Group roots are never run (Discord only invokes leaves), but poise needs them async.
#![allow(clippy::unused_async)]

use std::fmt::Write as _;

use poise::serenity_prelude as serenity;

use crate::app::App;
use crate::bot::{Context, Error, Refusal, reply_failure};
use crate::domain::{OwnerAccountId, PlanId, ServerId};
use crate::services::{account_change, export};
use crate::store::bulk_flags::{FlagFilter, SubscriptionState};

use super::common::{
    ConfirmClick, admin_actor, autocomplete_owner, autocomplete_plan, autocomplete_server,
    confirm_click, confirm_row, parse_id,
};

/// Prefix of a bulk-flag Confirm button; the signed confirmation token follows.
const BULK_CONFIRM: &str = "usher:bf-ok:";
/// A bulk-flag Cancel button.
const BULK_CANCEL: &str = "usher:bf-no";

// ---- /admin users ---------------------------------------------------------------------------

/// Many subscribers: list, bulk flag, export.
#[poise::command(
    slash_command,
    subcommands("super::admin_users_list::users_list", "users_flag", "users_export")
)]
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
    let buttons = confirm_row(
        BULK_CONFIRM,
        &preview.token,
        format!("Flag {}", preview.count),
        serenity::ButtonStyle::Danger,
        BULK_CANCEL,
    )?;
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
    let confirm = match confirm_click(ctx, app, click, BULK_CONFIRM, BULK_CANCEL).await? {
        ConfirmClick::NotOurs => return Ok(false),
        ConfirmClick::Refused => return Ok(true),
        ConfirmClick::Confirm(token) => Some(token),
        ConfirmClick::Cancel => None,
    };
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
