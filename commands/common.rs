//! Helpers every command group shares: short replies, modals, admin autocompletes, id parsing,
//! and the plan and price lines. Groups import from here; this module imports no group.

use poise::serenity_prelude as serenity;

use crate::bot::{Context, Error, Refusal};
use crate::domain::{Actor, BillingPeriod, DiscordId};
use crate::services::catalog;
use crate::services::checkout::Offer;

pub use super::is_admin;

/// The guild member behind a command, when it came from a guild.
pub fn caller_member(ctx: Context<'_>) -> Option<&serenity::Member> {
    match ctx {
        poise::Context::Application(actx) => actx.interaction.member.as_deref(),
        poise::Context::Prefix(_) => None,
    }
}

/// The actor for an admin acting through Discord.
pub fn admin_actor(user: serenity::UserId) -> Result<Actor, Error> {
    Ok(Actor::Admin(DiscordId::new(user.get())?))
}

/// Answers a command with an ephemeral text.
pub async fn say(ctx: Context<'_>, text: impl Into<String>) -> Result<(), Error> {
    ctx.send(
        poise::CreateReply::default()
            .content(text.into())
            .ephemeral(true),
    )
    .await?;
    Ok(())
}

/// Answers a slash command by opening a modal (poise has no reply for that).
pub async fn open_modal(
    ctx: Context<'_>,
    modal: serenity::CreateInteractionResponse,
) -> Result<(), Error> {
    if let poise::Context::Application(actx) = ctx {
        actx.interaction.create_response(ctx.http(), modal).await?;
        actx.has_sent_initial_response
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
    Ok(())
}

/// Autocomplete choices `(label, value)` whose label contains what was typed, for admins only:
/// poise runs the checks before autocomplete too, this keeps the lists closed even without them.
pub fn admin_choices(
    ctx: Context<'_>,
    partial: &str,
    items: impl IntoIterator<Item = (String, String)>,
) -> serenity::CreateAutocompleteResponse {
    let partial = partial.to_lowercase();
    let choices = if is_admin(
        ctx.data(),
        ctx.author().id,
        caller_member(ctx),
        ctx.guild_id(),
    ) {
        items
            .into_iter()
            .filter(|(label, _)| label.to_lowercase().contains(&partial))
            .take(25)
            .map(|(label, value)| serenity::AutocompleteChoice::new(label, value))
            .collect()
    } else {
        Vec::new()
    };
    serenity::CreateAutocompleteResponse::new().set_choices(choices)
}

/// An ephemeral message as the first answer to an interaction.
pub fn ephemeral(content: impl Into<String>) -> serenity::CreateInteractionResponse {
    serenity::CreateInteractionResponse::Message(
        serenity::CreateInteractionResponseMessage::new()
            .content(content)
            .ephemeral(true),
    )
}

/// A modal with one text input.
pub fn text_modal(
    custom_id: &str,
    title: &str,
    input_id: &str,
    label: &str,
    placeholder: &str,
    length: (u16, u16),
) -> serenity::CreateInteractionResponse {
    let input = serenity::CreateInputText::new(serenity::InputTextStyle::Short, label, input_id)
        .placeholder(placeholder)
        .min_length(length.0)
        .max_length(length.1)
        .required(true);
    serenity::CreateInteractionResponse::Modal(
        serenity::CreateModal::new(custom_id, title)
            .components(vec![serenity::CreateActionRow::InputText(input)]),
    )
}

/// The value of text input `id` in a submitted modal.
pub fn modal_value<'a>(submit: &'a serenity::ModalInteraction, id: &str) -> Option<&'a str> {
    submit
        .data
        .components
        .iter()
        .flat_map(|row| &row.components)
        .find_map(|component| match component {
            serenity::ActionRowComponent::InputText(input) if input.custom_id == id => {
                input.value.as_deref()
            }
            _ => None,
        })
}

pub async fn autocomplete_server(
    ctx: Context<'_>,
    partial: &str,
) -> serenity::CreateAutocompleteResponse {
    let servers = catalog::servers(ctx.data()).await.unwrap_or_default();
    let items = servers.into_iter().map(|s| {
        let label = format!("{}{} ({} users)", s.name, s.mark(), s.users);
        (label, s.id.to_string())
    });
    admin_choices(ctx, partial, items)
}

pub async fn autocomplete_owner(
    ctx: Context<'_>,
    partial: &str,
) -> serenity::CreateAutocompleteResponse {
    let accounts = catalog::owner_accounts(ctx.data())
        .await
        .unwrap_or_default();
    let items = accounts.into_iter().map(|a| {
        (
            format!("{} ({})", a.name, a.state_label()),
            a.id.to_string(),
        )
    });
    admin_choices(ctx, partial, items)
}

pub async fn autocomplete_plan(
    ctx: Context<'_>,
    partial: &str,
) -> serenity::CreateAutocompleteResponse {
    let plans = catalog::plans(ctx.data()).await.unwrap_or_default();
    admin_choices(
        ctx,
        partial,
        plans.into_iter().map(|p| (p.name, p.id.to_string())),
    )
}

/// Reads an id an admin picked from an autocomplete list (or typed).
pub fn parse_id<T: std::str::FromStr>(raw: &str, what: &str) -> Result<T, Error> {
    raw.trim_start_matches('#')
        .parse::<T>()
        .map_err(|_| Refusal::new(format!("pick the {what} from the list (got `{raw}`)")).into())
}

/// "8.00 USD a month".
pub fn price_line(offer: &Offer) -> String {
    let per = match offer.period {
        BillingPeriod::Week => "a week",
        BillingPeriod::Month => "a month",
        BillingPeriod::Quarter => "every 3 months",
        BillingPeriod::HalfYear => "every 6 months",
        BillingPeriod::Year => "a year",
    };
    format!("{} {per}", offer.price)
}

/// The Confirm and Cancel buttons every preview ends with; the Confirm button carries the signed
/// confirmation after `prefix`. A confirmation too long for a custom id (100 characters) is an
/// error, never a truncated token.
pub fn confirm_row(
    prefix: &str,
    token: &str,
    label: impl Into<String>,
    style: serenity::ButtonStyle,
    cancel: &str,
) -> Result<serenity::CreateActionRow, Error> {
    let confirm = format!("{prefix}{token}");
    if confirm.len() > 100 {
        return Err(Error::Unexpected(anyhow::anyhow!(
            "the confirmation id after {prefix} is {} characters",
            confirm.len()
        )));
    }
    Ok(serenity::CreateActionRow::Buttons(vec![
        serenity::CreateButton::new(confirm)
            .label(label)
            .style(style),
        serenity::CreateButton::new(cancel)
            .label("Cancel")
            .style(serenity::ButtonStyle::Secondary),
    ]))
}

/// What a click on a preview's Confirm/Cancel pair asks for.
pub enum ConfirmClick<'a> {
    /// Another button.
    NotOurs,
    /// Not an admin: answered with the reason, nothing done.
    Refused,
    /// Confirm, with the signed confirmation.
    Confirm(&'a str),
    /// Cancel.
    Cancel,
}

/// Reads a click on the pair [`confirm_row`] made, checking admin rights again (a refusal is
/// answered here with its reason).
pub async fn confirm_click<'a>(
    ctx: &serenity::Context,
    app: &crate::app::App,
    click: &'a serenity::ComponentInteraction,
    prefix: &str,
    cancel: &str,
) -> Result<ConfirmClick<'a>, Error> {
    let id = click.data.custom_id.as_str();
    let asked = match id.strip_prefix(prefix) {
        Some(token) => ConfirmClick::Confirm(token),
        None if id == cancel => ConfirmClick::Cancel,
        None => return Ok(ConfirmClick::NotOurs),
    };
    if !is_admin(app, click.user.id, click.member.as_ref(), click.guild_id) {
        click
            .create_response(
                &ctx.http,
                ephemeral(super::not_admin_reason(app, click.guild_id)),
            )
            .await?;
        return Ok(ConfirmClick::Refused);
    }
    Ok(asked)
}
