//! `/help`: what Usher can do for the person asking.

use std::fmt::Write as _;

use crate::bot::{Context, Error};

/// Lists Usher's commands and what each does.
#[poise::command(slash_command)]
pub async fn help(ctx: Context<'_>) -> Result<(), Error> {
    let mut text = String::from("**Usher commands**\n");
    for command in &ctx.framework().options().commands {
        let description = command.description.as_deref().unwrap_or_default();
        let _ = writeln!(text, "`/{}` — {description}", command.name);
        for sub in &command.subcommands {
            let description = sub.description.as_deref().unwrap_or_default();
            let _ = writeln!(text, "`/{} {}` — {description}", command.name, sub.name);
        }
    }
    ctx.send(poise::CreateReply::default().content(text).ephemeral(true))
        .await?;
    Ok(())
}
