//! `/admin payments …`: payments no subscriber was found for (list, assign). Mounted into the
//! `/admin` tree in `admin.rs`, so the admin check of `require_admin` covers them like every other
//! admin command.
// Group roots are never run (Discord only invokes leaves), but poise needs them async.
#![allow(clippy::unused_async)]

use std::fmt::Write as _;

use poise::serenity_prelude as serenity;

use crate::bot::{Context, Error, Refusal};
use crate::domain::{DiscordId, PaymentId, PlanId};
use crate::services::checkout::stored_provider_name;
use crate::services::{account, payments};

use super::common::{admin_actor, admin_choices, autocomplete_plan, parse_id, say};

/// Unmatched payments listed at most in one reply; the rest are counted.
const LIST_CAP: usize = 15;

// ---- /admin payments ------------------------------------------------------------------------

/// Payments no subscriber was found for: list, assign.
#[poise::command(slash_command, subcommands("payments_unmatched", "payments_assign"))]
pub async fn payments(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// Lists payments no subscriber was found for, oldest first.
#[poise::command(slash_command, rename = "unmatched")]
pub async fn payments_unmatched(ctx: Context<'_>) -> Result<(), Error> {
    let list = payments::unmatched(ctx.data()).await?;
    if list.is_empty() {
        return say(
            ctx,
            "No unmatched payments: every payment found its subscriber.",
        )
        .await;
    }
    let mut text = format!("**{} unmatched payments** (oldest first):\n", list.len());
    for p in list.iter().take(LIST_CAP) {
        let _ = writeln!(
            text,
            "`#{}` {} · {} · {} · {} · `{}`",
            p.id,
            stored_provider_name(&p.provider),
            p.amount,
            p.payer_email.as_deref().unwrap_or("no payer email"),
            p.received_at.format("%Y-%m-%d %H:%M UTC"),
            p.txn_id,
        );
    }
    if list.len() > LIST_CAP {
        let _ = writeln!(text, "… and {} more", list.len() - LIST_CAP);
    }
    text.push_str("Give one to its subscriber with `/admin payments assign`.");
    say(ctx, text).await
}

async fn autocomplete_unmatched(
    ctx: Context<'_>,
    partial: &str,
) -> serenity::CreateAutocompleteResponse {
    let list = payments::unmatched(ctx.data()).await.unwrap_or_default();
    let items = list.into_iter().map(|p| {
        let label = format!(
            "#{} {} {} {}",
            p.id,
            stored_provider_name(&p.provider),
            p.amount,
            p.payer_email.as_deref().unwrap_or("(no email)")
        );
        (label.chars().take(100).collect(), p.id.to_string())
    });
    admin_choices(ctx, partial, items)
}

/// Gives an unmatched payment to a subscriber: paid time, and an invite when due.
#[poise::command(slash_command, rename = "assign")]
pub async fn payments_assign(
    ctx: Context<'_>,
    #[description = "The unmatched payment"]
    #[autocomplete = "autocomplete_unmatched"]
    payment: String,
    #[description = "The subscriber who paid"] user: serenity::User,
    #[description = "The plan it pays for (default: the subscriber's plan)"]
    #[autocomplete = "autocomplete_plan"]
    plan: Option<String>,
) -> Result<(), Error> {
    let payment = parse_id::<PaymentId>(payment.trim_start_matches('#'), "payment")?;
    let plan = plan
        .map(|raw| parse_id(&raw, "plan").map(PlanId::new))
        .transpose()?;
    let subscriber = account::subscriber_of(ctx.data(), DiscordId::new(user.id.get())?)
        .await?
        .ok_or_else(|| Refusal::new(format!("{} is not a subscriber", user.name)))?;
    let actor = admin_actor(ctx.author().id)?;
    let done = payments::assign_unmatched(ctx.data(), &actor, payment, subscriber, plan).await?;
    let mut text = format!(
        "Payment #{} ({} via {}) now pays for **{}** for {}: paid from <t:{}:D> until <t:{}:D>.",
        done.payment,
        done.amount,
        stored_provider_name(&done.provider),
        done.plan,
        done.subscriber,
        done.paid_from.timestamp(),
        done.paid_to.timestamp(),
    );
    if done.flagged {
        text.push_str(" They must change their Plex account before they are invited.");
    }
    say(ctx, text).await
}
