//! `/join` and `/plex link`: a Discord member gets in with a Plex account they prove (an emailed
//! code or Plex sign-in, as the admins offer). `/join` makes them a new subscriber (or claims the
//! imported one with that account); `/plex link` claims an imported subscriber.
//!
//! Flow by code: the command opens a modal (Plex email, and for `/join` an optional contact email)
//! → the submit asks the service to mail a code and shows "Enter code" and "Resend code" → the
//! code modal finishes. By sign-in: the command answers with a link to app.plex.tv and an "I've
//! signed in" button; Usher also watches the sign-in by itself. Every step acts for whoever
//! clicked, with their own roles and guild.

use poise::serenity_prelude as serenity;

use crate::app::App;
use crate::bot::{Context, Error, Refusal, reply_failure};
use crate::domain::{DiscordId, PlexEmail, ProofId, ProofMethod, ProofPurpose, VerificationCode};
use crate::services::joining::{self, Applicant, Joined, SignInOutcome};
use crate::services::proofs::ProofError;
use crate::services::settings;

use super::common::{caller_member, modal_value, open_modal, parse_id};
use super::plex::MethodChoice;

/// Prefix of the email modal; the purpose follows.
const EMAIL_MODAL: &str = "usher:join-email:";
/// Prefix of the code modal; the purpose follows.
const CODE_MODAL: &str = "usher:join-code:";
/// Prefix of "Enter code"; the purpose follows.
const ENTER_CODE: &str = "usher:join-enter:";
/// Prefix of "Resend code"; the purpose follows.
const RESEND_CODE: &str = "usher:join-resend:";
/// Prefix of "I've signed in"; the request follows.
const SIGNED_IN: &str = "usher:join-signed-in:";
const PLEX_INPUT: &str = "plex";
const CONTACT_INPUT: &str = "contact";
const CODE_INPUT: &str = "code";

/// Join: link your Plex account to become a subscriber here.
#[poise::command(slash_command, guild_only)]
pub async fn join(
    ctx: Context<'_>,
    #[description = "How to prove your Plex account: a code by email, or signing in to Plex"]
    method: Option<MethodChoice>,
    #[description = "Where receipts and reminders go, if not your Plex email (sign-in only)"]
    #[rename = "contact-email"]
    contact_email: Option<String>,
) -> Result<(), Error> {
    start(ctx, ProofPurpose::Join, method, contact_email).await
}

/// Link your Discord to the subscription the admins imported for your Plex account.
#[poise::command(slash_command, guild_only)]
pub async fn link(
    ctx: Context<'_>,
    #[description = "How to prove your Plex account: a code by email, or signing in to Plex"]
    method: Option<MethodChoice>,
) -> Result<(), Error> {
    start(ctx, ProofPurpose::Claim, method, None).await
}

async fn start(
    ctx: Context<'_>,
    purpose: ProofPurpose,
    method: Option<MethodChoice>,
    contact_email: Option<String>,
) -> Result<(), Error> {
    let offered = settings::current(ctx.data()).await?.proof_methods;
    let method = method.unwrap_or(if offered.email_code {
        MethodChoice::Email
    } else {
        MethodChoice::Plex
    });
    let applicant = applicant(ctx.author(), caller_member(ctx), ctx.guild_id())?;
    match method {
        MethodChoice::Email => {
            offered.require(ProofMethod::EmailCode)?;
            joining::can_start(ctx.data(), &applicant, purpose).await?;
            open_modal(ctx, email_modal(purpose)).await
        }
        MethodChoice::Plex => {
            ctx.defer_ephemeral().await?;
            let started =
                joining::start_sign_in(ctx.data(), &applicant, purpose, contact_email.as_deref())
                    .await?;
            let text = format!(
                "Press **Sign in with Plex**, sign in with your Plex account and approve Usher, then press **I've signed in**. The link works for {} minutes.",
                started.expires_in_minutes
            );
            let rows = vec![serenity::CreateActionRow::Buttons(vec![
                serenity::CreateButton::new_link(started.url.as_str()).label("Sign in with Plex"),
                serenity::CreateButton::new(format!("{SIGNED_IN}{}", started.request))
                    .label("I've signed in")
                    .style(serenity::ButtonStyle::Primary),
            ])];
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

/// The member asking, from what the interaction carries (their roles in the guild it came from).
fn applicant(
    user: &serenity::User,
    member: Option<&serenity::Member>,
    guild: Option<serenity::GuildId>,
) -> Result<Applicant, Error> {
    let name = member.map_or_else(
        || user.display_name().to_owned(),
        |m| m.display_name().to_owned(),
    );
    Ok(Applicant {
        member: DiscordId::new(user.id.get())?,
        name,
        guild: guild.map(serenity::GuildId::get),
        roles: member
            .map(|m| m.roles.iter().map(|r| r.get()).collect())
            .unwrap_or_default(),
    })
}

fn purpose_code(purpose: ProofPurpose) -> &'static str {
    if purpose == ProofPurpose::Claim {
        "claim"
    } else {
        "join"
    }
}

fn purpose_from(code: &str) -> Option<ProofPurpose> {
    match code {
        "join" => Some(ProofPurpose::Join),
        "claim" => Some(ProofPurpose::Claim),
        _ => None,
    }
}

fn email_modal(purpose: ProofPurpose) -> serenity::CreateInteractionResponse {
    let plex = serenity::CreateInputText::new(
        serenity::InputTextStyle::Short,
        "Email of your Plex account",
        PLEX_INPUT,
    )
    .placeholder("you@example.com")
    .min_length(3)
    .max_length(254)
    .required(true);
    let mut rows = vec![serenity::CreateActionRow::InputText(plex)];
    let title = if purpose == ProofPurpose::Claim {
        "Link your subscription"
    } else {
        rows.push(serenity::CreateActionRow::InputText(
            serenity::CreateInputText::new(
                serenity::InputTextStyle::Short,
                "Contact email (optional)",
                CONTACT_INPUT,
            )
            .placeholder("where receipts and reminders go")
            .max_length(254)
            .required(false),
        ));
        "Join"
    };
    serenity::CreateInteractionResponse::Modal(
        serenity::CreateModal::new(format!("{EMAIL_MODAL}{}", purpose_code(purpose)), title)
            .components(rows),
    )
}

fn code_modal(purpose: ProofPurpose) -> serenity::CreateInteractionResponse {
    super::common::text_modal(
        &format!("{CODE_MODAL}{}", purpose_code(purpose)),
        "Enter your code",
        CODE_INPUT,
        "6-digit code from the email",
        "123456",
        (6, 7),
    )
}

fn code_buttons(purpose: ProofPurpose) -> Vec<serenity::CreateActionRow> {
    let code = purpose_code(purpose);
    vec![serenity::CreateActionRow::Buttons(vec![
        serenity::CreateButton::new(format!("{ENTER_CODE}{code}"))
            .label("Enter code")
            .style(serenity::ButtonStyle::Primary),
        serenity::CreateButton::new(format!("{RESEND_CODE}{code}"))
            .label("Resend code")
            .style(serenity::ButtonStyle::Secondary),
    ])]
}

/// What a member is told once they are in.
pub fn joined_text(joined: &Joined) -> String {
    if joined.claimed {
        format!(
            "Done: your Discord is linked to your subscription (Plex account **{}**). `/account` shows where you stand.",
            joined.plex_account
        )
    } else {
        let trial = if joined.trials_offered {
            ", or `/trial` for a free trial"
        } else {
            ""
        };
        format!(
            "Welcome in! Your Plex account **{}** is linked to you. Next: `/subscribe` to pick a plan and pay{trial}.",
            joined.plex_account
        )
    }
}

fn defer_ephemeral() -> serenity::CreateInteractionResponse {
    serenity::CreateInteractionResponse::Defer(
        serenity::CreateInteractionResponseMessage::new().ephemeral(true),
    )
}

/// Answers this flow's buttons; false for other ids.
pub async fn on_click(
    ctx: &serenity::Context,
    app: &App,
    click: &serenity::ComponentInteraction,
) -> Result<bool, Error> {
    let id = click.data.custom_id.as_str();
    if let Some(purpose) = id.strip_prefix(ENTER_CODE).and_then(purpose_from) {
        click
            .create_response(&ctx.http, code_modal(purpose))
            .await?;
        return Ok(true);
    }
    let text = if let Some(purpose) = id.strip_prefix(RESEND_CODE).and_then(purpose_from) {
        click.create_response(&ctx.http, defer_ephemeral()).await?;
        let result = async {
            let applicant = applicant(&click.user, click.member.as_ref(), click.guild_id)?;
            let sent = joining::resend_code(app, &applicant, purpose).await?;
            Ok::<_, Error>(format!(
                "A new code is on its way. It works for {} minutes.",
                sent.expires_in_minutes
            ))
        }
        .await;
        let buttons = if result.is_ok() {
            code_buttons(purpose)
        } else {
            Vec::new()
        };
        let text = result.unwrap_or_else(|err| reply_failure(&err));
        click
            .edit_response(
                &ctx.http,
                serenity::EditInteractionResponse::new()
                    .content(text)
                    .components(buttons),
            )
            .await?;
        return Ok(true);
    } else if let Some(request) = id.strip_prefix(SIGNED_IN) {
        click.create_response(&ctx.http, defer_ephemeral()).await?;
        signed_in(app, click.user.id, request)
            .await
            .unwrap_or_else(|err| reply_failure(&err))
    } else {
        return Ok(false);
    };
    click
        .edit_response(
            &ctx.http,
            serenity::EditInteractionResponse::new().content(text),
        )
        .await?;
    Ok(true)
}

/// "I've signed in": finishes now if Plex has the approval.
async fn signed_in(app: &App, user: serenity::UserId, request: &str) -> Result<String, Error> {
    let member = DiscordId::new(user.get())?;
    let request = parse_id::<ProofId>(request, "sign-in")?;
    Ok(
        match joining::finish_sign_in(app, request, Some(member)).await? {
            SignInOutcome::Waiting => {
                return Err(Refusal::new(ProofError::SignInPending.to_string()).into());
            }
            SignInOutcome::Joined(joined) => joined_text(&joined),
            SignInOutcome::Settled => {
                "This sign-in is already dealt with: `/account` shows where you stand.".to_owned()
            }
        },
    )
}

/// Answers this flow's modals; false for other ids.
pub async fn on_submit(
    ctx: &serenity::Context,
    app: &App,
    submit: &serenity::ModalInteraction,
) -> Result<bool, Error> {
    let id = submit.data.custom_id.as_str();
    let (text, buttons) = if let Some(purpose) = id.strip_prefix(EMAIL_MODAL).and_then(purpose_from)
    {
        submit.create_response(&ctx.http, defer_ephemeral()).await?;
        match request(app, submit, purpose).await {
            Ok(text) => (text, code_buttons(purpose)),
            Err(err) => (reply_failure(&err), Vec::new()),
        }
    } else if let Some(purpose) = id.strip_prefix(CODE_MODAL).and_then(purpose_from) {
        submit.create_response(&ctx.http, defer_ephemeral()).await?;
        let text = match verify(app, submit, purpose).await {
            Ok(text) => text,
            Err(err) => reply_failure(&err),
        };
        (text, Vec::new())
    } else {
        return Ok(false);
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

async fn request(
    app: &App,
    submit: &serenity::ModalInteraction,
    purpose: ProofPurpose,
) -> Result<String, Error> {
    let applicant = applicant(&submit.user, submit.member.as_ref(), submit.guild_id)?;
    let raw = modal_value(submit, PLEX_INPUT).unwrap_or_default();
    let email = PlexEmail::parse(raw).map_err(|e| Refusal::new(e.to_string()))?;
    let contact = modal_value(submit, CONTACT_INPUT);
    let sent = joining::request_code(app, &applicant, purpose, &email, contact).await?;
    Ok(format!(
        "We emailed a 6-digit code to **{email}**. Press **Enter code** when you have it; it works for {} minutes.",
        sent.expires_in_minutes
    ))
}

async fn verify(
    app: &App,
    submit: &serenity::ModalInteraction,
    purpose: ProofPurpose,
) -> Result<String, Error> {
    let member = DiscordId::new(submit.user.id.get())?;
    let raw = modal_value(submit, CODE_INPUT).unwrap_or_default();
    let code = VerificationCode::parse(raw).map_err(|e| Refusal::new(e.to_string()))?;
    let joined = joining::verify_code(app, member, purpose, &code).await?;
    Ok(joined_text(&joined))
}
