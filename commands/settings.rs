//! `/admin settings …`: the settings admins change from Discord (Plex account change processing,
//! reminder days, share grace days).
// Group roots are never run (Discord only invokes leaves), but poise needs them async.
#![allow(clippy::unused_async)]

use crate::bot::{Context, Error, Refusal};
use crate::domain::PlanId;
use crate::services::settings;

use super::common::{admin_actor, autocomplete_plan, parse_id, say};

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

/// Who may /join, as a slash-command choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, poise::ChoiceParameter)]
pub enum RegistrationChoice {
    /// Any member of the home server.
    #[name = "open"]
    Open,
    /// Members holding a registration role.
    #[name = "role"]
    Role,
    /// Nobody: admins add people.
    #[name = "closed"]
    Closed,
}

impl RegistrationChoice {
    fn as_setting(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Role => "role",
            Self::Closed => "closed",
        }
    }
}

/// The settings as one reply.
fn describe(now: &settings::Current) -> String {
    format!(
        "**Plex account change processing**: {}\n**Proofs of a Plex account**: {}\n**Registration** (/join): {}\n**Trials**: {} ({} hours on {}, at most {} at once)\n**Reminder days** (before the paid time ends): {}\n**Share grace days** (a lapsed subscriber's place on their server is kept this long): {}",
        if now.plex_account_change { "on" } else { "off" },
        settings::proof_methods_text(now.proof_methods),
        now.registration.as_str(),
        if now.trials.on { "on" } else { "off" },
        now.trials.hours,
        now.trials
            .plan
            .map_or_else(|| "no plan yet".to_owned(), |p| format!("plan #{p}")),
        if now.trials.max_active == 0 {
            "no limit".to_owned()
        } else {
            now.trials.max_active.to_string()
        },
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
#[expect(
    clippy::too_many_arguments,
    reason = "one parameter per setting: a slash command's options are its function's parameters"
)]
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
    #[description = "Who may /join: open, role (discord.registration_role_ids) or closed"]
    registration: Option<RegistrationChoice>,
    #[description = "Free trials on or off"] trials: Option<bool>,
    #[description = "A trial's length in days"] trial_days: Option<i64>,
    #[description = "A trial's length in hours (instead of days)"] trial_hours: Option<i64>,
    #[description = "The trial plan (a plan created with trial: true)"]
    #[autocomplete = "autocomplete_plan"]
    trial_plan: Option<String>,
    #[description = "Most trials running at once (0: no limit)"] max_active_trials: Option<i64>,
) -> Result<(), Error> {
    let trial_hours = match (trial_days, trial_hours) {
        (Some(days), None) => Some(days.saturating_mul(24)),
        (None, hours) => hours,
        (Some(_), Some(_)) => {
            return Err(
                Refusal::new("give the trial's length in days or in hours, not both").into(),
            );
        }
    };
    let trial_plan = trial_plan
        .as_deref()
        .map(|p| parse_id::<PlanId>(p, "plan"))
        .transpose()?;
    let actor = admin_actor(ctx.author().id)?;
    let change = settings::SettingsChange {
        plex_account_change,
        reminder_days,
        share_grace_days,
        proof_methods: proofs.map(|p| p.as_setting().to_owned()),
        registration: registration.map(|r| r.as_setting().to_owned()),
        trials,
        trial_hours,
        trial_plan,
        max_active_trials,
    };
    let now = settings::change(ctx.data(), &actor, &change).await?;
    say(ctx, format!("Saved. The settings now:\n{}", describe(&now))).await
}
