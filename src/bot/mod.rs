//! Framework glue for the Discord door: the poise `Data` (the [`App`]), the error type, the one
//! `on_error`, and starting the client. Commands live in `commands/`.

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
    let framework = poise::Framework::builder()
        .options(poise::FrameworkOptions {
            commands: crate::commands::all(),
            on_error: |error| Box::pin(on_error(error)),
            event_handler: |framework, event| Box::pin(on_event(framework, event)),
            // Usher has its own admins (config); no need to ask Discord who owns the application.
            initialize_owners: false,
            ..Default::default()
        })
        .setup(move |ctx, _ready, framework| {
            Box::pin(async move {
                register(ctx, &framework.options().commands, &guild_ids).await?;
                Ok(app)
            })
        })
        .build();
    let intents = serenity::GatewayIntents::GUILDS | serenity::GatewayIntents::DIRECT_MESSAGES;
    // Never call `.token()` on this builder: it would replace the `Http` (and its base URL).
    let mut client = serenity::ClientBuilder::new_with_http(http, intents)
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
                .unwrap_or_else(|| crate::commands::NOT_ADMIN.to_owned());
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
