//! `/admin`: the owner's commands, one module per group (`admin_user`, `admin_users`, `admin_import`, `admin_recovery`,
//! `settings`, `admin_servers`, `admin_plans`, `admin_payments`, `admin_jobs`). Hidden from members by
//! `default_member_permissions` and enforced by the admin check on every command of the tree (see
//! `require_admin` in `mod.rs`); the groups' buttons and modals check again, since Discord lets
//! anyone click.
// The root is never run (Discord only invokes leaves), but poise needs it async.
#![allow(clippy::unused_async)]

use poise::serenity_prelude as serenity;

use crate::app::App;
use crate::bot::{Context, Error};

/// Admin commands for running Usher.
#[poise::command(
    slash_command,
    guild_only,
    default_member_permissions = "MANAGE_GUILD",
    subcommands(
        "super::admin_user::user",
        "super::admin_users::users",
        "super::admin_import::import",
        "super::admin_recovery::recovery",
        "super::settings::settings",
        "super::admin_servers::plex_account",
        "super::admin_servers::server",
        "super::admin_plans::group",
        "super::admin_plans::plan",
        "super::admin_payments::payments",
        "super::admin_jobs::jobs"
    )
)]
pub async fn admin(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// Answers the admin groups' buttons; false for ids that are not theirs.
pub async fn on_click(
    ctx: &serenity::Context,
    app: &App,
    click: &serenity::ComponentInteraction,
) -> Result<bool, Error> {
    if super::admin_user_plan::on_click(ctx, app, click).await?
        || super::admin_import::on_click(ctx, app, click).await?
        || super::admin_users_list::on_click(ctx, app, click).await?
    {
        return Ok(true);
    }
    super::admin_users::on_click(ctx, app, click).await
}

/// Answers the admin groups' modals; false for ids that are not theirs.
pub async fn on_submit(
    ctx: &serenity::Context,
    app: &App,
    submit: &serenity::ModalInteraction,
) -> Result<bool, Error> {
    super::admin_servers::on_submit(ctx, app, submit).await
}
