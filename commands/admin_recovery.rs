//! `/admin recovery status`: the recovery board after a ban.
// Group roots are never run (Discord only invokes leaves), but poise needs them async.
#![allow(clippy::unused_async)]

use std::fmt::Write as _;

use poise::serenity_prelude as serenity;

use crate::bot::{Context, Error};
use crate::services::recovery;

// ---- /admin recovery ------------------------------------------------------------------------

/// Ban recovery progress.
#[poise::command(slash_command, subcommands("recovery_status"))]
pub async fn recovery(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// The recovery board: flagged, DM failed, code sent, verified, invited, accepted.
#[poise::command(slash_command, rename = "status")]
pub async fn recovery_status(ctx: Context<'_>) -> Result<(), Error> {
    let board = recovery::board(ctx.data()).await?;
    let mut waiting = String::new();
    for entry in board
        .entries
        .iter()
        .filter(|e| {
            matches!(
                e.stage,
                recovery::Stage::Flagged | recovery::Stage::VerifiedNoServer
            ) || e.dm == recovery::DmStatus::Failed
        })
        .take(15)
    {
        let mention = entry
            .discord_id
            .map_or_else(|| entry.name.clone(), |id| format!("<@{}>", id.get()));
        let note = match (entry.stage, entry.dm) {
            (_, recovery::DmStatus::Failed) => "DM failed",
            (recovery::Stage::VerifiedNoServer, _) => "waiting for room",
            _ => "has not started",
        };
        let _ = writeln!(waiting, "{mention}: {note}");
    }
    let mut embed = serenity::CreateEmbed::new()
        .title("Ban recovery")
        .field("Flagged", board.flagged.to_string(), true)
        .field("Notified", board.notified.to_string(), true)
        .field("DM failed", board.dm_failed.to_string(), true)
        .field("Code sent", board.code_sent.to_string(), true)
        .field("Verified", board.verified.to_string(), true)
        .field("Invited", board.invited.to_string(), true)
        .field("Accepted", board.accepted.to_string(), true)
        .field("Waiting for room", board.waiting_for_room.to_string(), true)
        .color(0x00E5_A00D);
    if !waiting.is_empty() {
        embed = embed.field("Needs attention", waiting, false);
    }
    ctx.send(poise::CreateReply::default().embed(embed).ephemeral(true))
        .await?;
    Ok(())
}
