//! `/admin payments …`: payments no subscriber was found for (list, assign), with the refunds,
//! partial payments and rejected deliveries to check listed beside them. Mounted into the
//! `/admin` tree in `admin.rs`, so the admin check of `require_admin` covers them like every other
//! admin command.
// Group roots are never run (Discord only invokes leaves), but poise needs them async.
#![allow(clippy::unused_async)]

use std::fmt::Write as _;

use poise::serenity_prelude as serenity;

use crate::bot::{Context, Error, Refusal};
use crate::domain::{DiscordId, PaymentId, PlanId, RefundKind};
use crate::services::checkout::provider_name;
use crate::services::payments::PaymentNotice;
use crate::services::{account, payments};

use super::common::{admin_actor, admin_choices, autocomplete_plan, parse_id, say};

/// Unmatched payments listed at most in one reply; the rest are counted.
const LIST_CAP: usize = 15;

/// Refunds, partial payments and rejected deliveries listed at most in one reply.
const NOTICE_CAP: usize = 6;

/// Discord refuses a message over 2,000 characters: replies are cut to whole lines below it.
const MESSAGE_CAP: usize = 1_950;

// ---- /admin payments ------------------------------------------------------------------------

/// Payments no subscriber was found for: list, assign.
#[poise::command(slash_command, subcommands("payments_unmatched", "payments_assign"))]
pub async fn payments(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// Lists payments that found nobody, refunds and money to check, and deliveries kept unread.
#[poise::command(slash_command, rename = "unmatched")]
pub async fn payments_unmatched(ctx: Context<'_>) -> Result<(), Error> {
    let list = payments::unmatched(ctx.data()).await?;
    let notices = payments::notices(ctx.data()).await?;
    let mut text = if list.is_empty() {
        "No unmatched payments: every payment found its subscriber.\n".to_owned()
    } else {
        format!("**{} unmatched payments** (oldest first):\n", list.len())
    };
    for p in list.iter().take(LIST_CAP) {
        let _ = writeln!(
            text,
            "`#{}` {} · {} · {} · {} · `{}`",
            p.id,
            provider_name(p.provider),
            p.amount,
            p.payer_email.as_deref().unwrap_or("no payer email"),
            p.received_at.format("%Y-%m-%d %H:%M UTC"),
            p.txn_id,
        );
    }
    if list.len() > LIST_CAP {
        let _ = writeln!(text, "… and {} more", list.len() - LIST_CAP);
    }
    if !list.is_empty() {
        text.push_str("Give one to its subscriber with `/admin payments assign`.\n");
    }
    if !notices.is_empty() {
        let _ = writeln!(text, "\n**{} to check** (oldest first):", notices.len());
        for notice in notices.iter().take(NOTICE_CAP) {
            let _ = writeln!(text, "{}", notice_line(notice));
        }
        if notices.len() > NOTICE_CAP {
            let _ = writeln!(text, "… and {} more", notices.len() - NOTICE_CAP);
        }
    }
    say(ctx, fit(text.trim_end())).await
}

/// `text` cut to whole lines that fit one Discord message, saying how many were left out.
fn fit(text: &str) -> String {
    if text.chars().count() <= MESSAGE_CAP {
        return text.to_owned();
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut kept = String::new();
    for (i, line) in lines.iter().enumerate() {
        let tail = format!("… and {} more lines", lines.len() - i);
        if kept.chars().count() + line.chars().count() + tail.chars().count() + 2 > MESSAGE_CAP {
            kept.push_str(&tail);
            return kept;
        }
        kept.push_str(line);
        kept.push('\n');
    }
    kept
}

/// One line about a refund, a partial payment or a rejected delivery.
fn notice_line(notice: &PaymentNotice) -> String {
    let when = notice.at().format("%Y-%m-%d %H:%M UTC");
    let word = |kind: &RefundKind| match kind {
        RefundKind::Refund => "refund",
        RefundKind::Reversal => "reversal",
    };
    match notice {
        PaymentNotice::UnmatchedRefund {
            provider,
            kind,
            amount,
            names,
            ..
        } => format!(
            "Unmatched {} · {} · {amount} · names `{}`, which is no payment of Usher's · {when}",
            word(kind),
            provider_name(*provider),
            names.as_deref().unwrap_or("nothing"),
        ),
        PaymentNotice::WaitingRefund {
            provider,
            amount,
            txn_id,
            ..
        } => format!(
            "Refund waiting for its payment · {} · {amount} · `{txn_id}` · {when}",
            provider_name(*provider),
        ),
        PaymentNotice::PartialRefund {
            provider,
            kind,
            amount,
            payment,
            ..
        } => format!(
            "Partial {} · {} · {amount} of payment {} · access unchanged · {when}",
            word(kind),
            provider_name(*provider),
            payment.map_or_else(|| "?".to_owned(), |p| format!("#{p}")),
        ),
        PaymentNotice::PaidInPart {
            provider,
            txn_id,
            paid,
            worth,
            ..
        } => format!(
            "Invoice expired after a partial payment · {} · {paid}{} · `{txn_id}` · bought nothing · {when}",
            provider_name(*provider),
            worth.map_or_else(String::new, |w| format!(" (about {w})")),
        ),
        PaymentNotice::RejectedEvent {
            provider,
            event_id,
            event_type,
            reason,
            ..
        } => format!(
            "Delivery kept unread · {} · `{event_type}` `{event_id}` · {reason} · {when}",
            provider_name(*provider),
        ),
    }
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
            provider_name(p.provider),
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
        provider_name(done.provider),
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
