//! `/plex change-account` and its buttons and modals: the subscriber's side of ban recovery.
//!
//! Two ways to prove the NEW Plex account (the admins choose which are offered):
//! - the emailed code: the command (or the DM's "Change my Plex account" button) opens the email
//!   modal → the submit asks the service to send a code and shows "Enter code" and "Resend code"
//!   buttons → "Enter code" opens the code modal → the submit verifies and applies the change;
//! - Plex sign-in: `/plex change-account method: plex` (or the DM's "Sign in with Plex" button)
//!   answers with a link to app.plex.tv and an "I've signed in" button; Usher also watches the
//!   sign-in by itself and applies the change as soon as Plex has the approval.
//!
//! Every step acts for the user who clicked.
// The group root is never run (Discord only invokes leaves), but poise needs it async.
#![allow(clippy::unused_async)]

use poise::serenity_prelude as serenity;

use crate::app::App;
use crate::bot::{Context, Error, Refusal, reply_failure};
use crate::domain::{
    Actor, DiscordId, PlexEmail, ProofId, ProofMethod, SubscriberId, VerificationCode,
};
use crate::services::account_change::{ChangeApplied, SignInOutcome};
use crate::services::proofs::ProofError;
use crate::services::{account, account_change, notify, settings};

use super::common::{ephemeral, modal_value, open_modal, parse_id, text_modal};

/// The email modal.
const EMAIL_MODAL: &str = "usher:change-email";
/// The code modal.
const CODE_MODAL: &str = "usher:change-code";
/// Opens the code modal.
const ENTER_CODE: &str = "usher:enter-code";
/// Sends the code again.
const RESEND_CODE: &str = "usher:resend-code";
/// Prefix of the "I've signed in" button; the sign-in request's id follows.
const SIGNED_IN: &str = "usher:signed-in:";
const EMAIL_INPUT: &str = "email";
const CODE_INPUT: &str = "code";

/// Plex account commands.
#[poise::command(slash_command, subcommands("change_account", "super::join::link"))]
pub async fn plex(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// How to prove the new Plex account, as a slash-command choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, poise::ChoiceParameter)]
pub enum MethodChoice {
    /// A code mailed to the new account's email.
    #[name = "email"]
    Email,
    /// Sign in to Plex with the new account.
    #[name = "plex"]
    Plex,
}

/// Move your subscription to a NEW Plex account (after a server ban).
#[poise::command(slash_command, rename = "change-account")]
pub async fn change_account(
    ctx: Context<'_>,
    #[description = "How to prove the new account: a code by email, or signing in to Plex"]
    method: Option<MethodChoice>,
) -> Result<(), Error> {
    let subscriber = subscriber_of(ctx.data(), ctx.author().id).await?;
    account_change::can_start(ctx.data(), subscriber).await?;
    let offered = settings::current(ctx.data()).await?.proof_methods;
    let method = method.unwrap_or(if offered.email_code {
        MethodChoice::Email
    } else {
        MethodChoice::Plex
    });
    match method {
        MethodChoice::Email => {
            offered.require(ProofMethod::EmailCode)?;
            open_modal(ctx, email_modal()).await
        }
        MethodChoice::Plex => {
            ctx.defer_ephemeral().await?;
            let (text, rows) = sign_in(ctx.data(), subscriber).await?;
            ctx.send(
                poise::CreateReply::default()
                    .content(text)
                    .components(rows)
                    .ephemeral(true),
            )
            .await?;
            Ok(())
        }
    }
}

/// Starts a Plex sign-in for the change: the reply's text and its buttons (the link to Plex, and
/// "I've signed in").
async fn sign_in(
    app: &App,
    subscriber: SubscriberId,
) -> Result<(String, Vec<serenity::CreateActionRow>), Error> {
    let started =
        account_change::start_sign_in(app, &Actor::Subscriber(subscriber), subscriber, None)
            .await?;
    let text = format!(
        "Press **Sign in with Plex**, sign in with your **NEW** Plex account and approve Usher. Usher notices by itself within a few seconds and DMs you; you can also press **I've signed in**. The link works for {} minutes.",
        started.expires_in_minutes
    );
    let rows = vec![serenity::CreateActionRow::Buttons(vec![
        serenity::CreateButton::new_link(started.url.as_str()).label("Sign in with Plex"),
        serenity::CreateButton::new(format!("{SIGNED_IN}{}", started.request))
            .label("I've signed in")
            .style(serenity::ButtonStyle::Primary),
    ])];
    Ok((text, rows))
}

/// "I've signed in": applies the change now if Plex has the approval.
async fn signed_in(app: &App, user: serenity::UserId, request: &str) -> Result<String, Error> {
    let subscriber = subscriber_of(app, user).await?;
    let request = parse_id::<ProofId>(request, "sign-in")?;
    Ok(
        match account_change::finish_sign_in(app, request, Some(subscriber)).await? {
            SignInOutcome::Waiting => {
                return Err(Refusal::new(ProofError::SignInPending.to_string()).into());
            }
            SignInOutcome::Applied(applied) => done_text(&applied),
            SignInOutcome::Settled => {
                "This sign-in is already dealt with: your DMs (or `/account`) say how it went."
                    .to_owned()
            }
        },
    )
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
        .ok_or_else(|| Refusal::new("You are not a subscriber here yet: run `/join` to link your Plex account (or `/plex link` if the admins imported you).").into())
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
    if id.starts_with(notify::SIGN_IN_BUTTON_PURPOSE) {
        click.create_response(&ctx.http, defer_ephemeral()).await?;
        let result = async {
            let made_for = notify::verify_sign_in_button(app, id).ok_or_else(|| {
                Refusal::new("This button is not valid any more; run `/plex change-account`.")
            })?;
            let subscriber = subscriber_of(app, click.user.id).await?;
            if subscriber != made_for {
                return Err(Refusal::new("This button was sent to someone else.").into());
            }
            sign_in(app, subscriber).await
        }
        .await;
        let (text, rows) = result.unwrap_or_else(|err: Error| (reply_failure(&err), Vec::new()));
        click
            .edit_response(
                &ctx.http,
                serenity::EditInteractionResponse::new()
                    .content(text)
                    .components(rows),
            )
            .await?;
        return Ok(true);
    }
    if let Some(request) = id.strip_prefix(SIGNED_IN) {
        click.create_response(&ctx.http, defer_ephemeral()).await?;
        let text = signed_in(app, click.user.id, request)
            .await
            .unwrap_or_else(|err| reply_failure(&err));
        click
            .edit_response(
                &ctx.http,
                serenity::EditInteractionResponse::new().content(text),
            )
            .await?;
        return Ok(true);
    }
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
    Ok(done_text(&applied))
}

/// What a subscriber is told once their change is applied.
fn done_text(applied: &ChangeApplied) -> String {
    let next = if applied.server.is_some() {
        "**Check your Plex invites** and accept the new one; a DM and an email have the details."
    } else if !applied.paid_up {
        "Your subscription is not active right now: run `/subscribe`, and you are invited as soon as the payment arrives."
    } else {
        "No server has room for your plan right now; the admins were told, and you will be invited as soon as a place opens."
    };
    format!(
        "Done: your Plex account is changed, and your plan, payments and history stay with you. {next}"
    )
}

fn defer_ephemeral() -> serenity::CreateInteractionResponse {
    serenity::CreateInteractionResponse::Defer(
        serenity::CreateInteractionResponseMessage::new().ephemeral(true),
    )
}
