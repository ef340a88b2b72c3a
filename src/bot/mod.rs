//! Framework glue for the Discord door: the poise `Data` (the [`App`]), the error type, the one
//! `on_error`, starting the client, and what the bot asks Discord for: its gateway [`INTENTS`],
//! the guild [`PERMISSIONS`] its calls need and the [`invite_url`] that grants them. Commands live
//! in `commands/`.

use poise::serenity_prelude as serenity;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::app::App;

mod reply;

pub use reply::{Error, Refusal, reply_failure, short_ref};

/// What every command receives.
pub type Data = App;
/// A command's context.
pub type Context<'a> = poise::Context<'a, Data, Error>;

/// The gateway intents the bot connects with, none of them privileged (nothing to switch on in
/// the Developer Portal):
/// - `GUILDS`: the guilds the bot is in, their channels and roles (the cache poise and serenity
///   keep for commands and checks);
/// - `DIRECT_MESSAGES`: the DM channels the bot opens to send receipts, reminders and buttons.
///
/// Slash commands, buttons and forms arrive as interactions, which need no intent; Usher reads no
/// message content and lists no members (one member is fetched by id when needed).
pub const INTENTS: serenity::GatewayIntents =
    serenity::GatewayIntents::GUILDS.union(serenity::GatewayIntents::DIRECT_MESSAGES);

/// The guild permissions the bot's calls need, each for a call Usher makes:
/// - Manage Roles: give and take the subscriber roles (`PUT`/`DELETE
///   /guilds/{guild}/members/{user}/roles/{role}`); the bot's own role must also sit above them;
/// - View Channel and Send Messages: post admin alerts and DM fallbacks in
///   `discord.alert_channel_id` and `discord.fallback_channel_id` (`POST
///   /channels/{channel}/messages`).
///
/// Replies to slash commands, buttons and forms, and DMs, need no guild permission.
pub const PERMISSIONS: serenity::Permissions = serenity::Permissions::MANAGE_ROLES
    .union(serenity::Permissions::VIEW_CHANNEL)
    .union(serenity::Permissions::SEND_MESSAGES);

/// The link that adds the bot of `application_id` to a guild with the `bot` and
/// `applications.commands` scopes and [`PERMISSIONS`].
pub fn invite_url(application_id: u64) -> url::Url {
    let mut url = url::Url::parse("https://discord.com/oauth2/authorize").expect("constant URL");
    url.query_pairs_mut()
        .append_pair("client_id", &application_id.to_string())
        .append_pair("permissions", &PERMISSIONS.bits().to_string())
        .append_pair("scope", "bot applications.commands");
    url
}

/// Runs the bot until `shutdown`. It talks to discord.com with serenity's rate limiter on, or,
/// when `discord.api_base_url` is set (tests), to that server with the rate limiter off (serenity
/// ignores the base URL while it is on); the gateway URL then comes from that server's
/// `GET /api/v10/gateway`.
pub async fn run(app: App, token: SecretString, shutdown: CancellationToken) -> anyhow::Result<()> {
    let http = crate::integrations::discord::build_http(
        &token,
        app.settings.discord.api_base_url.as_deref(),
    );
    let guild_ids = app.settings.discord.guild_ids.clone();
    if guild_ids.is_empty() {
        tracing::warn!(
            "no home guild is configured (discord.guild_ids): commands are registered globally, and only the users in discord.admin_user_ids are Usher admins (admin roles and the Administrator permission count only in a home guild)"
        );
    }
    let framework = poise::Framework::builder()
        .options(poise::FrameworkOptions {
            commands: crate::commands::all(),
            on_error: |error| Box::pin(on_error(error)),
            event_handler: |framework, event| Box::pin(on_event(framework, event)),
            // Usher has its own admins (config); no need to ask Discord who owns the application.
            initialize_owners: false,
            ..Default::default()
        })
        .setup(move |ctx, ready, framework| {
            let invite = invite_url(ready.application.id.get());
            Box::pin(async move {
                tracing::info!(invite = %invite, "Discord bot connected; add it to a server with the invite link");
                register(ctx, &framework.options().commands, &guild_ids).await?;
                Ok(app)
            })
        })
        .build();
    // Never call `.token()` on this builder: it would replace the `Http` (and its base URL).
    let mut client = serenity::ClientBuilder::new_with_http(http, INTENTS)
        .framework(framework)
        .await?;
    let shards = client.shard_manager.clone();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        shards.shutdown_all().await;
    });
    client.start().await?;
    Ok(())
}

/// Registers the commands in each configured guild, or globally when none is configured.
async fn register(
    ctx: &serenity::Context,
    commands: &[poise::Command<Data, Error>],
    guild_ids: &[u64],
) -> anyhow::Result<()> {
    if guild_ids.is_empty() {
        poise::builtins::register_globally(ctx, commands).await?;
        tracing::info!(count = commands.len(), "registered commands globally");
    }
    for id in guild_ids {
        poise::builtins::register_in_guild(ctx, commands, serenity::GuildId::new(*id)).await?;
        tracing::info!(
            guild = id,
            count = commands.len(),
            "registered commands in guild"
        );
    }
    Ok(())
}

/// Buttons and modals: answered here, from the event, so they work after a restart.
async fn on_event(
    framework: poise::FrameworkContext<'_, Data, Error>,
    event: &serenity::FullEvent,
) -> Result<(), Error> {
    if let serenity::FullEvent::InteractionCreate { interaction } = event {
        crate::commands::on_interaction(
            framework.serenity_context,
            framework.user_data,
            interaction,
        )
        .await?;
    }
    Ok(())
}

/// The one place command errors are rendered: a refusal or a service's user-facing error is
/// shown as it is, ephemeral; anything else as a reference, with the cause in the log.
async fn on_error(error: poise::FrameworkError<'_, Data, Error>) {
    let (ctx, text) = match error {
        poise::FrameworkError::Command { error, ctx, .. } => {
            let command = ctx.command().qualified_name.clone();
            let _span = tracing::error_span!("command", name = %command).entered();
            (ctx, reply_failure(&error))
        }
        poise::FrameworkError::CommandCheckFailed { error, ctx, .. } => {
            // Autocomplete runs the checks too; its only possible answer is a list: an empty one.
            if let poise::Context::Application(actx) = ctx
                && actx.interaction_type == poise::CommandInteractionType::Autocomplete
            {
                let empty = serenity::CreateInteractionResponse::Autocomplete(
                    serenity::CreateAutocompleteResponse::new(),
                );
                if let Err(err) = actx.interaction.create_response(ctx.http(), empty).await {
                    tracing::warn!(error = %err, "could not answer a refused autocomplete");
                }
                return;
            }
            let text = error
                .as_ref()
                .and_then(|e| e.user_message().map(str::to_owned))
                .unwrap_or_else(|| {
                    crate::commands::not_admin_reason(ctx.data(), ctx.guild_id()).to_owned()
                });
            (ctx, text)
        }
        poise::FrameworkError::EventHandler { error, event, .. } => {
            let reference = short_ref();
            tracing::error!(
                reference,
                event = event.snake_case_name(),
                error = format!("{error:#}"),
                "event handler failed"
            );
            return;
        }
        other => {
            if let Err(err) = poise::builtins::on_error(other).await {
                tracing::warn!(error = %err, "error while handling a framework error");
            }
            return;
        }
    };
    let reply = poise::CreateReply::default().content(text).ephemeral(true);
    if let Err(err) = ctx.send(reply).await {
        tracing::warn!(error = %err, "could not tell the user about a failed command");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bot_asks_for_no_privileged_intent() {
        assert!((INTENTS & serenity::GatewayIntents::privileged()).is_empty());
        assert_eq!(
            INTENTS,
            serenity::GatewayIntents::GUILDS | serenity::GatewayIntents::DIRECT_MESSAGES
        );
    }

    #[test]
    fn the_invite_link_asks_for_both_scopes_and_the_permissions() {
        let url = invite_url(1_300_000_000_000_000_001);
        assert_eq!(
            url.as_str(),
            "https://discord.com/oauth2/authorize?client_id=1300000000000000001&permissions=268438528&scope=bot+applications.commands"
        );
        assert!(
            !PERMISSIONS.administrator(),
            "never more than the calls need"
        );
    }
}
