//! `/plex change-account` and its buttons and modals: the subscriber's side of ban recovery.
//!
//! Flow: the command (or the DM button) opens the email modal → the submit asks the service to
//! send a code and shows "Enter code" and "Resend code" buttons → "Enter code" opens the code
//! modal → the submit verifies and applies the change. Every step acts for the user who clicked.
// The group root is never run (Discord only invokes leaves), but poise needs it async.
#![allow(clippy::unused_async)]

use poise::serenity_prelude as serenity;

use crate::app::App;
use crate::bot::{Context, Error, Refusal, reply_failure};
use crate::domain::{Actor, DiscordId, PlexEmail, SubscriberId, VerificationCode};
use crate::services::{account, account_change, notify};

use super::common::{ephemeral, modal_value, open_modal, text_modal};

/// The email modal.
const EMAIL_MODAL: &str = "usher:change-email";
/// The code modal.
const CODE_MODAL: &str = "usher:change-code";
/// Opens the code modal.
const ENTER_CODE: &str = "usher:enter-code";
/// Sends the code again.
const RESEND_CODE: &str = "usher:resend-code";
const EMAIL_INPUT: &str = "email";
const CODE_INPUT: &str = "code";

/// Plex account commands.
#[poise::command(slash_command, subcommands("change_account"))]
pub async fn plex(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// Move your subscription to a NEW Plex account (after a server ban).
#[poise::command(slash_command, rename = "change-account")]
pub async fn change_account(ctx: Context<'_>) -> Result<(), Error> {
    let subscriber = subscriber_of(ctx.data(), ctx.author().id).await?;
    account_change::can_start(ctx.data(), subscriber).await?;
    open_modal(ctx, email_modal()).await
}

fn email_modal() -> serenity::CreateInteractionResponse {
    text_modal(
        EMAIL_MODAL,
        "Change your Plex account",
        EMAIL_INPUT,
        "Email of your NEW Plex account",
        "you@example.com",
        (3, 254),
    )
}

fn code_modal() -> serenity::CreateInteractionResponse {
    text_modal(
        CODE_MODAL,
        "Enter your code",
        CODE_INPUT,
        "6-digit code from the email",
        "123456",
        (6, 7),
    )
}

async fn subscriber_of(app: &App, user: serenity::UserId) -> Result<SubscriberId, Error> {
    account::subscriber_of(app, DiscordId::new(user.get())?)
        .await?
        .ok_or_else(|| Refusal::new("You are not a subscriber here yet.").into())
}

fn code_buttons() -> Vec<serenity::CreateActionRow> {
    vec![serenity::CreateActionRow::Buttons(vec![
        serenity::CreateButton::new(ENTER_CODE)
            .label("Enter code")
            .style(serenity::ButtonStyle::Primary),
        serenity::CreateButton::new(RESEND_CODE)
            .label("Resend code")
            .style(serenity::ButtonStyle::Secondary),
    ])]
}

/// Answers Usher's buttons of this flow; false for other ids.
pub async fn on_click(
    ctx: &serenity::Context,
    app: &App,
    click: &serenity::ComponentInteraction,
) -> Result<bool, Error> {
    let id = click.data.custom_id.as_str();
    if id.starts_with(notify::CHANGE_BUTTON_PURPOSE) {
        let result = async {
            let made_for = notify::verify_change_button(app, id).ok_or_else(|| {
                Refusal::new("This button is not valid any more; run `/plex change-account`.")
            })?;
            let subscriber = subscriber_of(app, click.user.id).await?;
            if subscriber != made_for {
                return Err(Refusal::new("This button was sent to someone else.").into());
            }
            account_change::can_start(app, subscriber).await?;
            Ok::<_, Error>(())
        }
        .await;
        match result {
            Ok(()) => click.create_response(&ctx.http, email_modal()).await?,
            Err(err) => {
                click
                    .create_response(&ctx.http, ephemeral(reply_failure(&err)))
                    .await?;
            }
        }
        return Ok(true);
    }
    match id {
        ENTER_CODE => {
            click.create_response(&ctx.http, code_modal()).await?;
            Ok(true)
        }
        RESEND_CODE => {
            click.create_response(&ctx.http, defer_ephemeral()).await?;
            let text = match resend(app, click.user.id).await {
                Ok(text) => text,
                Err(err) => reply_failure(&err),
            };
            click
                .edit_response(
                    &ctx.http,
                    serenity::EditInteractionResponse::new()
                        .content(text)
                        .components(code_buttons()),
                )
                .await?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

async fn resend(app: &App, user: serenity::UserId) -> Result<String, Error> {
    let subscriber = subscriber_of(app, user).await?;
    let sent = account_change::resend_code(app, &Actor::Subscriber(subscriber), subscriber).await?;
    Ok(format!(
        "A new code is on its way. It works for {} minutes.",
        sent.expires_in_minutes
    ))
}

/// Answers Usher's modals of this flow; false for other ids.
pub async fn on_submit(
    ctx: &serenity::Context,
    app: &App,
    submit: &serenity::ModalInteraction,
) -> Result<bool, Error> {
    match submit.data.custom_id.as_str() {
        EMAIL_MODAL => {
            submit.create_response(&ctx.http, defer_ephemeral()).await?;
            let (text, buttons) = match request(app, submit).await {
                Ok(text) => (text, code_buttons()),
                Err(err) => (reply_failure(&err), Vec::new()),
            };
            submit
                .edit_response(
                    &ctx.http,
                    serenity::EditInteractionResponse::new()
                        .content(text)
                        .components(buttons),
                )
                .await?;
            Ok(true)
        }
        CODE_MODAL => {
            submit.create_response(&ctx.http, defer_ephemeral()).await?;
            let text = match verify(app, submit).await {
                Ok(text) => text,
                Err(err) => reply_failure(&err),
            };
            submit
                .edit_response(
                    &ctx.http,
                    serenity::EditInteractionResponse::new().content(text),
                )
                .await?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

async fn request(app: &App, submit: &serenity::ModalInteraction) -> Result<String, Error> {
    let subscriber = subscriber_of(app, submit.user.id).await?;
    let raw = modal_value(submit, EMAIL_INPUT).unwrap_or_default();
    let email = PlexEmail::parse(raw).map_err(|e| Refusal::new(e.to_string()))?;
    let sent =
        account_change::request_change(app, &Actor::Subscriber(subscriber), subscriber, &email)
            .await?;
    Ok(format!(
        "We emailed a 6-digit code to **{email}**. Press **Enter code** when you have it; it works for {} minutes.",
        sent.expires_in_minutes
    ))
}

async fn verify(app: &App, submit: &serenity::ModalInteraction) -> Result<String, Error> {
    let subscriber = subscriber_of(app, submit.user.id).await?;
    let raw = modal_value(submit, CODE_INPUT).unwrap_or_default();
    let code = VerificationCode::parse(raw).map_err(|e| Refusal::new(e.to_string()))?;
    let applied =
        account_change::verify_change(app, &Actor::Subscriber(subscriber), subscriber, &code)
            .await?;
    Ok(if applied.server.is_some() {
        "Done: your Plex account is changed, and your plan, payments and history stay with you. **Check your Plex invites** and accept the new one; a DM and an email have the details.".to_owned()
    } else {
        "Done: your Plex account is changed, and your plan, payments and history stay with you. No server has room for your plan right now; the admins were told, and you will be invited as soon as a place opens.".to_owned()
    })
}

fn defer_ephemeral() -> serenity::CreateInteractionResponse {
    serenity::CreateInteractionResponse::Defer(
        serenity::CreateInteractionResponseMessage::new().ephemeral(true),
    )
}
