//! `/admin plex-account …` (owner Plex accounts; the token goes in a private form, never echoed)
//! and `/admin server …` (servers, switches, capacity, libraries). The token form is answered
//! here and checks the submitter's admin rights again.
// Group roots are never run (Discord only invokes leaves), but poise needs them async.
#![allow(clippy::unused_async)]

use std::fmt::Write as _;

use poise::serenity_prelude as serenity;
use secrecy::SecretString;

use crate::app::App;
use crate::bot::{Context, Error, reply_failure};
use crate::domain::{OwnerAccountId, ServerId};
use crate::services::catalog;
use crate::services::plex_admin::{self};
use crate::store::servers::ServerFlags;

use super::common::{
    admin_actor, autocomplete_owner, autocomplete_server, ephemeral, is_admin, modal_value,
    open_modal, parse_id, say, text_modal,
};

/// The modal that takes an owner's Plex token.
const TOKEN_MODAL: &str = "usher:owner-token";
/// Prefix of the modal that takes a new token for an account; the account id follows.
const NEW_TOKEN_MODAL: &str = "usher:owner-token-new:";
const TOKEN_INPUT: &str = "token";

// ---- /admin plex-account --------------------------------------------------------------------

/// Owner Plex accounts: add, list, test, update token (frees parked jobs), remove, mark banned.
#[poise::command(
    slash_command,
    rename = "plex-account",
    subcommands(
        "owner_add",
        "owner_list",
        "owner_test",
        "owner_update_token",
        "owner_remove",
        "owner_mark_banned"
    )
)]
pub async fn plex_account(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// Adds an owner Plex account; the token is asked in a private form and never shown again.
#[poise::command(slash_command, rename = "add")]
pub async fn owner_add(ctx: Context<'_>) -> Result<(), Error> {
    let modal = text_modal(
        TOKEN_MODAL,
        "Add an owner Plex account",
        TOKEN_INPUT,
        "Plex token (X-Plex-Token)",
        "paste the token",
        (8, 200),
    );
    open_modal(ctx, modal).await
}

/// Lists owner Plex accounts.
#[poise::command(slash_command, rename = "list")]
pub async fn owner_list(ctx: Context<'_>) -> Result<(), Error> {
    let accounts = catalog::owner_accounts(ctx.data()).await?;
    let mut text = String::new();
    for a in &accounts {
        let _ = writeln!(
            text,
            "`{}` **{}**: {}{}, {}/{} Plex seats",
            a.id,
            a.name,
            a.state_label(),
            if a.plex_pass { ", Plex Pass" } else { "" },
            a.seats_used,
            a.seat_ceiling
        );
    }
    if text.is_empty() {
        text = "No owner Plex accounts yet: add one with `/admin plex-account add`.".into();
    }
    say(ctx, text).await
}

/// Checks that plex.tv still accepts an owner account's token.
#[poise::command(slash_command, rename = "test")]
pub async fn owner_test(
    ctx: Context<'_>,
    #[description = "The owner Plex account"]
    #[autocomplete = "autocomplete_owner"]
    account: String,
) -> Result<(), Error> {
    let id = parse_id::<OwnerAccountId>(&account, "owner account")?;
    ctx.defer_ephemeral().await?;
    let tested = plex_admin::test_owner_account(ctx.data(), id).await?;
    let text = format!(
        "plex.tv accepts the token of **{}**{}.",
        tested.name,
        if tested.plex_pass { " (Plex Pass)" } else { "" }
    );
    say(ctx, text).await
}

/// Gives an owner Plex account a new token (private form); its waiting jobs run again.
#[poise::command(slash_command, rename = "update-token")]
pub async fn owner_update_token(
    ctx: Context<'_>,
    #[description = "The owner Plex account"]
    #[autocomplete = "autocomplete_owner"]
    account: String,
) -> Result<(), Error> {
    let id = parse_id::<OwnerAccountId>(&account, "owner account")?;
    let modal = text_modal(
        &format!("{NEW_TOKEN_MODAL}{id}"),
        "New token for an owner Plex account",
        TOKEN_INPUT,
        "Plex token (X-Plex-Token)",
        "paste the new token",
        (8, 200),
    );
    open_modal(ctx, modal).await
}

/// Removes an owner Plex account (after a ban): subscribers keep their data.
#[poise::command(slash_command, rename = "remove")]
pub async fn owner_remove(
    ctx: Context<'_>,
    #[description = "The owner Plex account"]
    #[autocomplete = "autocomplete_owner"]
    account: String,
    #[description = "Plex banned it: its users' old Plex accounts can never be used again"]
    banned: Option<bool>,
) -> Result<(), Error> {
    let id = parse_id::<OwnerAccountId>(&account, "owner account")?;
    let actor = admin_actor(ctx.author().id)?;
    let banned = banned.unwrap_or(false);
    let removed = plex_admin::remove_owner_account(ctx.data(), &actor, id, banned).await?;
    let text = format!(
        "Removed{}. {} server assignments were cleared; every subscriber keeps their data, and `/admin users flag` still finds them by this account and its servers.",
        if banned { " as banned" } else { "" },
        removed.shares_removed
    );
    say(ctx, text).await
}

/// Marks an owner Plex account banned by Plex (snapshots its users to CSV first).
#[poise::command(slash_command, rename = "mark-banned")]
pub async fn owner_mark_banned(
    ctx: Context<'_>,
    #[description = "The owner Plex account"]
    #[autocomplete = "autocomplete_owner"]
    account: String,
) -> Result<(), Error> {
    let id = parse_id::<OwnerAccountId>(&account, "owner account")?;
    let actor = admin_actor(ctx.author().id)?;
    let snapshot = plex_admin::mark_owner_banned(ctx.data(), &actor, id).await?;
    let text = format!(
        "Marked banned. Its users were saved to `{}` on the Usher host. Next: add new accounts and servers, then `/admin users flag`.",
        snapshot.display()
    );
    say(ctx, text).await
}

// ---- /admin server --------------------------------------------------------------------------

/// Servers: add, list, set, sync libraries, remove.
#[poise::command(
    slash_command,
    subcommands(
        "server_add",
        "server_list",
        "server_set",
        "server_sync",
        "server_remove"
    )
)]
pub async fn server(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// Adds a server of an owner Plex account, by name or machine id, and reads its libraries.
#[poise::command(slash_command, rename = "add")]
pub async fn server_add(
    ctx: Context<'_>,
    #[description = "The owner Plex account"]
    #[autocomplete = "autocomplete_owner"]
    account: String,
    #[description = "Server name or machine identifier"] name: String,
) -> Result<(), Error> {
    let owner = parse_id::<OwnerAccountId>(&account, "owner account")?;
    ctx.defer_ephemeral().await?;
    let actor = admin_actor(ctx.author().id)?;
    let added = plex_admin::add_server(ctx.data(), &actor, owner, &name).await?;
    let text = format!(
        "Added **{}** with {} libraries. Group them, then it takes new subscribers.",
        added.name, added.libraries
    );
    say(ctx, text).await
}

/// Lists servers with their users and switches.
#[poise::command(slash_command, rename = "list")]
pub async fn server_list(ctx: Context<'_>) -> Result<(), Error> {
    let servers = catalog::servers(ctx.data()).await?;
    let mut text = String::new();
    for s in &servers {
        let _ = writeln!(
            text,
            "`{}` **{}** {}/{} users, account {}/{} Plex seats{}{}{}{}",
            s.id,
            s.name,
            s.users,
            s.max_users,
            s.account_seats_used,
            s.seat_ceiling,
            s.location
                .as_deref()
                .map(|l| format!(", {l}"))
                .unwrap_or_default(),
            if s.enabled { "" } else { ", disabled" },
            if s.allow_new_subscriptions {
                ""
            } else {
                ", closed to new subscriptions"
            },
            if s.owner_state == crate::domain::OwnerAccountState::Active {
                String::new()
            } else {
                format!(", owner {}", s.owner_state)
            }
        );
    }
    if text.is_empty() {
        text = "No servers yet: add one with `/admin server add`.".into();
    }
    say(ctx, text).await
}

/// Changes a server's switches or capacity.
#[poise::command(slash_command, rename = "set")]
pub async fn server_set(
    ctx: Context<'_>,
    #[description = "The server"]
    #[autocomplete = "autocomplete_server"]
    server: String,
    #[description = "Switched on"] enabled: Option<bool>,
    #[description = "Open to new subscriptions"] allow_new_subscriptions: Option<bool>,
    #[description = "Open to trial plans"] allow_trials: Option<bool>,
    #[description = "Most users (Plex refuses at about 99)"] max_users: Option<i32>,
    #[description = "Location label"] location: Option<String>,
) -> Result<(), Error> {
    let id = parse_id::<ServerId>(&server, "server")?;
    let flags = ServerFlags {
        enabled,
        allow_new_subscriptions,
        allow_trials,
        max_users,
        location,
    };
    let actor = admin_actor(ctx.author().id)?;
    plex_admin::set_server_flags(ctx.data(), &actor, id, &flags).await?;
    say(ctx, "Saved.").await
}

/// Re-reads a server's libraries from plex.tv (keeps their groups).
#[poise::command(slash_command, rename = "sync-libraries")]
pub async fn server_sync(
    ctx: Context<'_>,
    #[description = "The server"]
    #[autocomplete = "autocomplete_server"]
    server: String,
) -> Result<(), Error> {
    let id = parse_id::<ServerId>(&server, "server")?;
    ctx.defer_ephemeral().await?;
    let actor = admin_actor(ctx.author().id)?;
    let synced = plex_admin::sync_libraries(ctx.data(), &actor, id).await?;
    let text = format!(
        "Libraries synced: {} new, {} kept, {} gone.",
        synced.added, synced.kept, synced.removed
    );
    say(ctx, text).await
}

/// Removes a server from use: its shares end, and paid-up subscribers move to other servers.
#[poise::command(slash_command, rename = "remove")]
pub async fn server_remove(
    ctx: Context<'_>,
    #[description = "The server"]
    #[autocomplete = "autocomplete_server"]
    server: String,
) -> Result<(), Error> {
    let id = parse_id::<ServerId>(&server, "server")?;
    let actor = admin_actor(ctx.author().id)?;
    let removed = plex_admin::remove_server(ctx.data(), &actor, id).await?;
    let text = format!(
        "Removed. {} shares on it are being removed on plex.tv; {} paid-up subscribers were placed elsewhere ({} wait for a server with room).",
        removed.shares, removed.moved, removed.waiting
    );
    say(ctx, text).await
}

// ---- buttons and modals ---------------------------------------------------------------------

/// Answers the owner-token modals (add an account, give one a new token); false for other ids.
pub async fn on_submit(
    ctx: &serenity::Context,
    app: &App,
    submit: &serenity::ModalInteraction,
) -> Result<bool, Error> {
    let id = submit.data.custom_id.as_str();
    let update = id.strip_prefix(NEW_TOKEN_MODAL);
    if id != TOKEN_MODAL && update.is_none() {
        return Ok(false);
    }
    if !is_admin(app, submit.user.id, submit.member.as_ref(), submit.guild_id) {
        submit
            .create_response(
                &ctx.http,
                ephemeral(super::not_admin_reason(app, submit.guild_id)),
            )
            .await?;
        return Ok(true);
    }
    submit
        .create_response(
            &ctx.http,
            serenity::CreateInteractionResponse::Defer(
                serenity::CreateInteractionResponseMessage::new().ephemeral(true),
            ),
        )
        .await?;
    let token = SecretString::from(modal_value(submit, TOKEN_INPUT).unwrap_or_default().trim());
    // The replies name the account only; the token is never echoed.
    let result = async {
        let actor = admin_actor(submit.user.id)?;
        Ok::<_, Error>(match update {
            None => {
                let added = plex_admin::add_owner_account(app, &actor, &token).await?;
                format!(
                    "Added the owner Plex account **{}**{}.",
                    added.name,
                    if added.plex_pass { " (Plex Pass)" } else { "" }
                )
            }
            Some(account) => {
                let account = parse_id::<OwnerAccountId>(account, "owner account")?;
                let updated =
                    plex_admin::update_owner_token(app, &actor, account, &token).await?;
                format!(
                    "plex.tv accepts the new token of **{}**. {} waiting jobs of that account run again.",
                    updated.name, updated.released
                )
            }
        })
    }
    .await;
    let text = result.unwrap_or_else(|err| reply_failure(&err));
    submit
        .edit_response(
            &ctx.http,
            serenity::EditInteractionResponse::new().content(text),
        )
        .await?;
    Ok(true)
}
