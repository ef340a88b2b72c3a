//! `/admin plan …` (create, list, set-provider) and `/admin group …` (library groups and which
//! libraries are in them).
// Group roots are never run (Discord only invokes leaves), but poise needs them async.
#![allow(clippy::unused_async)]

use std::fmt::Write as _;

use poise::serenity_prelude as serenity;

use crate::bot::{Context, Error, Refusal};
use crate::domain::{
    BillingPeriod, Currency, LibraryGroupId, LibraryId, Money, PaypalPlanId, PlanId, StripePriceId,
};
use crate::services::catalog;
use crate::services::checkout::{Offer, provider_name};
use crate::services::plex_admin::{self, GroupRef, PlanEdit, PlanSpec, ProviderIdChange};

use super::common::{admin_actor, admin_choices, autocomplete_plan, parse_id, price_line, say};

// ---- /admin plan ----------------------------------------------------------------------------

/// Plans: create, edit, retire, list, set provider ids.
#[poise::command(
    slash_command,
    subcommands(
        "plan_create",
        "plan_edit",
        "plan_retire",
        "plan_list",
        "plan_set_provider"
    )
)]
pub async fn plan(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// Creates a plan with its price, period, streams and library groups.
#[poise::command(slash_command, rename = "create")]
#[allow(clippy::too_many_arguments)] // one per slash-command option
pub async fn plan_create(
    ctx: Context<'_>,
    #[description = "Plan name"] name: String,
    #[description = "Price per period, e.g. 8 or 7.50"] price: String,
    #[description = "Currency, e.g. USD"] currency: String,
    #[description = "Billing period: week, month, quarter, half_year or year"] period: String,
    #[description = "Concurrent streams"] streams: i32,
    #[description = "Library groups, separated by commas (e.g. Standard, 4K)"] groups: String,
    #[description = "A trial plan"] trial: Option<bool>,
) -> Result<(), Error> {
    let currency = Currency::parse(&currency).map_err(|e| Refusal::new(e.to_string()))?;
    let price = Money::parse(&price, currency).map_err(|e| Refusal::new(e.to_string()))?;
    let period: BillingPeriod = period
        .trim()
        .parse()
        .map_err(|e: crate::domain::ParseStateError| Refusal::new(e.to_string()))?;
    let groups = groups
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(|g| GroupRef::Name(g.to_owned()))
        .collect();
    let spec = PlanSpec {
        name: name.clone(),
        price,
        period,
        max_streams: streams,
        trial: trial.unwrap_or(false),
        groups,
    };
    let actor = admin_actor(ctx.author().id)?;
    plex_admin::create_plan(ctx.data(), &actor, &spec).await?;
    let text = format!("Created the plan **{}**.", name.trim());
    say(ctx, text).await
}

/// Edits a plan: name, price, streams, trial, library groups (the subscribers' shares follow).
#[poise::command(slash_command, rename = "edit")]
#[allow(clippy::too_many_arguments)] // one per slash-command option
pub async fn plan_edit(
    ctx: Context<'_>,
    #[description = "The plan"]
    #[autocomplete = "autocomplete_plan"]
    plan: String,
    #[description = "New name"] name: Option<String>,
    #[description = "New price per period, e.g. 8 or 7.50 (give the currency too)"] price: Option<
        String,
    >,
    #[description = "Currency of the new price, e.g. USD"] currency: Option<String>,
    #[description = "Concurrent streams"] streams: Option<i32>,
    #[description = "Library groups, separated by commas (replaces them)"] groups: Option<String>,
    #[description = "A trial plan"] trial: Option<bool>,
) -> Result<(), Error> {
    let plan = parse_id::<PlanId>(&plan, "plan")?;
    let price = match (price, currency) {
        (Some(price), Some(currency)) => {
            let currency = Currency::parse(&currency).map_err(|e| Refusal::new(e.to_string()))?;
            Some(Money::parse(&price, currency).map_err(|e| Refusal::new(e.to_string()))?)
        }
        (None, None) => None,
        _ => return Err(Refusal::new("give the price and its currency together").into()),
    };
    let edit = PlanEdit {
        name,
        price,
        max_streams: streams,
        trial,
        active: None,
        groups: groups.map(|g| {
            g.split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(|g| GroupRef::Name(g.to_owned()))
                .collect()
        }),
    };
    let actor = admin_actor(ctx.author().id)?;
    let updates = plex_admin::edit_plan(ctx.data(), &actor, plan, &edit).await?;
    let text = if updates > 0 {
        format!("Saved. {updates} Plex shares get the plan's new libraries.")
    } else {
        "Saved.".to_owned()
    };
    say(ctx, text).await
}

/// Stops offering a plan (its subscribers keep it), or offers it again.
#[poise::command(slash_command, rename = "retire")]
pub async fn plan_retire(
    ctx: Context<'_>,
    #[description = "The plan"]
    #[autocomplete = "autocomplete_plan"]
    plan: String,
    #[description = "Offer it again instead"] undo: Option<bool>,
) -> Result<(), Error> {
    let plan = parse_id::<PlanId>(&plan, "plan")?;
    let offered = undo.unwrap_or(false);
    let edit = PlanEdit {
        active: Some(offered),
        ..PlanEdit::default()
    };
    let actor = admin_actor(ctx.author().id)?;
    plex_admin::edit_plan(ctx.data(), &actor, plan, &edit).await?;
    say(
        ctx,
        if offered {
            "The plan is offered again."
        } else {
            "The plan is retired: nobody new can pick it; its subscribers keep it."
        },
    )
    .await
}

/// Lists plans, with the providers that sell each.
#[poise::command(slash_command, rename = "list")]
pub async fn plan_list(ctx: Context<'_>) -> Result<(), Error> {
    let plans = crate::services::checkout::offers(ctx.data()).await?;
    let mut text = String::new();
    for p in &plans {
        let _ = writeln!(text, "{}", plan_line(p));
    }
    if text.is_empty() {
        text = "No plans yet: create one with `/admin plan create`.".into();
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
    let plan = parse_id::<PlanId>(&plan, "plan")?;
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
        price_line(offer),
        id(offer.stripe_price_id.as_deref()),
        id(offer.paypal_plan_id.as_deref()),
    )
}

// ---- /admin group ---------------------------------------------------------------------------

/// Library groups: create, list, assign a library.
#[poise::command(
    slash_command,
    subcommands("group_create", "group_list", "group_assign")
)]
pub async fn group(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// Creates a library group (e.g. Standard, 4K; a private group is never shared).
#[poise::command(slash_command, rename = "create")]
pub async fn group_create(
    ctx: Context<'_>,
    #[description = "Group name"] name: String,
    #[description = "Never shared with anyone"] private: Option<bool>,
) -> Result<(), Error> {
    let actor = admin_actor(ctx.author().id)?;
    plex_admin::create_group(ctx.data(), &actor, &name, private.unwrap_or(false)).await?;
    let text = format!(
        "Created the group **{}**. Put libraries in it with `/admin group assign`.",
        name.trim()
    );
    say(ctx, text).await
}

/// Lists library groups and the libraries in each.
#[poise::command(slash_command, rename = "list")]
pub async fn group_list(ctx: Context<'_>) -> Result<(), Error> {
    let groups = catalog::groups(ctx.data()).await?;
    let libraries = catalog::libraries(ctx.data()).await?;
    let mut text = String::new();
    for g in &groups {
        let members: Vec<String> = libraries
            .iter()
            .filter(|l| l.group.as_deref() == Some(g.name.as_str()))
            .map(|l| format!("{} / {}", l.server, l.title))
            .collect();
        let _ = writeln!(
            text,
            "**{}**{}: {}",
            g.name,
            if g.private { " (private)" } else { "" },
            if members.is_empty() {
                "no libraries".to_owned()
            } else {
                members.join(", ")
            }
        );
    }
    let loose = libraries.iter().filter(|l| l.group.is_none()).count();
    if loose > 0 {
        let _ = writeln!(text, "{loose} libraries are in no group (never shared).");
    }
    if text.is_empty() {
        text = "No groups yet: create one with `/admin group create`.".into();
    }
    say(ctx, text).await
}

async fn autocomplete_library(
    ctx: Context<'_>,
    partial: &str,
) -> serenity::CreateAutocompleteResponse {
    let libraries = catalog::libraries(ctx.data()).await.unwrap_or_default();
    let items = libraries
        .into_iter()
        .map(|l| (format!("{} / {}", l.server, l.title), l.id.to_string()));
    admin_choices(ctx, partial, items)
}

async fn autocomplete_group(
    ctx: Context<'_>,
    partial: &str,
) -> serenity::CreateAutocompleteResponse {
    let groups = catalog::groups(ctx.data()).await.unwrap_or_default();
    let none = ("(no group: never shared)".to_owned(), "none".to_owned());
    let items = groups
        .into_iter()
        .take(24)
        .map(|g| (g.name, g.id.to_string()))
        .chain(std::iter::once(none));
    admin_choices(ctx, partial, items)
}

/// Puts a library in a group (or in none).
#[poise::command(slash_command, rename = "assign")]
pub async fn group_assign(
    ctx: Context<'_>,
    #[description = "The library"]
    #[autocomplete = "autocomplete_library"]
    library: String,
    #[description = "The group, or none"]
    #[autocomplete = "autocomplete_group"]
    group: String,
) -> Result<(), Error> {
    let library = parse_id::<LibraryId>(&library, "library")?;
    let group = if group.trim() == "none" {
        None
    } else {
        Some(parse_id::<LibraryGroupId>(&group, "group")?)
    };
    let actor = admin_actor(ctx.author().id)?;
    plex_admin::assign_library(ctx.data(), &actor, library, group).await?;
    say(
        ctx,
        "Saved. Shares of plans with that group are updated in the background.",
    )
    .await
}
