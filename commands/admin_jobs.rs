//! `/admin jobs …`: the background jobs that stopped (parked: waiting for an admin, such as an
//! owner Plex token plex.tv no longer accepts; dead: gave up) with their reasons, and running
//! them again once the cause is fixed.
// The group root is never run (Discord only invokes leaves), but poise needs it async.
#![allow(clippy::unused_async)]

use std::fmt::Write as _;

use crate::bot::{Context, Error};
use crate::domain::JobId;
use crate::services::jobs_admin;

use super::common::{admin_actor, parse_id, say};

/// Background jobs that stopped: list them, run them again.
#[poise::command(slash_command, subcommands("jobs_parked", "jobs_retry"))]
pub async fn jobs(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// Lists jobs that stopped (parked or dead), newest first, with the reason.
#[poise::command(slash_command, rename = "parked")]
pub async fn jobs_parked(ctx: Context<'_>) -> Result<(), Error> {
    let (list, total) = jobs_admin::stuck(ctx.data()).await?;
    if list.is_empty() {
        return say(ctx, "No job is parked or dead: everything runs.").await;
    }
    let mut text = format!("**{total} jobs stopped**; fix the cause, then `/admin jobs retry`.\n");
    for job in &list {
        let reason: String = job.reason.chars().take(160).collect();
        let _ = writeln!(
            text,
            "`{}` {} **{}** ({} attempts, queued <t:{}:R>): {reason}",
            job.id,
            job.kind,
            job.state,
            job.attempts,
            job.created_at.timestamp()
        );
    }
    if total > i64::try_from(list.len()).unwrap_or(i64::MAX) {
        let _ = write!(
            text,
            "…and {} more.",
            total - i64::try_from(list.len()).unwrap_or(0)
        );
    }
    say(ctx, text).await
}

/// Runs stopped jobs again: all of them, or the one named.
#[poise::command(slash_command, rename = "retry")]
pub async fn jobs_retry(
    ctx: Context<'_>,
    #[description = "A job id from /admin jobs parked (all stopped jobs when left out)"]
    job: Option<String>,
) -> Result<(), Error> {
    let only = job
        .as_deref()
        .map(|raw| parse_id::<JobId>(raw, "job"))
        .transpose()?;
    let actor = admin_actor(ctx.author().id)?;
    let n = jobs_admin::retry(ctx.data(), &actor, only).await?;
    let text = match (n, only) {
        (0, Some(id)) => format!("Job `{id}` is not parked or dead; nothing changed."),
        (0, None) => "No job is parked or dead; nothing changed.".to_owned(),
        (n, _) => format!("{n} jobs run again."),
    };
    say(ctx, text).await
}
