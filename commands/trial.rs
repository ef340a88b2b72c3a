//! `/trial`: a joined member starts their one free trial.

use crate::bot::{Context, Error};
use crate::domain::DiscordId;
use crate::services::{lifecycle, trials};

use super::common::say;

/// Start your free trial (one per member and per Plex account).
#[poise::command(slash_command)]
pub async fn trial(ctx: Context<'_>) -> Result<(), Error> {
    ctx.defer_ephemeral().await?;
    let member = DiscordId::new(ctx.author().id.get())?;
    let started = trials::start_trial(ctx.data(), member).await?;
    let invite = started.server.map_or_else(
        || "Your invite is on its way.".to_owned(),
        |server| {
            format!(
                "An invite to **{server}** is on its way: accept it at https://app.plex.tv (Settings → Manage Library Access) or in the Plex app."
            )
        },
    );
    say(
        ctx,
        format!(
            "Your free trial of **{}** runs until **{}**. {invite} Run `/subscribe` any time to keep watching after it ends.",
            started.plan,
            lifecycle::human_date(started.ends_at)
        ),
    )
    .await
}
