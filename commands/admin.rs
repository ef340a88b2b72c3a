//! `/admin …`: the owner's commands. Hidden from members by `default_member_permissions` and
//! enforced by the admin check on every command of the tree (see `require_admin` in `mod.rs`);
//! buttons and modals of these commands check again, since Discord lets anyone click.
// Group roots are never run (Discord only invokes leaves), but poise needs them async.
#![allow(clippy::unused_async)]

use std::fmt::Write as _;

use poise::serenity_prelude as serenity;
use secrecy::SecretString;

use crate::app::App;
use crate::bot::{Context, Error, Refusal, reply_failure};
use crate::domain::{
    BillingPeriod, Currency, DiscordId, LibraryGroupId, LibraryId, Money, OwnerAccountId, PlanId,
    ServerId,
};
use crate::services::plex_admin::PlanSpec;
use crate::services::{account, account_change, catalog, export, plex_admin, recovery, settings};
use crate::store::bulk_flags::{FlagFilter, SubscriptionState};
use crate::store::servers::ServerFlags;

use super::{
    NOT_ADMIN, admin_actor, admin_choices, ephemeral, is_admin, modal_value, open_modal, say,
    text_modal,
};

/// Prefix of a bulk-flag Confirm button; the signed confirmation token follows.
const BULK_CONFIRM: &str = "usher:bf-ok:";
/// A bulk-flag Cancel button.
const BULK_CANCEL: &str = "usher:bf-no";
/// The modal that takes an owner's Plex token.
const TOKEN_MODAL: &str = "usher:owner-token";
const TOKEN_INPUT: &str = "token";

/// Admin commands for running Usher.
#[poise::command(
    slash_command,
    guild_only,
    default_member_permissions = "MANAGE_GUILD",
    subcommands(
        "user",
        "users",
        "recovery",
        "settings",
        "plex_account",
        "server",
        "group",
        "plan",
        "super::admin_payments::payments"
    )
)]
pub async fn admin(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

// ---- /admin user ----------------------------------------------------------------------------

/// One subscriber: show, flag, unflag, note.
#[poise::command(
    slash_command,
    subcommands("user_show", "user_flag", "user_unflag", "user_note")
)]
pub async fn user(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

async fn subscriber_of(app: &App, user: &serenity::User) -> Result<account::AccountStatus, Error> {
    account::status(app, DiscordId::new(user.id.get())?)
        .await?
        .ok_or_else(|| Refusal::new(format!("{} is not a subscriber.", user.name)).into())
}

/// Shows a subscriber's account, flag and notes.
#[poise::command(slash_command, rename = "show")]
pub async fn user_show(
    ctx: Context<'_>,
    #[description = "The subscriber"] user: serenity::User,
) -> Result<(), Error> {
    let status = subscriber_of(ctx.data(), &user).await?;
    let embed = super::account::status_embed(&status, true);
    ctx.send(poise::CreateReply::default().embed(embed).ephemeral(true))
        .await?;
    Ok(())
}

/// Flags a subscriber: they must change to a new Plex account (they get a DM).
#[poise::command(slash_command, rename = "flag")]
pub async fn user_flag(
    ctx: Context<'_>,
    #[description = "The subscriber"] user: serenity::User,
) -> Result<(), Error> {
    set_flag(ctx, &user, true).await
}

/// Clears a subscriber's "must change Plex account" flag.
#[poise::command(slash_command, rename = "unflag")]
pub async fn user_unflag(
    ctx: Context<'_>,
    #[description = "The subscriber"] user: serenity::User,
) -> Result<(), Error> {
    set_flag(ctx, &user, false).await
}

async fn set_flag(ctx: Context<'_>, user: &serenity::User, flagged: bool) -> Result<(), Error> {
    let status = subscriber_of(ctx.data(), user).await?;
    let actor = admin_actor(ctx.author().id)?;
    let changed = account_change::set_flag(ctx.data(), &actor, status.subscriber, flagged).await?;
    let text = match (changed, flagged) {
        (true, true) => format!(
            "{} is flagged: they must change Plex account. A DM with a button is on its way.",
            user.name
        ),
        (true, false) => format!("{} is no longer flagged.", user.name),
        (false, true) => format!("{} was already flagged; nothing changed.", user.name),
        (false, false) => format!("{} was not flagged; nothing changed.", user.name),
    };
    say(ctx, text).await
}

/// Replaces a subscriber's admin note (empty text clears it).
#[poise::command(slash_command, rename = "note")]
pub async fn user_note(
    ctx: Context<'_>,
    #[description = "The subscriber"] user: serenity::User,
    #[description = "The note (replaces the old one; leave out to clear)"] text: Option<String>,
) -> Result<(), Error> {
    let status = subscriber_of(ctx.data(), &user).await?;
    let actor = admin_actor(ctx.author().id)?;
    let text = text.unwrap_or_default();
    account::set_note(ctx.data(), &actor, status.subscriber, &text).await?;
    let reply = if text.trim().is_empty() {
        format!("Cleared the note on {}.", user.name)
    } else {
        format!("Saved the note on {}.", user.name)
    };
    say(ctx, reply).await
}

// ---- /admin users ---------------------------------------------------------------------------

/// Many subscribers: bulk flag, export.
#[poise::command(slash_command, subcommands("users_flag", "users_export"))]
pub async fn users(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// Subscription state, as a bulk-flag filter.
#[derive(Debug, Clone, Copy, poise::ChoiceParameter)]
pub enum StateChoice {
    /// Permanent or paid for now.
    #[name = "active"]
    Active,
    /// Neither.
    #[name = "inactive"]
    Inactive,
}

async fn autocomplete_server(
    ctx: Context<'_>,
    partial: &str,
) -> serenity::CreateAutocompleteResponse {
    let servers = catalog::servers(ctx.data()).await.unwrap_or_default();
    let items = servers.into_iter().map(|s| {
        let label = format!("{} ({} users, owner {})", s.name, s.users, s.owner_state);
        (label, s.id.to_string())
    });
    admin_choices(ctx, partial, items)
}

async fn autocomplete_owner(
    ctx: Context<'_>,
    partial: &str,
) -> serenity::CreateAutocompleteResponse {
    let accounts = catalog::owner_accounts(ctx.data())
        .await
        .unwrap_or_default();
    let items = accounts
        .into_iter()
        .map(|a| (format!("{} ({})", a.name, a.state), a.id.to_string()));
    admin_choices(ctx, partial, items)
}

pub(super) async fn autocomplete_plan(
    ctx: Context<'_>,
    partial: &str,
) -> serenity::CreateAutocompleteResponse {
    let plans = catalog::plans(ctx.data()).await.unwrap_or_default();
    admin_choices(
        ctx,
        partial,
        plans.into_iter().map(|p| (p.name, p.id.to_string())),
    )
}

pub(super) fn parse_id(raw: &str, what: &str) -> Result<i64, Error> {
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| Refusal::new(format!("pick the {what} from the list (got `{raw}`)")).into())
}

/// Flags many subscribers at once: shows who first, then asks to confirm.
#[poise::command(slash_command, rename = "flag")]
pub async fn users_flag(
    ctx: Context<'_>,
    #[description = "Everyone"] everyone: Option<bool>,
    #[description = "Subscribers with access to this server"]
    #[autocomplete = "autocomplete_server"]
    server: Option<String>,
    #[description = "Subscribers on any server of this owner Plex account"]
    #[autocomplete = "autocomplete_owner"]
    owner_account: Option<String>,
    #[description = "Subscribers on this plan"]
    #[autocomplete = "autocomplete_plan"]
    plan: Option<String>,
    #[description = "Subscribers whose subscription is active or inactive"] state: Option<
        StateChoice,
    >,
) -> Result<(), Error> {
    let mut filters = Vec::new();
    if everyone == Some(true) {
        filters.push(FlagFilter::Everyone);
    }
    if let Some(raw) = server {
        filters.push(FlagFilter::Server(ServerId::new(parse_id(&raw, "server")?)));
    }
    if let Some(raw) = owner_account {
        filters.push(FlagFilter::OwnerAccount(OwnerAccountId::new(parse_id(
            &raw,
            "owner account",
        )?)));
    }
    if let Some(raw) = plan {
        filters.push(FlagFilter::Plan(PlanId::new(parse_id(&raw, "plan")?)));
    }
    if let Some(state) = state {
        filters.push(FlagFilter::State(match state {
            StateChoice::Active => SubscriptionState::Active,
            StateChoice::Inactive => SubscriptionState::Inactive,
        }));
    }
    let [filter] = filters[..] else {
        return Err(Refusal::new(
            "give exactly one filter: everyone, server, owner_account, plan or state",
        )
        .into());
    };
    ctx.defer_ephemeral().await?;
    let actor = admin_actor(ctx.author().id)?;
    let preview = account_change::preview_bulk_flag(ctx.data(), &actor, filter).await?;
    if preview.count == 0 {
        ctx.send(
            poise::CreateReply::default()
                .content("Nobody matches that filter (or everyone matching is flagged already); nothing to do.")
                .ephemeral(true),
        )
        .await?;
        return Ok(());
    }
    let mut names = preview.first_names.join("\n");
    if preview.count > i64::try_from(preview.first_names.len()).unwrap_or(i64::MAX) {
        let _ = write!(
            names,
            "\n… and {} more",
            preview.count - i64::try_from(preview.first_names.len()).unwrap_or(0)
        );
    }
    let embed = serenity::CreateEmbed::new()
        .title(format!("Flag {} subscribers?", preview.count))
        .description(format!(
            "They must change to a new Plex account, and each gets a DM with a button.\n\n{names}"
        ))
        .footer(serenity::CreateEmbedFooter::new(format!(
            "This confirmation works for {} minutes, once.",
            account_change::PREVIEW_MINUTES
        )))
        .color(0x00E7_4C3C);
    let confirm = format!("{BULK_CONFIRM}{}", preview.token);
    if confirm.len() > 100 {
        return Err(anyhow::anyhow!(
            "bulk-flag confirmation id is {} characters",
            confirm.len()
        ));
    }
    let buttons = serenity::CreateActionRow::Buttons(vec![
        serenity::CreateButton::new(confirm)
            .label(format!("Flag {}", preview.count))
            .style(serenity::ButtonStyle::Danger),
        serenity::CreateButton::new(BULK_CANCEL)
            .label("Cancel")
            .style(serenity::ButtonStyle::Secondary),
    ]);
    ctx.send(
        poise::CreateReply::default()
            .embed(embed)
            .components(vec![buttons])
            .ephemeral(true),
    )
    .await?;
    Ok(())
}

/// Exports every subscriber as CSV (Discord id, name, Plex email, plan, server, state…).
#[poise::command(slash_command, rename = "export")]
pub async fn users_export(ctx: Context<'_>) -> Result<(), Error> {
    ctx.defer_ephemeral().await?;
    let csv = export::all_users_csv(ctx.data()).await?;
    let name = format!(
        "usher-users-{}.csv",
        ctx.data().clock.now().format("%Y%m%d-%H%M")
    );
    ctx.send(
        poise::CreateReply::default()
            .content("Every subscriber, as of now:")
            .attachment(serenity::CreateAttachment::bytes(csv, name))
            .ephemeral(true),
    )
    .await?;
    Ok(())
}

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

// ---- /admin settings ------------------------------------------------------------------------

/// Usher's settings.
#[poise::command(slash_command, subcommands("settings_show", "settings_set"))]
pub async fn settings(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// Shows the settings admins can change here.
#[poise::command(slash_command, rename = "show")]
pub async fn settings_show(ctx: Context<'_>) -> Result<(), Error> {
    let on = settings::plex_account_change(ctx.data()).await?;
    let lifecycle = settings::lifecycle(ctx.data()).await?;
    let text = format!(
        "**Plex account change processing**: {}\n**Reminder days** (before the paid time ends): {}\n**Share grace days** (a lapsed subscriber's place on their server is kept this long): {}",
        if on { "on" } else { "off" },
        lifecycle.reminder_days_text(),
        lifecycle.share_grace_days,
    );
    say(ctx, text).await
}

/// Changes settings: name one or more.
#[poise::command(slash_command, rename = "set")]
pub async fn settings_set(
    ctx: Context<'_>,
    #[description = "Plex account change processing (lets flagged subscribers change accounts)"]
    plex_account_change: Option<bool>,
    #[description = "Days before the paid time ends that reminders go out, e.g. 3,1 (or none)"]
    reminder_days: Option<String>,
    #[description = "Days a lapsed subscriber's place on their server is kept before the share is deleted"]
    share_grace_days: Option<i64>,
) -> Result<(), Error> {
    let actor = admin_actor(ctx.author().id)?;
    let mut lines = Vec::new();
    if reminder_days.is_some() || share_grace_days.is_some() {
        // Checked before anything changes: a bad value refuses the whole command.
        let now = settings::set_lifecycle(
            ctx.data(),
            &actor,
            reminder_days.as_deref(),
            share_grace_days,
        )
        .await
        .map_err(|e| match e {
            settings::SettingError::Unexpected(err) => Error::from(err),
            other => Refusal::new(other.to_string()).into(),
        })?;
        if reminder_days.is_some() {
            lines.push(format!(
                "Reminder days are now **{}**.",
                now.reminder_days_text()
            ));
        }
        if share_grace_days.is_some() {
            lines.push(format!(
                "Share grace days are now **{}**.",
                now.share_grace_days
            ));
        }
    }
    if let Some(on) = plex_account_change {
        settings::set_plex_account_change(ctx.data(), &actor, on).await?;
        lines.push(format!(
            "Plex account change processing is now **{}**.",
            if on { "on" } else { "off" }
        ));
    }
    if lines.is_empty() {
        return Err(Refusal::new("name at least one setting to change").into());
    }
    say(ctx, lines.join("\n")).await
}

// ---- /admin plex-account --------------------------------------------------------------------

/// Owner Plex accounts: add, list, test, remove, mark banned.
#[poise::command(
    slash_command,
    rename = "plex-account",
    subcommands(
        "owner_add",
        "owner_list",
        "owner_test",
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
            "`{}` **{}**: {}{}",
            a.id,
            a.name,
            a.state,
            if a.plex_pass { ", Plex Pass" } else { "" }
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
    let id = OwnerAccountId::new(parse_id(&account, "owner account")?);
    ctx.defer_ephemeral().await?;
    let tested = plex_admin::test_owner_account(ctx.data(), id).await?;
    let text = format!(
        "plex.tv accepts the token of **{}**{}.",
        tested.name,
        if tested.plex_pass { " (Plex Pass)" } else { "" }
    );
    say(ctx, text).await
}

/// Removes an owner Plex account (after a ban): subscribers keep their data.
#[poise::command(slash_command, rename = "remove")]
pub async fn owner_remove(
    ctx: Context<'_>,
    #[description = "The owner Plex account"]
    #[autocomplete = "autocomplete_owner"]
    account: String,
) -> Result<(), Error> {
    let id = OwnerAccountId::new(parse_id(&account, "owner account")?);
    let actor = admin_actor(ctx.author().id)?;
    let removed = plex_admin::remove_owner_account(ctx.data(), &actor, id).await?;
    let text = format!(
        "Removed. {} server assignments were cleared; every subscriber keeps their data.",
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
    let id = OwnerAccountId::new(parse_id(&account, "owner account")?);
    let actor = admin_actor(ctx.author().id)?;
    let snapshot = plex_admin::mark_owner_banned(ctx.data(), &actor, id).await?;
    let text = format!(
        "Marked banned. Its users were saved to `{}` on the Usher host. Next: add new accounts and servers, then `/admin users flag`.",
        snapshot.display()
    );
    say(ctx, text).await
}

// ---- /admin server --------------------------------------------------------------------------

/// Servers: add, list, set, sync libraries.
#[poise::command(
    slash_command,
    subcommands("server_add", "server_list", "server_set", "server_sync")
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
    let owner = OwnerAccountId::new(parse_id(&account, "owner account")?);
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
            "`{}` **{}** {}/{} users{}{}{}{}",
            s.id,
            s.name,
            s.users,
            s.max_users,
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
    let id = ServerId::new(parse_id(&server, "server")?);
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
    let id = ServerId::new(parse_id(&server, "server")?);
    ctx.defer_ephemeral().await?;
    let actor = admin_actor(ctx.author().id)?;
    let synced = plex_admin::sync_libraries(ctx.data(), &actor, id).await?;
    let text = format!(
        "Libraries synced: {} new, {} kept, {} gone.",
        synced.added, synced.kept, synced.removed
    );
    say(ctx, text).await
}

// ---- /admin group ---------------------------------------------------------------------------

/// Library groups: create, list, assign a library.
#[poise::command(
    slash_command,
    subcommands("group_create", "group_list", "group_assign")
)]
pub async fn group(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// Creates a library group (e.g. Standard, 4K; a private group is never shared).
#[poise::command(slash_command, rename = "create")]
pub async fn group_create(
    ctx: Context<'_>,
    #[description = "Group name"] name: String,
    #[description = "Never shared with anyone"] private: Option<bool>,
) -> Result<(), Error> {
    let actor = admin_actor(ctx.author().id)?;
    plex_admin::create_group(ctx.data(), &actor, &name, private.unwrap_or(false)).await?;
    let text = format!(
        "Created the group **{}**. Put libraries in it with `/admin group assign`.",
        name.trim()
    );
    say(ctx, text).await
}

/// Lists library groups and the libraries in each.
#[poise::command(slash_command, rename = "list")]
pub async fn group_list(ctx: Context<'_>) -> Result<(), Error> {
    let groups = catalog::groups(ctx.data()).await?;
    let libraries = catalog::libraries(ctx.data()).await?;
    let mut text = String::new();
    for g in &groups {
        let members: Vec<String> = libraries
            .iter()
            .filter(|l| l.group.as_deref() == Some(g.name.as_str()))
            .map(|l| format!("{} / {}", l.server, l.title))
            .collect();
        let _ = writeln!(
            text,
            "**{}**{}: {}",
            g.name,
            if g.private { " (private)" } else { "" },
            if members.is_empty() {
                "no libraries".to_owned()
            } else {
                members.join(", ")
            }
        );
    }
    let loose = libraries.iter().filter(|l| l.group.is_none()).count();
    if loose > 0 {
        let _ = writeln!(text, "{loose} libraries are in no group (never shared).");
    }
    if text.is_empty() {
        text = "No groups yet: create one with `/admin group create`.".into();
    }
    say(ctx, text).await
}

async fn autocomplete_library(
    ctx: Context<'_>,
    partial: &str,
) -> serenity::CreateAutocompleteResponse {
    let libraries = catalog::libraries(ctx.data()).await.unwrap_or_default();
    let items = libraries
        .into_iter()
        .map(|l| (format!("{} / {}", l.server, l.title), l.id.to_string()));
    admin_choices(ctx, partial, items)
}

async fn autocomplete_group(
    ctx: Context<'_>,
    partial: &str,
) -> serenity::CreateAutocompleteResponse {
    let groups = catalog::groups(ctx.data()).await.unwrap_or_default();
    let none = ("(no group: never shared)".to_owned(), "none".to_owned());
    let items = groups
        .into_iter()
        .take(24)
        .map(|g| (g.name, g.id.to_string()))
        .chain(std::iter::once(none));
    admin_choices(ctx, partial, items)
}

/// Puts a library in a group (or in none).
#[poise::command(slash_command, rename = "assign")]
pub async fn group_assign(
    ctx: Context<'_>,
    #[description = "The library"]
    #[autocomplete = "autocomplete_library"]
    library: String,
    #[description = "The group, or none"]
    #[autocomplete = "autocomplete_group"]
    group: String,
) -> Result<(), Error> {
    let library = LibraryId::new(parse_id(&library, "library")?);
    let group = if group.trim() == "none" {
        None
    } else {
        Some(LibraryGroupId::new(parse_id(&group, "group")?))
    };
    let actor = admin_actor(ctx.author().id)?;
    plex_admin::assign_library(ctx.data(), &actor, library, group).await?;
    say(
        ctx,
        "Saved. Shares of plans with that group are updated in the background.",
    )
    .await
}

// ---- /admin plan ----------------------------------------------------------------------------

/// Plans: create, list, set provider ids.
#[poise::command(
    slash_command,
    subcommands("plan_create", "plan_list", "super::admin_payments::plan_set_provider")
)]
pub async fn plan(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// Creates a plan with its price, period, streams and library groups.
#[poise::command(slash_command, rename = "create")]
#[allow(clippy::too_many_arguments)] // one per slash-command option
pub async fn plan_create(
    ctx: Context<'_>,
    #[description = "Plan name"] name: String,
    #[description = "Price per period, e.g. 8 or 7.50"] price: String,
    #[description = "Currency, e.g. USD"] currency: String,
    #[description = "Billing period: week, month, quarter, half_year or year"] period: String,
    #[description = "Concurrent streams"] streams: i32,
    #[description = "Library groups, separated by commas (e.g. Standard, 4K)"] groups: String,
    #[description = "A trial plan"] trial: Option<bool>,
) -> Result<(), Error> {
    let currency = Currency::parse(&currency).map_err(|e| Refusal::new(e.to_string()))?;
    let price = Money::parse(&price, currency).map_err(|e| Refusal::new(e.to_string()))?;
    let period: BillingPeriod = period
        .trim()
        .parse()
        .map_err(|e: crate::domain::ParseStateError| Refusal::new(e.to_string()))?;
    let known = catalog::groups(ctx.data()).await?;
    let mut ids = Vec::new();
    for wanted in groups.split(',').map(str::trim).filter(|g| !g.is_empty()) {
        let found = known
            .iter()
            .find(|g| g.name.eq_ignore_ascii_case(wanted))
            .ok_or_else(|| Refusal::new(format!("there is no library group named `{wanted}`")))?;
        ids.push(found.id);
    }
    let spec = PlanSpec {
        name: name.clone(),
        price,
        period,
        max_streams: streams,
        trial: trial.unwrap_or(false),
        groups: ids,
    };
    let actor = admin_actor(ctx.author().id)?;
    plex_admin::create_plan(ctx.data(), &actor, &spec).await?;
    let text = format!("Created the plan **{}**.", name.trim());
    say(ctx, text).await
}

/// Lists plans, with the providers that sell each.
#[poise::command(slash_command, rename = "list")]
pub async fn plan_list(ctx: Context<'_>) -> Result<(), Error> {
    let plans = crate::services::checkout::offers(ctx.data()).await?;
    let mut text = String::new();
    for p in &plans {
        let _ = writeln!(text, "{}", super::admin_payments::plan_line(p));
    }
    if text.is_empty() {
        text = "No plans yet: create one with `/admin plan create`.".into();
    }
    say(ctx, text).await
}

// ---- buttons and modals ---------------------------------------------------------------------

/// Answers the bulk-flag buttons; false for other ids.
pub async fn on_click(
    ctx: &serenity::Context,
    app: &App,
    click: &serenity::ComponentInteraction,
) -> Result<bool, Error> {
    let id = click.data.custom_id.as_str();
    let confirm = id.strip_prefix(BULK_CONFIRM);
    if confirm.is_none() && id != BULK_CANCEL {
        return Ok(false);
    }
    if !is_admin(app, click.user.id, click.member.as_ref()) {
        click
            .create_response(&ctx.http, ephemeral(NOT_ADMIN))
            .await?;
        return Ok(true);
    }
    let text = match confirm {
        Some(token) => {
            let result = async {
                let actor = admin_actor(click.user.id)?;
                Ok::<_, Error>(account_change::confirm_bulk_flag(app, &actor, token).await?)
            }
            .await;
            match result {
                Ok(n) => format!(
                    "Flagged {n} subscribers. Their DMs are on the way; follow along with `/admin recovery status`."
                ),
                Err(err) => reply_failure(&err),
            }
        }
        None => "Cancelled: nobody was flagged.".to_owned(),
    };
    let update = serenity::CreateInteractionResponse::UpdateMessage(
        serenity::CreateInteractionResponseMessage::new()
            .content(text)
            .embeds(Vec::new())
            .components(Vec::new()),
    );
    click.create_response(&ctx.http, update).await?;
    Ok(true)
}

/// Answers the owner-token modal; false for other ids.
pub async fn on_submit(
    ctx: &serenity::Context,
    app: &App,
    submit: &serenity::ModalInteraction,
) -> Result<bool, Error> {
    if submit.data.custom_id != TOKEN_MODAL {
        return Ok(false);
    }
    if !is_admin(app, submit.user.id, submit.member.as_ref()) {
        submit
            .create_response(&ctx.http, ephemeral(NOT_ADMIN))
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
    let result = async {
        let actor = admin_actor(submit.user.id)?;
        Ok::<_, Error>(plex_admin::add_owner_account(app, &actor, &token).await?)
    }
    .await;
    // The reply names the account only; the token is never echoed.
    let text = match result {
        Ok(added) => format!(
            "Added the owner Plex account **{}**{}.",
            added.name,
            if added.plex_pass { " (Plex Pass)" } else { "" }
        ),
        Err(err) => reply_failure(&err),
    };
    submit
        .edit_response(
            &ctx.http,
            serenity::EditInteractionResponse::new().content(text),
        )
        .await?;
    Ok(true)
}
