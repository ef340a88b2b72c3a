//! The Discord surface: one module per command group. Commands parse arguments into domain types,
//! call one service with the [`App`](crate::app::App), and render the result. They never touch SQL
//! or HTTP: `clippy.toml` lists those types and calls as disallowed, and this module denies the
//! lints.
//!
//! Buttons and modals are answered by [`on_interaction`] from the event handler, not by in-memory
//! collectors, so a button in a DM still works after a restart. Their `custom_id`s are constants
//! (the handler acts for whoever clicks) or signed tokens (the DM button names its subscriber).
#![deny(clippy::disallowed_types, clippy::disallowed_methods)]

use poise::serenity_prelude as serenity;

use crate::app::App;
use crate::bot::{Context, Error, Refusal};

mod account;
mod admin;
mod admin_import;
mod admin_jobs;
mod admin_payments;
mod admin_plans;
mod admin_recovery;
mod admin_servers;
mod admin_user;
mod admin_user_plan;
mod admin_users;
mod admin_users_list;
mod common;
mod help;
mod join;
mod plex;
mod settings;
mod subscribe;
mod trial;

/// Every command the bot registers: the single registry.
pub fn all() -> Vec<poise::Command<crate::bot::Data, Error>> {
    let mut admin = admin::admin();
    require_admin(&mut admin);
    vec![
        help::help(),
        account::account(),
        join::join(),
        subscribe::subscribe(),
        trial::trial(),
        plex::plex(),
        admin,
    ]
}

/// Marks a command as admin-only (read by the tests).
#[derive(Debug)]
pub struct AdminOnly;

/// Puts the admin check on a command and every subcommand under it, so no `/admin` command can
/// be added without it; poise runs the checks of the whole chain, the group's included.
fn require_admin(command: &mut poise::Command<crate::bot::Data, Error>) {
    command.checks = vec![|ctx| Box::pin(admin_check(ctx))];
    command.custom_data = Box::new(AdminOnly);
    for sub in &mut command.subcommands {
        require_admin(sub);
    }
}

/// What a refused admin command says in Usher's home guild.
pub const NOT_ADMIN: &str = "Only Usher admins can do that: you are not one of the configured admin users or roles, and you are not an administrator of this server.";
/// What it says anywhere else (another guild, a DM).
pub const NOT_ADMIN_AWAY: &str = "Only Usher admins can do that: outside Usher's home server (and in DMs) only the admin users named in Usher's configuration are admins, and you are not one of them.";

/// Whether a Discord user is an Usher admin: listed in `discord.admin_user_ids`, holding one of
/// `discord.admin_role_ids`, or an administrator of the guild the interaction came from.
pub fn is_admin(
    app: &App,
    user: serenity::UserId,
    member: Option<&serenity::Member>,
    guild: Option<serenity::GuildId>,
) -> bool {
    let discord = &app.settings.discord;
    if discord.admin_user_ids.contains(&user.get()) {
        return true;
    }
    // Roles and the Administrator permission are a guild's own: they count only in Usher's home
    // guild(s), never in a guild someone else added the bot to, and never in DMs.
    if !guild.is_some_and(|g| discord.guild_ids.contains(&g.get())) {
        return false;
    }
    member.is_some_and(|m| {
        m.roles
            .iter()
            .any(|r| discord.admin_role_ids.contains(&r.get()))
            || m.permissions
                .is_some_and(|p| p.contains(serenity::Permissions::ADMINISTRATOR))
    })
}

/// Why an admin command was refused to someone, where they tried it.
pub fn not_admin_reason(app: &App, guild: Option<serenity::GuildId>) -> &'static str {
    if guild.is_some_and(|g| app.settings.discord.guild_ids.contains(&g.get())) {
        NOT_ADMIN
    } else {
        NOT_ADMIN_AWAY
    }
}

/// The check every `/admin` command (the group and each subcommand) carries. Async because poise
/// checks are futures.
#[allow(clippy::unused_async)]
pub async fn admin_check(ctx: Context<'_>) -> Result<bool, Error> {
    if is_admin(
        ctx.data(),
        ctx.author().id,
        common::caller_member(ctx),
        ctx.guild_id(),
    ) {
        Ok(true)
    } else {
        tracing::info!(user = %ctx.author().id, command = %ctx.command().qualified_name, "refused an admin command to a non-admin");
        Err(Refusal::new(not_admin_reason(ctx.data(), ctx.guild_id())).into())
    }
}

/// Answers a button click or modal submit that belongs to Usher. Returns false for ids it does
/// not know (they belong to a collector, or to an older Usher).
pub async fn on_interaction(
    ctx: &serenity::Context,
    app: &App,
    interaction: &serenity::Interaction,
) -> Result<bool, Error> {
    match interaction {
        serenity::Interaction::Component(click) => {
            if account::on_click(ctx, app, click).await?
                || plex::on_click(ctx, app, click).await?
                || join::on_click(ctx, app, click).await?
            {
                return Ok(true);
            }
            admin::on_click(ctx, app, click).await
        }
        serenity::Interaction::Modal(submit) => {
            if plex::on_submit(ctx, app, submit).await? || join::on_submit(ctx, app, submit).await?
            {
                return Ok(true);
            }
            admin::on_submit(ctx, app, submit).await
        }
        _ => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::all;

    fn walk<'a>(
        command: &'a poise::Command<crate::bot::Data, super::Error>,
        out: &mut Vec<&'a poise::Command<crate::bot::Data, super::Error>>,
    ) {
        out.push(command);
        for sub in &command.subcommands {
            walk(sub, out);
        }
    }

    #[test]
    fn command_names_are_unique_and_descriptions_fit_discord() {
        let commands = all();
        let mut names: Vec<_> = commands.iter().map(|c| c.name.clone()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), commands.len(), "duplicate command names");
        let mut every = Vec::new();
        for command in &commands {
            walk(command, &mut every);
            let mut sub_names: Vec<_> = command.subcommands.iter().map(|c| &c.name).collect();
            let n = sub_names.len();
            sub_names.sort();
            sub_names.dedup();
            assert_eq!(
                n,
                sub_names.len(),
                "duplicate subcommands in /{}",
                command.name
            );
        }
        for command in every {
            let description = command.description.as_deref().unwrap_or_default();
            assert!(
                !description.is_empty(),
                "/{} has no description",
                command.qualified_name
            );
            assert!(
                description.chars().count() <= 100,
                "/{} description too long",
                command.qualified_name
            );
            for parameter in &command.parameters {
                let description = parameter.description.as_deref().unwrap_or_default();
                assert!(
                    !description.is_empty() && description.chars().count() <= 100,
                    "/{} option {} needs a description of at most 100 characters",
                    command.qualified_name,
                    parameter.name
                );
            }
        }
    }

    #[test]
    fn every_admin_command_carries_the_admin_check() {
        let commands = all();
        let admin = commands
            .iter()
            .find(|c| c.name == "admin")
            .expect("/admin exists");
        assert!(
            !admin.default_member_permissions.is_empty(),
            "/admin is hidden from members by default_member_permissions"
        );
        let mut every = Vec::new();
        walk(admin, &mut every);
        assert!(every.len() > 10, "the /admin tree has its subcommands");
        for command in every {
            assert!(
                command.checks.len() == 1
                    && command
                        .custom_data
                        .downcast_ref::<super::AdminOnly>()
                        .is_some(),
                "/{} lacks the admin check",
                command.qualified_name
            );
        }
        for other in commands.iter().filter(|c| c.name != "admin") {
            let mut tree = Vec::new();
            walk(other, &mut tree);
            for command in tree {
                assert!(
                    command
                        .custom_data
                        .downcast_ref::<super::AdminOnly>()
                        .is_none(),
                    "/{} is for subscribers and must not carry the admin check",
                    command.qualified_name
                );
            }
        }
    }
}
