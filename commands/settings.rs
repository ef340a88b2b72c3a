//! `/admin settings …`: the settings admins change from Discord (Plex account change processing,
//! reminder days, share grace days).
// Group roots are never run (Discord only invokes leaves), but poise needs them async.
#![allow(clippy::unused_async)]

use crate::bot::{Context, Error};
use crate::services::settings;

use super::common::{admin_actor, say};

// ---- /admin settings ------------------------------------------------------------------------

/// Usher's settings.
#[poise::command(slash_command, subcommands("settings_show", "settings_set"))]
pub async fn settings(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// How members prove a Plex account, as a slash-command choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, poise::ChoiceParameter)]
pub enum ProofsChoice {
    /// An emailed code or Plex sign-in, as the member likes.
    #[name = "both"]
    Both,
    /// Only the emailed code.
    #[name = "email_code"]
    EmailCode,
    /// Only Plex sign-in.
    #[name = "plex_sign_in"]
    PlexSignIn,
}

impl ProofsChoice {
    fn as_setting(self) -> &'static str {
        match self {
            Self::Both => "both",
            Self::EmailCode => "email_code",
            Self::PlexSignIn => "plex_sign_in",
        }
    }
}

/// The settings as one reply.
fn describe(now: &settings::Current) -> String {
    format!(
        "**Plex account change processing**: {}\n**Proofs of a Plex account**: {}\n**Reminder days** (before the paid time ends): {}\n**Share grace days** (a lapsed subscriber's place on their server is kept this long): {}",
        if now.plex_account_change { "on" } else { "off" },
        settings::proof_methods_text(now.proof_methods),
        now.lifecycle.reminder_days_text(),
        now.lifecycle.share_grace_days,
    )
}

/// Shows the settings admins can change here.
#[poise::command(slash_command, rename = "show")]
pub async fn settings_show(ctx: Context<'_>) -> Result<(), Error> {
    let now = settings::current(ctx.data()).await?;
    say(ctx, describe(&now)).await
}

/// Changes settings: name one or more. All are checked before any is changed.
#[poise::command(slash_command, rename = "set")]
pub async fn settings_set(
    ctx: Context<'_>,
    #[description = "Plex account change processing (lets flagged subscribers change accounts)"]
    plex_account_change: Option<bool>,
    #[description = "Days before the paid time ends that reminders go out, e.g. 3,1 (or none)"]
    reminder_days: Option<String>,
    #[description = "Days a lapsed subscriber's place on their server is kept before the share is deleted"]
    share_grace_days: Option<i64>,
    #[description = "How members prove a Plex account: both, email_code or plex_sign_in"]
    proofs: Option<ProofsChoice>,
) -> Result<(), Error> {
    let actor = admin_actor(ctx.author().id)?;
    let change = settings::SettingsChange {
        plex_account_change,
        reminder_days,
        share_grace_days,
        proof_methods: proofs.map(|p| p.as_setting().to_owned()),
    };
    let now = settings::change(ctx.data(), &actor, &change).await?;
    say(ctx, format!("Saved. The settings now:\n{}", describe(&now))).await
}
