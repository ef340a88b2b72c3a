//! `/subscribe`: a subscriber picks a plan (and a provider) and gets a private link button to the
//! provider's page to pay on. A link button, so Discord opens it in the browser and Usher never
//! sees card details; the webhook that follows the payment does the rest.

use poise::serenity_prelude as serenity;

use crate::bot::{Context, Error};
use crate::domain::{DiscordId, PlanId, Provider};
use crate::services::account;
use crate::services::checkout::{self, CheckoutError, provider_name};

use super::common::{parse_id, price_line};

/// How to pay, as a slash-command choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, poise::ChoiceParameter)]
pub enum ProviderChoice {
    /// Cards, through Stripe.
    #[name = "stripe"]
    Stripe,
    /// PayPal.
    #[name = "paypal"]
    Paypal,
    /// Crypto, through Plisio.
    #[name = "plisio"]
    Plisio,
}

impl From<ProviderChoice> for Provider {
    fn from(choice: ProviderChoice) -> Self {
        match choice {
            ProviderChoice::Stripe => Self::Stripe,
            ProviderChoice::Paypal => Self::Paypal,
            ProviderChoice::Plisio => Self::Plisio,
        }
    }
}

/// The provider already chosen in the command being typed, to narrow the plans offered.
fn chosen_provider(ctx: Context<'_>) -> Option<Provider> {
    let poise::Context::Application(actx) = ctx else {
        return None;
    };
    actx.interaction
        .data
        .options()
        .into_iter()
        .find(|o| o.name == "provider")
        .and_then(|o| match o.value {
            serenity::ResolvedValue::Integer(i) => usize::try_from(i).ok(),
            _ => None,
        })
        .and_then(<ProviderChoice as poise::ChoiceParameter>::from_index)
        .map(Provider::from)
}

/// Active plans that some configured provider sells (the chosen one, when chosen).
async fn autocomplete_offer(
    ctx: Context<'_>,
    partial: &str,
) -> serenity::CreateAutocompleteResponse {
    let partial = partial.to_lowercase();
    let wanted = chosen_provider(ctx);
    let offers = checkout::offers(ctx.data()).await.unwrap_or_else(|err| {
        tracing::warn!(
            error = format!("{err:#}"),
            "could not list plans to subscribe to"
        );
        Vec::new()
    });
    let choices = offers
        .iter()
        .filter(|o| o.active && !o.providers.is_empty())
        .filter(|o| wanted.is_none_or(|p| o.providers.contains(&p)))
        .map(|o| {
            (
                format!("{} — {}", o.name, price_line(o)),
                o.plan.to_string(),
            )
        })
        .filter(|(label, _)| label.to_lowercase().contains(&partial))
        .take(25)
        .map(|(label, value)| serenity::AutocompleteChoice::new(label, value))
        .collect();
    serenity::CreateAutocompleteResponse::new().set_choices(choices)
}

/// Pay for a plan: you get a private link to pay with Stripe, PayPal or Plisio.
#[poise::command(slash_command)]
pub async fn subscribe(
    ctx: Context<'_>,
    #[description = "The plan"]
    #[autocomplete = "autocomplete_offer"]
    plan: String,
    #[description = "How to pay (may be left out when only one way is set up)"] provider: Option<
        ProviderChoice,
    >,
) -> Result<(), Error> {
    let user = DiscordId::new(ctx.author().id.get())?;
    let subscriber = account::subscriber_of(ctx.data(), user)
        .await?
        .ok_or(CheckoutError::NotSubscriber)?;
    let plan = PlanId::new(parse_id(&plan, "plan")?);
    // The provider is asked for the link: answer Discord now, the link follows.
    ctx.defer_ephemeral().await?;
    let link =
        checkout::subscribe(ctx.data(), subscriber, plan, provider.map(Provider::from)).await?;
    let name = provider_name(link.provider);
    let text = format!(
        "You are buying **{}**: {}, paid with {name}. The button opens {name}'s page to pay on; your access follows as soon as the payment arrives.",
        link.offer.name,
        price_line(&link.offer),
    );
    let button =
        serenity::CreateButton::new_link(link.url.as_str()).label(format!("Pay with {name}"));
    ctx.send(
        poise::CreateReply::default()
            .content(text)
            .components(vec![serenity::CreateActionRow::Buttons(vec![button])])
            .ephemeral(true),
    )
    .await?;
    Ok(())
}
