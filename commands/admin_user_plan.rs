//! `/admin user plan`: moves a subscriber to another plan. The reply shows old end → new end
//! (the time left converted at the two plans' daily prices) with a Confirm button; the click
//! checks admin rights again and applies exactly the previewed change.

use poise::serenity_prelude as serenity;

use crate::app::App;
use crate::bot::{Context, Error, reply_failure};
use crate::domain::PlanId;
use crate::services::{lifecycle, members};

use super::admin_user::subscriber_of;
use super::common::{
    ConfirmClick, admin_actor, autocomplete_plan, confirm_click, confirm_row, parse_id,
};

/// Prefix of a plan change's Confirm button; the signed confirmation follows.
const PLAN_CONFIRM: &str = "usher:pc-ok:";
/// A plan change's Cancel button.
const PLAN_CANCEL: &str = "usher:pc-no";

/// Moves a subscriber to another plan: shows old end → new end, then asks to confirm.
#[poise::command(slash_command, rename = "plan")]
pub async fn user_plan(
    ctx: Context<'_>,
    #[description = "The subscriber"] user: serenity::User,
    #[description = "The new plan"]
    #[autocomplete = "autocomplete_plan"]
    plan: String,
) -> Result<(), Error> {
    let status = subscriber_of(ctx.data(), &user).await?;
    let plan = parse_id::<PlanId>(&plan, "plan")?;
    let preview = members::preview_plan_change(ctx.data(), status.subscriber, plan).await?;
    let end = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or_else(
            || "nothing paid".to_owned(),
            |t| format!("<t:{}:f>", t.timestamp()),
        )
    };
    let text = format!(
        "Move **{}** from **{}** to **{}**? Their paid time converts at the plans' daily prices: {} → {}. Their Plex libraries follow the new plan.",
        user.name,
        preview.from_plan,
        preview.to_plan,
        end(preview.old_end),
        end(preview.new_end)
    );
    let buttons = confirm_row(
        PLAN_CONFIRM,
        &preview.token,
        "Confirm",
        serenity::ButtonStyle::Primary,
        PLAN_CANCEL,
    )?;
    ctx.send(
        poise::CreateReply::default()
            .content(text)
            .components(vec![buttons])
            .ephemeral(true),
    )
    .await?;
    Ok(())
}

/// Answers a plan change's Confirm and Cancel buttons; false for other ids.
pub async fn on_click(
    ctx: &serenity::Context,
    app: &App,
    click: &serenity::ComponentInteraction,
) -> Result<bool, Error> {
    let confirm = match confirm_click(ctx, app, click, PLAN_CONFIRM, PLAN_CANCEL).await? {
        ConfirmClick::NotOurs => return Ok(false),
        ConfirmClick::Refused => return Ok(true),
        ConfirmClick::Confirm(token) => Some(token),
        ConfirmClick::Cancel => None,
    };
    let text = match confirm {
        Some(token) => {
            let result = async {
                let actor = admin_actor(click.user.id)?;
                Ok::<_, Error>(members::confirm_plan_change(app, &actor, token).await?)
            }
            .await;
            match result {
                Ok(changed) => format!(
                    "Done: they are on **{}** now{}; {} Plex share(s) get the new libraries.",
                    changed.plan,
                    changed
                        .new_end
                        .map(|t| format!(", paid until {}", lifecycle::human_date(t)))
                        .unwrap_or_default(),
                    changed.shares_updated
                ),
                Err(err) => reply_failure(&err),
            }
        }
        None => "Cancelled: the plan did not change.".to_owned(),
    };
    let update = serenity::CreateInteractionResponse::UpdateMessage(
        serenity::CreateInteractionResponseMessage::new()
            .content(text)
            .components(Vec::new()),
    );
    click.create_response(&ctx.http, update).await?;
    Ok(true)
}
