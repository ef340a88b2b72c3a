//! `/help`: what Usher can do for the person asking (admin commands only for admins).

use std::fmt::Write as _;

use crate::bot::{Context, Error};

use super::AdminOnly;
use super::common::{caller_member, is_admin, say};

/// Lists Usher's commands and what each does.
#[poise::command(slash_command)]
pub async fn help(ctx: Context<'_>) -> Result<(), Error> {
    let admin = is_admin(
        ctx.data(),
        ctx.author().id,
        caller_member(ctx),
        ctx.guild_id(),
    );
    let mut text = String::from("**Usher commands**\n");
    for command in &ctx.framework().options().commands {
        if command.custom_data.downcast_ref::<AdminOnly>().is_some() && !admin {
            continue;
        }
        if command.subcommands.is_empty() {
            let description = command.description.as_deref().unwrap_or_default();
            let _ = writeln!(text, "`/{}` — {description}", command.name);
        }
        for sub in &command.subcommands {
            let description = sub.description.as_deref().unwrap_or_default();
            let leaves: Vec<&str> = sub.subcommands.iter().map(|s| &*s.name).collect();
            let path = if leaves.is_empty() {
                format!("/{} {}", command.name, sub.name)
            } else {
                format!("/{} {} {}", command.name, sub.name, leaves.join("|"))
            };
            let _ = writeln!(text, "`{path}` — {description}");
        }
    }
    say(ctx, text).await
}
