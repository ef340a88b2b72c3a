//! The `usher` command: parse the CLI, load the configuration, start tracing, build the App, run
//! the doors, and report which one stopped.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;
use usher::clock::SystemClock;
use usher::config::Settings;
use usher::{App, bot, scheduler, web};

/// Plex access management: plans, payments, invites, expiry and ban recovery, Discord-first.
#[derive(Debug, Parser)]
#[command(name = "usher", version)]
struct Cli {
    /// Configuration file (default: ./usher.toml when it exists).
    #[arg(long, global = true, env = "USHER_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service: web door, job workers, scheduler, and the bot when a token is set.
    Run,
    /// Apply database migrations and exit.
    Migrate,
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Work with subscribers.
    Users {
        #[command(subcommand)]
        action: UsersAction,
    },
}

#[derive(Debug, Subcommand)]
enum UsersAction {
    /// Export every subscriber as CSV (Discord id, name, Plex email, plan, server, state, paid
    /// until, flagged): the backup to take before cleaning up after a ban.
    Export {
        /// File to write; `-` writes to standard output.
        #[arg(long, value_name = "FILE")]
        csv: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Check the configuration and print it with secrets masked.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    let result = runtime
        .context("starting the async runtime")
        .and_then(|rt| {
            rt.block_on(async {
                match cli.command {
                    Command::Run => run(settings).await,
                    Command::Migrate => migrate(settings).await,
                    Command::Config {
                        action: ConfigAction::Check,
                    } => {
                        print!("{}", settings.to_masked_toml());
                        Ok(())
                    }
                    Command::Users {
                        action: UsersAction::Export { csv },
                    } => export_users(settings, &csv).await,
                }
            })
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "usher stopped with an error");
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = EnvFilter::try_from_env("USHER_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,serenity=warn,tracing::span=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn migrate(settings: Settings) -> anyhow::Result<()> {
    usher::store::migrate_configured(&settings).await?;
    tracing::info!("database is up to date");
    Ok(())
}

async fn export_users(settings: Settings, path: &std::path::Path) -> anyhow::Result<()> {
    let app = App::build(settings, Arc::new(SystemClock)).await?;
    let csv = usher::services::export::all_users_csv(&app).await?;
    if path.as_os_str() == "-" {
        use std::io::Write as _;
        std::io::stdout().write_all(&csv)?;
    } else {
        std::fs::write(path, &csv).with_context(|| format!("writing {}", path.display()))?;
        tracing::info!(file = %path.display(), "users exported");
    }
    app.db.close().await;
    Ok(())
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    let addr = settings.web.addr;
    let app = App::build(settings, Arc::new(SystemClock)).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the web door to {addr} (web.addr)"))?;
    tracing::info!(addr = %listener.local_addr()?, "web door listening");

    let shutdown = CancellationToken::new();
    let mut doors: JoinSet<(&'static str, anyhow::Result<()>)> = JoinSet::new();
    {
        let (app, shutdown) = (app.clone(), shutdown.clone());
        doors.spawn(async move {
            (
                "web",
                web::serve(app, listener, shutdown)
                    .await
                    .map_err(Into::into),
            )
        });
    }
    {
        let (app, shutdown) = (app.clone(), shutdown.clone());
        doors.spawn(async move {
            scheduler::run(app, shutdown).await;
            ("scheduler", Ok(()))
        });
    }
    if let Some(token) = app.settings.discord.token.clone() {
        let (app, shutdown) = (app.clone(), shutdown.clone());
        doors.spawn(async move { ("bot", bot::run(app, token, shutdown).await) });
    } else {
        tracing::info!(
            "Discord bot is off: no discord.token is configured (set USHER_DISCORD__TOKEN); web and jobs keep running"
        );
    }

    let mut failure = None;
    tokio::select! {
        () = shutdown_signal() => tracing::info!("shutting down: finishing open requests and running jobs"),
        Some(joined) = doors.join_next() => {
            let (door, result) = joined.context("a door panicked")?;
            tracing::error!(door, "stopped unexpectedly; shutting the rest down");
            failure = Some(result.err().unwrap_or_else(|| anyhow::anyhow!("the {door} stopped unexpectedly")));
        }
    }
    shutdown.cancel();
    while let Some(joined) = doors.join_next().await {
        match joined {
            Ok((door, Ok(()))) => tracing::info!(door, "stopped"),
            Ok((door, Err(err))) => {
                tracing::error!(door, error = format!("{err:#}"), "stopped with an error");
            }
            Err(err) => tracing::error!(error = %err, "a door panicked"),
        }
    }
    app.db.close().await;
    failure.map_or(Ok(()), Err)
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
