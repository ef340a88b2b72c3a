//! `/admin plan set-provider` (the ids a plan is sold under at Stripe and PayPal) and the lines of
//! `/admin plan list`. Mounted into the `/admin` tree in `admin.rs`, so the admin check of
//! `require_admin` covers them like every other admin command.

use crate::bot::{Context, Error, Refusal};
use crate::domain::{PaypalPlanId, PlanId, StripePriceId};
use crate::services::checkout::{Offer, provider_name};
use crate::services::plex_admin::{self, ProviderIdChange};

use super::admin::{autocomplete_plan, parse_id};
use super::{admin_actor, say};

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
