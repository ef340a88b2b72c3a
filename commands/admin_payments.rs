//! `/admin payments …` (unmatched payments: list, assign; the refunds, partial payments and
//! rejected deliveries to check are listed with them) and `/admin plan set-provider` (the ids a
//! plan is sold under at Stripe and PayPal). Mounted into the `/admin` tree in `admin.rs`, so the
//! admin check of `require_admin` covers them like every other admin command.
// Group roots are never run (Discord only invokes leaves), but poise needs them async.
#![allow(clippy::unused_async)]

use std::fmt::Write as _;

use poise::serenity_prelude as serenity;

use crate::bot::{Context, Error, Refusal};
use crate::domain::{DiscordId, PaymentId, PaypalPlanId, PlanId, RefundKind, StripePriceId};
use crate::services::checkout::{Offer, provider_name};
use crate::services::payments::PaymentNotice;
use crate::services::plex_admin::{self, ProviderIdChange};
use crate::services::{account, payments};

use super::admin::{autocomplete_plan, parse_id};
use super::{admin_actor, admin_choices, say};

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
    let payment = PaymentId::new(parse_id(payment.trim_start_matches('#'), "payment")?);
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

// ---- /admin plan set-provider ---------------------------------------------------------------

/// `none` clears an id; anything else must parse.
fn id_change<T, E: std::fmt::Display>(
    raw: Option<String>,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<Option<ProviderIdChange<T>>, Error> {
    raw.map(|raw| {
        if raw.trim().eq_ignore_ascii_case("none") {
            Ok(ProviderIdChange::Clear)
        } else {
            parse(&raw)
                .map(ProviderIdChange::Set)
                .map_err(|e| Refusal::new(e.to_string()).into())
        }
    })
    .transpose()
}

/// Sets the ids a plan is sold under at Stripe and PayPal (`none` stops selling it there).
#[poise::command(slash_command, rename = "set-provider")]
pub async fn plan_set_provider(
    ctx: Context<'_>,
    #[description = "The plan"]
    #[autocomplete = "autocomplete_plan"]
    plan: String,
    #[description = "Stripe price id (price_…), or none to stop selling it with Stripe"]
    stripe_price: Option<String>,
    #[description = "PayPal plan id (P-…), or none to stop selling it with PayPal"]
    paypal_plan: Option<String>,
) -> Result<(), Error> {
    let plan = PlanId::new(parse_id(&plan, "plan")?);
    let stripe = id_change(stripe_price, StripePriceId::parse)?;
    let paypal = id_change(paypal_plan, PaypalPlanId::parse)?;
    let actor = admin_actor(ctx.author().id)?;
    let ids = plex_admin::set_plan_provider_ids(ctx.data(), &actor, plan, stripe, paypal).await?;
    let shown = |id: Option<&str>| id.map_or_else(|| "none".to_owned(), |id| format!("`{id}`"));
    let mut text = format!(
        "Saved. **{}**: Stripe price {}, PayPal plan {}.",
        ids.name,
        shown(ids.stripe_price_id.as_deref()),
        shown(ids.paypal_plan_id.as_deref()),
    );
    let app = ctx.data();
    if ids.stripe_price_id.is_some() && app.payments.stripe.is_none() {
        text.push_str(" Stripe is not configured here, so it is not sold there yet.");
    }
    if ids.paypal_plan_id.is_some() && app.payments.paypal.is_none() {
        text.push_str(" PayPal is not configured here, so it is not sold there yet.");
    }
    say(ctx, text).await
}

/// One line of `/admin plan list`: the plan, its price, who sells it and its provider ids.
pub(super) fn plan_line(offer: &Offer) -> String {
    let sold = if !offer.active {
        "not offered".to_owned()
    } else if offer.providers.is_empty() {
        "sold by no provider yet".to_owned()
    } else {
        let names: Vec<&str> = offer.providers.iter().map(|p| provider_name(*p)).collect();
        format!("sold with {}", names.join(", "))
    };
    let id = |id: Option<&str>| id.map_or_else(|| "none".to_owned(), |id| format!("`{id}`"));
    format!(
        "`{}` **{}** {} — {sold}; Stripe price {}, PayPal plan {}",
        offer.plan,
        offer.name,
        super::subscribe::price_line(offer),
        id(offer.stripe_price_id.as_deref()),
        id(offer.paypal_plan_id.as_deref()),
    )
}
