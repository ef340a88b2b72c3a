//! The `usher` command: parse the CLI, load the configuration, start tracing, build the App, run
//! the doors, and report which one stopped.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use usher::clock::SystemClock;
use usher::config::{Role, Settings};
use usher::jobs::AppDispatch;
use usher::{App, bot, ops, scheduler, web};

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
    Run {
        /// The parts to run in this process, comma-separated: web, jobs, bot, scheduler (default:
        /// `roles` in the configuration, which defaults to all). Processes sharing one PostgreSQL
        /// database may split them; exactly one may run `bot`.
        #[arg(long, value_delimiter = ',', value_name = "ROLES")]
        roles: Option<Vec<Role>>,
    },
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
    /// One subscriber: add a cash or bank customer, record a payment.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Adopt the people an owner already shares with: from plex.tv.
    Import {
        #[command(subcommand)]
        action: ImportAction,
    },
    /// Check the configuration against the world: one line per check, ✓ or ✗ with the fix;
    /// exits 1 when any check fails. Changes nothing.
    Doctor,
    /// Back the installation up into one archive while it runs: a consistent copy of the SQLite
    /// database and the secret key, with a manifest (PostgreSQL: the key alone; use `pg_dump`).
    Backup {
        /// The archive to write (must not exist).
        file: PathBuf,
    },
    /// Restore an archive made by `usher backup` into a new or empty data folder.
    Restore {
        /// The archive.
        file: PathBuf,
        /// The data folder to restore into; refused unless it is new or empty.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
    },
    /// Owner Plex accounts (the Plex logins that own the servers).
    PlexAccount {
        #[command(subcommand)]
        action: PlexAccountAction,
    },
    /// Plex servers of the owner accounts.
    Server {
        #[command(subcommand)]
        action: ServerAction,
    },
    /// Plans subscribers buy.
    Plan {
        #[command(subcommand)]
        action: PlanAction,
    },
}

#[derive(Debug, Subcommand)]
enum PlexAccountAction {
    /// Add an owner Plex account: sign in to Plex in a browser (the link is printed, Usher waits
    /// for the approval), or give its token with --token-file. The token is tested against
    /// plex.tv, stored encrypted and never shown.
    Add {
        /// Read the token from this file instead of signing in; `-` reads standard input.
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
    },
    /// List the owner Plex accounts.
    List,
}

#[derive(Debug, Subcommand)]
enum ServerAction {
    /// Add a server the owner account owns and read its libraries.
    Add {
        /// The owner Plex account (its name, or #id).
        #[arg(long)]
        account: String,
        /// The server's name on plex.tv.
        #[arg(
            long,
            conflicts_with = "machine_id",
            required_unless_present = "machine_id"
        )]
        name: Option<String>,
        /// The server's machine identifier.
        #[arg(long)]
        machine_id: Option<String>,
    },
    /// List the servers with their users and switches.
    List,
}

#[derive(Debug, Subcommand)]
enum PlanAction {
    /// Create a plan.
    Create {
        /// Unique name.
        #[arg(long)]
        name: String,
        /// Price per period, e.g. 8 or 7.50.
        #[arg(long)]
        price: String,
        /// Currency, e.g. USD.
        #[arg(long)]
        currency: String,
        /// Billing period: week, month, quarter, `half_year` or year.
        #[arg(long)]
        period: String,
        /// Concurrent streams.
        #[arg(long, default_value_t = 1)]
        streams: i32,
        /// Library groups, separated by commas (e.g. "Standard,4K").
        #[arg(long, default_value = "")]
        groups: String,
        /// A trial plan.
        #[arg(long)]
        trial: bool,
    },
    /// List the plans, their prices and who sells them.
    List,
}

#[derive(Debug, Subcommand)]
enum UserAction {
    /// Add a cash or bank customer: their Plex account (checked on plex.tv), plan and payment
    /// (or --permanent); they are invited.
    Add {
        /// The member's Discord id.
        #[arg(long)]
        discord_id: u64,
        /// Their name.
        #[arg(long)]
        name: String,
        /// Their Plex account's email (or username).
        #[arg(long)]
        plex_email: String,
        /// The plan (name or id).
        #[arg(long)]
        plan: String,
        /// Days paid from today.
        #[arg(long)]
        days: Option<i64>,
        /// Paid until this date (2026-12-31).
        #[arg(long)]
        until: Option<String>,
        /// Never expires.
        #[arg(long)]
        permanent: bool,
        /// The payment's receipt or bank reference (unique).
        #[arg(long)]
        transaction: Option<String>,
        /// How much they paid, in the plan's currency (8 or 7.50).
        #[arg(long)]
        amount: Option<String>,
        /// Where receipts and reminders are emailed.
        #[arg(long)]
        contact_email: Option<String>,
        /// A note for the admins.
        #[arg(long)]
        note: Option<String>,
    },
    /// Record a cash or bank payment: days from the later of now and their paid end, or until a
    /// date.
    Pay {
        /// The subscriber's Discord id.
        #[arg(long)]
        discord_id: u64,
        /// Days it pays for.
        #[arg(long)]
        days: Option<i64>,
        /// Paid until this date (2026-12-31).
        #[arg(long)]
        until: Option<String>,
        /// The payment's receipt or bank reference (unique).
        #[arg(long)]
        transaction: Option<String>,
        /// How much they paid, in the plan's currency.
        #[arg(long)]
        amount: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ImportAction {
    /// Import the users of the owner accounts' servers from plex.tv (shares and pending invites):
    /// shows what it adds, then asks (or --yes).
    Plex {
        /// Only this owner Plex account (name or id).
        #[arg(long)]
        owner: Option<String>,
        /// Only this server (name or id).
        #[arg(long)]
        server: Option<String>,
        /// The plan of people whose libraries match no plan (name or id).
        #[arg(long)]
        default_plan: Option<String>,
        /// They never expire.
        #[arg(long)]
        permanent: bool,
        /// They are paid this many days from now.
        #[arg(long)]
        days: Option<i64>,
        /// They are paid until this date (2026-12-31).
        #[arg(long)]
        until: Option<String>,
        /// Show what it would do; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Import without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Import people from a CSV file: the first line names the columns (the Plex email is
    /// required; see the README, CSV import); `usher users export` files import too.
    Csv {
        /// The CSV file.
        file: PathBuf,
        /// Check every row and show what it would do; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Import the good rows and list the bad ones (default: nothing unless all are good).
        #[arg(long)]
        skip_bad: bool,
    },
}

/// Who `usher users list` shows.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ListFilter {
    /// Everyone.
    Everyone,
    /// Paid time ends within --days (default 7).
    Expiring,
    /// Paid once, not now.
    Expired,
    /// Imported, not claimed yet.
    Unclaimed,
    /// On a trial now.
    Trial,
    /// Waiting for a server with room.
    Waiting,
    /// Must change Plex account.
    Flagged,
}

#[derive(Debug, Subcommand)]
enum UsersAction {
    /// List subscribers, 20 a page, soonest paid end first.
    List {
        /// Who to list.
        #[arg(long, value_enum, default_value = "everyone")]
        filter: ListFilter,
        /// With `expiring`: within this many days.
        #[arg(long, default_value_t = 7)]
        days: i64,
        /// Only subscribers on this plan (name or id).
        #[arg(long)]
        plan: Option<String>,
        /// Only subscribers with access to this server (name or id).
        #[arg(long)]
        server: Option<String>,
        /// The page, from 1.
        #[arg(long, default_value_t = 1)]
        page: i64,
    },
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
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::from(2);
        }
    };
    ops::logging::init(settings.log.format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    let result = runtime
        .context("starting the async runtime")
        .and_then(|rt| {
            rt.block_on(async {
                let creates_data = !matches!(
                    cli.command,
                    Command::Doctor | Command::Restore { .. } | Command::Config { .. }
                );
                if creates_data {
                    ops::create_data_dir(&settings.data_dir)?;
                }
                match cli.command {
                    Command::Run { roles } => run(settings, roles).await,
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
                    Command::Users { action } => users(settings, action).await,
                    Command::User { action } => user(settings, action).await,
                    Command::Import { action } => import(settings, action).await,
                    Command::Doctor => {
                        let report = ops::doctor::run(settings).await;
                        for check in &report {
                            println!("{check}");
                        }
                        let failed = report.iter().filter(|c| c.failed()).count();
                        anyhow::ensure!(failed == 0, "{failed} of the checks above failed");
                        Ok(())
                    }
                    Command::Backup { file } => {
                        print!("{}", ops::backup::backup(&settings, &file).await?);
                        Ok(())
                    }
                    Command::Restore { file, data_dir } => {
                        print!("{}", ops::backup::restore(&file, &data_dir)?);
                        Ok(())
                    }
                    Command::PlexAccount { action } => plex_account(settings, action).await,
                    Command::Server { action } => server(settings, action).await,
                    Command::Plan { action } => plan(settings, action).await,
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

async fn user(settings: Settings, action: UserAction) -> anyhow::Result<()> {
    match action {
        UserAction::Add {
            discord_id,
            name,
            plex_email,
            plan,
            days,
            until,
            permanent,
            transaction,
            amount,
            contact_email,
            note,
        } => {
            let input = ops::members::AddInput {
                discord_id,
                name,
                plex_email,
                plan,
                standing: ops::members::standing(days, until.as_deref(), permanent)?,
                transaction,
                amount,
                contact_email,
                note,
            };
            with_app(settings, |app| async move {
                ops::members::add(&app, &input).await
            })
            .await
        }
        UserAction::Pay {
            discord_id,
            days,
            until,
            transaction,
            amount,
        } => {
            let coverage = match ops::members::standing(days, until.as_deref(), false)? {
                usher::services::members::Standing::Days(days) => {
                    usher::services::payments::Coverage::Days(days)
                }
                usher::services::members::Standing::Until(until) => {
                    usher::services::payments::Coverage::Until(until)
                }
                usher::services::members::Standing::Permanent => {
                    anyhow::bail!("give --days or --until")
                }
            };
            with_app(settings, |app| async move {
                ops::members::pay(&app, discord_id, coverage, transaction, amount).await
            })
            .await
        }
    }
}

async fn import(settings: Settings, action: ImportAction) -> anyhow::Result<()> {
    match action {
        ImportAction::Plex {
            owner,
            server,
            default_plan,
            permanent,
            days,
            until,
            dry_run,
            yes,
        } => {
            let input = ops::import::PlexInput {
                owner,
                server,
                default_plan,
                standing: ops::members::standing(days, until.as_deref(), permanent)?,
                dry_run,
                yes,
            };
            with_app(settings, |app| async move {
                ops::import::plex(&app, &input).await
            })
            .await
        }
        ImportAction::Csv {
            file,
            dry_run,
            skip_bad,
        } => {
            with_app(settings, |app| async move {
                ops::import::csv(&app, &file, dry_run, skip_bad).await
            })
            .await
        }
    }
}

async fn users(settings: Settings, action: UsersAction) -> anyhow::Result<()> {
    let UsersAction::List {
        filter,
        days,
        plan,
        server,
        page,
    } = action
    else {
        unreachable!("export is handled before")
    };
    with_app(settings, |app| async move {
        use usher::store::subscribers::MemberFilter;
        let filter = match (filter, plan, server) {
            (ListFilter::Everyone, None, None) => MemberFilter::All,
            (ListFilter::Everyone, Some(plan), None) => {
                MemberFilter::Plan(ops::members::find_plan(&app, &plan).await?)
            }
            (ListFilter::Everyone, None, Some(server)) => {
                MemberFilter::Server(ops::members::find_server(&app, &server).await?)
            }
            (ListFilter::Expiring, None, None) => {
                anyhow::ensure!(days >= 1, "--days must be at least 1");
                MemberFilter::ExpiringWithin(days)
            }
            (ListFilter::Expired, None, None) => MemberFilter::Expired,
            (ListFilter::Unclaimed, None, None) => MemberFilter::Unclaimed,
            (ListFilter::Trial, None, None) => MemberFilter::Trial,
            (ListFilter::Waiting, None, None) => MemberFilter::WaitingForRoom,
            (ListFilter::Flagged, None, None) => MemberFilter::Flagged,
            _ => anyhow::bail!("give one filter: --filter, --plan or --server"),
        };
        ops::members::list(&app, filter, page - 1).await
    })
    .await
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

/// Builds the app for a one-shot command, runs `work`, prints what it says and closes the
/// database again.
async fn with_app<F, Fut>(settings: Settings, work: F) -> anyhow::Result<()>
where
    F: FnOnce(App) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<String>>,
{
    let app = App::build(settings, Arc::new(SystemClock)).await?;
    let db = app.db.clone();
    let result = work(app).await;
    db.close().await;
    let text = result?;
    print!("{text}");
    if !text.ends_with('\n') {
        println!();
    }
    Ok(())
}

async fn plex_account(settings: Settings, action: PlexAccountAction) -> anyhow::Result<()> {
    match action {
        PlexAccountAction::Add {
            token_file: Some(path),
        } => {
            let token = ops::setup::read_token(&path)?;
            with_app(settings, |app| async move {
                Ok(ops::setup::add_owner_with_token(&app, &token).await?)
            })
            .await
        }
        PlexAccountAction::Add { token_file: None } => {
            with_app(settings, |app| async move {
                ops::setup::add_owner_with_sign_in(&app, PIN_POLL, |link| {
                    println!("Sign in to Plex as the owner of the servers and approve Usher:\n\n  {link}\n\nWaiting for the approval (Ctrl-C gives up)…");
                })
                .await
            })
            .await
        }
        PlexAccountAction::List => {
            with_app(settings, |app| async move {
                ops::setup::list_owner_accounts(&app).await
            })
            .await
        }
    }
}

/// How often `plex-account add` asks plex.tv whether the sign-in was approved.
const PIN_POLL: std::time::Duration = std::time::Duration::from_secs(2);

async fn server(settings: Settings, action: ServerAction) -> anyhow::Result<()> {
    match action {
        ServerAction::Add {
            account,
            name,
            machine_id,
        } => {
            let wanted = match (name, machine_id) {
                (Some(name), _) => ops::setup::ServerWanted::Name(name),
                (None, Some(id)) => ops::setup::ServerWanted::MachineId(id),
                (None, None) => anyhow::bail!("give --name or --machine-id"),
            };
            with_app(settings, |app| async move {
                ops::setup::add_server(&app, &account, &wanted).await
            })
            .await
        }
        ServerAction::List => {
            with_app(settings, |app| async move {
                ops::setup::list_servers(&app).await
            })
            .await
        }
    }
}

async fn plan(settings: Settings, action: PlanAction) -> anyhow::Result<()> {
    match action {
        PlanAction::Create {
            name,
            price,
            currency,
            period,
            streams,
            groups,
            trial,
        } => {
            let input = ops::setup::PlanInput {
                name,
                price,
                currency,
                period,
                streams,
                groups,
                trial,
            };
            with_app(settings, |app| async move {
                ops::setup::create_plan(&app, &input).await
            })
            .await
        }
        PlanAction::List => {
            with_app(
                settings,
                |app| async move { ops::setup::list_plans(&app).await },
            )
            .await
        }
    }
}

async fn run(mut settings: Settings, roles: Option<Vec<Role>>) -> anyhow::Result<()> {
    if let Some(roles) = roles {
        settings.roles = roles;
    }
    let mut roles = settings.roles.clone();
    roles.sort_unstable();
    roles.dedup();
    anyhow::ensure!(!roles.is_empty(), "--roles: name at least one role");
    let addr = settings.web.addr;
    let app = App::build(settings, Arc::new(SystemClock)).await?;
    let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    tracing::info!(roles = names.join(","), "running");

    let shutdown = CancellationToken::new();
    let mut doors: JoinSet<(&'static str, anyhow::Result<()>)> = JoinSet::new();
    if roles.contains(&Role::Web) {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the web door to {addr} (web.addr)"))?;
        tracing::info!(addr = %listener.local_addr()?, "web door listening");
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
    if roles.contains(&Role::Jobs) {
        let (app, shutdown) = (app.clone(), shutdown.clone());
        doors.spawn(async move {
            let dispatch = Arc::new(AppDispatch::new(app.clone()));
            app.queue.run_workers(dispatch, shutdown).await;
            ("jobs", Ok(()))
        });
    }
    if roles.contains(&Role::Scheduler) {
        let (app, shutdown) = (app.clone(), shutdown.clone());
        doors.spawn(async move {
            scheduler::run(app, shutdown).await;
            ("scheduler", Ok(()))
        });
    }
    match (
        roles.contains(&Role::Bot),
        app.settings.discord.token.clone(),
    ) {
        (true, Some(token)) => {
            let (app, shutdown) = (app.clone(), shutdown.clone());
            doors.spawn(async move { ("bot", bot::run(app, token, shutdown).await) });
        }
        (true, None) => tracing::info!(
            "Discord bot is off: no discord.token is configured (set USHER_DISCORD__TOKEN); web and jobs keep running"
        ),
        (false, _) => tracing::info!("Discord bot is off in this process (not among --roles)"),
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
