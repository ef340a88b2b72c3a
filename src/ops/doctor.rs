//! `usher doctor`: the configuration checked against the world, one line per check — `✓` and
//! what was found, `✗` with what is wrong and the fix in words, or `–` for a check that does not
//! apply or cannot run because an earlier one failed. Any `✗` makes the command exit 1.
//!
//! Rules it keeps: it changes nothing (no migration, no key created, no mail sent, no message
//! posted); every remote call is a read; no line shows a secret.

use std::fmt;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;

use poise::serenity_prelude::{self as serenity, Permissions};

use crate::app::App;
use crate::clock::SystemClock;
use crate::config::Settings;
use crate::integrations::discord::{DiscordRest, GuildChannel, GuildRole};
use crate::integrations::email::Mailer;
use crate::integrations::payments::paypal::PayPalClient;
use crate::integrations::payments::plisio::PlisioClient;
use crate::integrations::payments::stripe::StripeClient;
use crate::services::health;
use crate::store::{Db, ops};

/// How one check came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Fine: what was found.
    Pass(String),
    /// Wrong: what is wrong, then the fix in words.
    Fail(String, String),
    /// Not applicable, or not possible after an earlier failure: why.
    Skip(String),
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// How it came out.
    pub outcome: Outcome,
}

impl Check {
    fn pass(name: impl Into<String>, found: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            outcome: Outcome::Pass(found.into()),
        }
    }

    fn fail(name: impl Into<String>, wrong: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            outcome: Outcome::Fail(wrong.into(), fix.into()),
        }
    }

    fn skip(name: impl Into<String>, why: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            outcome: Outcome::Skip(why.into()),
        }
    }

    /// Whether this check failed.
    pub fn failed(&self) -> bool {
        matches!(self.outcome, Outcome::Fail(..))
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Outcome::Pass(found) => write!(f, "✓ {}: {found}", self.name),
            Outcome::Fail(wrong, fix) => write!(f, "✗ {}: {wrong} — {fix}", self.name),
            Outcome::Skip(why) => write!(f, "– {}: {why}", self.name),
        }
    }
}

/// Runs every check, in the order the report lists them.
pub async fn run(settings: Settings) -> Vec<Check> {
    let mut report = Vec::new();
    report.push(data_folder(&settings.data_dir));
    let key = secret_key(&settings);
    let key_usable =
        !matches!(&key.outcome, Outcome::Fail(wrong, _) if wrong.contains("does not exist"));
    report.push(key);

    let db = match Db::connect(&settings).await {
        Ok(db) => {
            report.push(Check::pass(
                "database",
                format!("{} answers", ops::backend_name(&db)),
            ));
            Some(db)
        }
        Err(err) => {
            report.push(Check::fail(
                "database",
                format!("cannot connect ({err:#})"),
                "check database.url (and that PostgreSQL runs), or the data folder for SQLite",
            ));
            report.push(Check::skip("migrations", "needs the database"));
            None
        }
    };
    let migrated = match &db {
        Some(db) => {
            let check = migrations(db).await;
            let ok = !check.failed();
            report.push(check);
            ok
        }
        None => false,
    };

    report.extend(discord(&settings).await);
    report.push(mail(&settings).await);
    report.extend(payments(&settings).await);

    let app = match db {
        Some(db) if migrated && key_usable => {
            match App::assemble(settings, Arc::new(SystemClock), db).await {
                Ok(app) => Some(app),
                Err(err) => {
                    report.push(Check::fail(
                        "installation",
                        format!("cannot start ({err:#})"),
                        "fix the error above; `usher run` would stop with it too",
                    ));
                    None
                }
            }
        }
        Some(db) => {
            db.close().await;
            None
        }
        None => None,
    };
    if let Some(app) = &app {
        report.extend(plex(app).await);
        report.push(public_url(app).await);
        app.db.close().await;
    } else {
        let why = "needs the database, its migrations and the secret key";
        report.push(Check::skip("owner Plex accounts", why));
        report.push(Check::skip("public_url", why));
    }
    report
}

fn mode(path: &Path) -> Option<u32> {
    std::fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o777)
}

fn data_folder(dir: &Path) -> Check {
    let name = "data folder";
    let shown = dir.display();
    let Ok(meta) = std::fs::metadata(dir) else {
        return Check::fail(
            name,
            format!("{shown} does not exist"),
            "start Usher once (`usher run`) to create it, or set data_dir to the folder you restored",
        );
    };
    if !meta.is_dir() {
        return Check::fail(
            name,
            format!("{shown} is not a folder"),
            "point data_dir at a folder",
        );
    }
    let bits = meta.permissions().mode() & 0o777;
    if bits & 0o027 != 0 {
        return Check::fail(
            name,
            format!(
                "{shown} is open to other users (mode {bits:o}): it holds the database and the key"
            ),
            format!("run `chmod 700 {shown}`"),
        );
    }
    let probe = dir.join(format!(".usher-doctor-{}", uuid::Uuid::new_v4().simple()));
    if let Err(err) = std::fs::write(&probe, b"").and_then(|()| std::fs::remove_file(&probe)) {
        return Check::fail(
            name,
            format!("cannot write in {shown} ({err})"),
            "give the user that runs Usher ownership of it (`chown -R`)",
        );
    }
    Check::pass(name, format!("{shown} (mode {bits:o})"))
}

fn secret_key(settings: &Settings) -> Check {
    let name = "secret key";
    if settings.secret_key.is_some() {
        return Check::pass(name, "set in the configuration (secret_key)");
    }
    let path = settings.data_dir.join(crate::ops::backup::KEY);
    let shown = path.display();
    match mode(&path) {
        None => Check::fail(
            name,
            format!("{shown} does not exist"),
            "start Usher once to create it; if this installation has data, restore the key from your backup (without it the stored Plex tokens cannot be read)",
        ),
        Some(bits) if bits & 0o077 != 0 => Check::fail(
            name,
            format!("{shown} is readable by other users (mode {bits:o})"),
            format!("run `chmod 600 {shown}`"),
        ),
        Some(bits) => Check::pass(name, format!("{shown} (mode {bits:o})")),
    }
}

async fn migrations(db: &Db) -> Check {
    let name = "migrations";
    let known = ops::known_migrations(db);
    match ops::applied_migrations(db).await {
        Err(err) => Check::fail(
            name,
            format!("cannot read them ({err})"),
            "check the database user's rights",
        ),
        Ok(applied) => {
            if let Some(newer) = applied.iter().find(|v| !known.contains(v)) {
                return Check::fail(
                    name,
                    format!("the database has migration {newer}, which this Usher does not know"),
                    "run the newer Usher this database was upgraded with",
                );
            }
            let pending = known.iter().filter(|v| !applied.contains(v)).count();
            if pending == 0 {
                Check::pass(name, format!("all {} applied", known.len()))
            } else {
                Check::fail(
                    name,
                    format!("{pending} of {} not applied", known.len()),
                    "run `usher migrate` (or start `usher run`, which applies them)",
                )
            }
        }
    }
}

/// The guilds Usher works in: `discord.guild_ids` and the subscriber roles' guild.
fn home_guilds(settings: &Settings) -> Vec<u64> {
    let mut guilds = settings.discord.guild_ids.clone();
    guilds.extend(settings.discord.subscriber_guild_id);
    guilds.sort_unstable();
    guilds.dedup();
    guilds
}

async fn discord(settings: &Settings) -> Vec<Check> {
    let Some(token) = &settings.discord.token else {
        return vec![Check::skip(
            "Discord",
            "no discord.token configured: the bot is off",
        )];
    };
    let rest = DiscordRest::new(token, settings.discord.api_base_url.as_deref());
    let (bot_id, bot_name) = match rest.current_user().await {
        Ok(me) => me,
        Err(err) => {
            return vec![
                Check::fail(
                    "Discord token",
                    format!("Discord refused it ({err})"),
                    "reset the token in the Developer Portal (your application → Bot → Reset Token) and set discord.token",
                ),
                Check::skip("Discord guilds", "needs a working token"),
            ];
        }
    };
    let mut report = vec![Check::pass(
        "Discord token",
        format!("the bot is {bot_name} ({bot_id})"),
    )];
    let invite = match rest.application_id().await {
        Ok(id) => crate::bot::invite_url(id).to_string(),
        Err(_) => crate::bot::invite_url(bot_id).to_string(),
    };
    let guilds = match rest.guilds().await {
        Ok(guilds) => guilds,
        Err(err) => {
            report.push(Check::fail(
                "Discord guilds",
                format!("cannot list them ({err})"),
                "try again; if it persists, reset the bot token",
            ));
            return report;
        }
    };
    let d = &settings.discord;
    for guild in home_guilds(settings) {
        let name = format!("Discord guild {guild}");
        let Some(found) = guilds.iter().find(|g| g.id == guild) else {
            report.push(Check::fail(
                name,
                "the bot is not in this guild",
                format!("open {invite} and add the bot to it (or fix discord.guild_ids / discord.subscriber_guild_id)"),
            ));
            continue;
        };
        report.push(Check::pass(name, format!("the bot is in {}", found.name)));
        if d.subscriber_guild_id == Some(guild) && !d.subscriber_role_ids.is_empty() {
            let manage = found.permissions.manage_roles() || found.permissions.administrator();
            report.push(if manage {
                Check::pass(format!("Manage Roles in {}", found.name), "granted")
            } else {
                Check::fail(
                    format!("Manage Roles in {}", found.name),
                    "the bot may not give or take roles",
                    "in Server Settings → Roles, give the bot's role Manage Roles (or re-invite it with the invite link)",
                )
            });
            report.extend(role_order(&rest, guild, bot_id, &d.subscriber_role_ids).await);
        }
    }
    for (key, channel) in [
        ("discord.alert_channel_id", d.alert_channel_id),
        ("discord.fallback_channel_id", d.fallback_channel_id),
    ] {
        if let Some(channel) = channel {
            report.push(channel_check(&rest, key, channel, bot_id, &guilds).await);
        }
    }
    report
}

/// The bot's highest role must be above every subscriber role.
async fn role_order(rest: &DiscordRest, guild: u64, bot_id: u64, wanted: &[u64]) -> Vec<Check> {
    let (roles, held) = match (
        rest.roles(guild).await,
        rest.member_roles(guild, bot_id).await,
    ) {
        (Ok(roles), Ok(held)) => (roles, held),
        (Err(err), _) | (_, Err(err)) => {
            return vec![Check::fail(
                "subscriber roles",
                format!("cannot read the roles ({err})"),
                "give the bot View Channel in the guild and try again",
            )];
        }
    };
    let top = roles
        .iter()
        .filter(|r| held.contains(&r.id))
        .max_by_key(|r| r.position);
    wanted
        .iter()
        .map(|id| {
            let name = format!("subscriber role {id}");
            match (roles.iter().find(|r| r.id == *id), top) {
                (None, _) => Check::fail(
                    name,
                    "no such role in the subscriber guild",
                    "fix discord.subscriber_role_ids (Server Settings → Roles → right-click → Copy Role ID)",
                ),
                (Some(role), Some(top)) if top.position > role.position => Check::pass(
                    format!("subscriber role {}", role.name),
                    format!("below the bot's role {}", top.name),
                ),
                (Some(role), top) => Check::fail(
                    format!("subscriber role {}", role.name),
                    format!(
                        "above the bot's highest role{}: Discord refuses to give or take it",
                        top.map(|t| format!(" ({})", t.name)).unwrap_or_default()
                    ),
                    "in Server Settings → Roles, drag the bot's role above it",
                ),
            }
        })
        .collect()
}

async fn channel_check(
    rest: &DiscordRest,
    key: &str,
    channel: u64,
    bot_id: u64,
    guilds: &[crate::integrations::discord::BotGuild],
) -> Check {
    let name = format!("{key} {channel}");
    let found = match rest.guild_channel(channel).await {
        Ok(found) => found,
        Err(err) => {
            return Check::fail(
                name,
                format!("the bot cannot see this channel ({err})"),
                format!("check {key}, and allow the bot's role View Channel there"),
            );
        }
    };
    if !guilds.iter().any(|g| g.id == found.guild_id) {
        return Check::fail(
            name,
            "the channel's guild does not have the bot",
            "add the bot to that guild with the invite link",
        );
    }
    let (roles, held) = match (
        rest.roles(found.guild_id).await,
        rest.member_roles(found.guild_id, bot_id).await,
    ) {
        (Ok(roles), Ok(held)) => (roles, held),
        (Err(err), _) | (_, Err(err)) => {
            return Check::fail(
                name,
                format!("cannot read the bot's roles ({err})"),
                "try again",
            );
        }
    };
    let allowed = channel_permissions(&found, &roles, &held);
    let needed = Permissions::VIEW_CHANNEL | Permissions::SEND_MESSAGES;
    if allowed.contains(needed) {
        Check::pass(name, format!("the bot can post in #{}", found.name))
    } else {
        Check::fail(
            name,
            format!("the bot cannot post in #{}", found.name),
            "in the channel's settings → Permissions, allow the bot's role View Channel and Send Messages",
        )
    }
}

/// Discord's arithmetic: `@everyone` and the member's roles, administrator means everything, then
/// the channel's `@everyone` overwrite, the roles' overwrites together, and the member's own.
fn channel_permissions(channel: &GuildChannel, roles: &[GuildRole], held: &[u64]) -> Permissions {
    let everyone = channel.guild_id;
    let mut base = roles
        .iter()
        .filter(|r| r.id == everyone || held.contains(&r.id))
        .fold(Permissions::empty(), |p, r| p | r.permissions);
    if base.administrator() {
        return Permissions::all();
    }
    let overwrite = |target: &dyn Fn(&serenity::PermissionOverwriteType) -> bool| {
        channel
            .overwrites
            .iter()
            .filter(|o| target(&o.kind))
            .fold((Permissions::empty(), Permissions::empty()), |(a, d), o| {
                (a | o.allow, d | o.deny)
            })
    };
    let (allow, deny) = overwrite(
        &|k| matches!(k, serenity::PermissionOverwriteType::Role(r) if r.get() == everyone),
    );
    base = (base - deny) | allow;
    let (allow, deny) = overwrite(
        &|k| matches!(k, serenity::PermissionOverwriteType::Role(r) if r.get() != everyone && held.contains(&r.get())),
    );
    base = (base - deny) | allow;
    let (allow, deny) = overwrite(&|k| matches!(k, serenity::PermissionOverwriteType::Member(_)));
    (base - deny) | allow
}

async fn mail(settings: &Settings) -> Check {
    let name = "mail";
    let mailer = match Mailer::from_settings(settings) {
        Ok(mailer) => mailer,
        Err(err) => {
            return Check::fail(name, format!("cannot set it up ({err:#})"), "fix [email]");
        }
    };
    let result = mailer.check().await;
    match (&settings.email.smtp, result) {
        (None, Ok(())) => Check::pass(
            name,
            format!(
                "no SMTP relay (email.smtp): mail is written to {}",
                settings.outbox_dir().display()
            ),
        ),
        (None, Err(err)) => Check::fail(
            name,
            err.to_string(),
            "make the outbox folder writable, or configure [email.smtp]",
        ),
        (Some(smtp), Ok(())) => Check::pass(
            name,
            format!(
                "the SMTP relay {} accepted the connection and the login",
                smtp.host
            ),
        ),
        (Some(smtp), Err(err)) => Check::fail(
            name,
            format!("the SMTP relay {} refused ({err})", smtp.host),
            "check email.smtp.host, port, tls, username and password (an app password if the provider asks for one)",
        ),
    }
}

async fn payments(settings: &Settings) -> Vec<Check> {
    let p = &settings.payments;
    let mut report = Vec::new();
    match &p.stripe {
        None => report.push(Check::skip("Stripe", "not configured")),
        Some(s) => {
            let hook = settings.public_link("webhooks/stripe");
            match StripeClient::new(s.api_base_url.clone(), s.secret_key.clone()) {
                Err(err) => report.push(Check::fail(
                    "Stripe key",
                    err.to_string(),
                    "fix [payments.stripe]",
                )),
                Ok(client) => report.extend(stripe(&client, hook.as_str()).await),
            }
        }
    }
    match &p.paypal {
        None => report.push(Check::skip("PayPal", "not configured")),
        Some(s) => {
            let checked = match PayPalClient::new(
                s.api_base_url.clone(),
                s.client_id.clone(),
                s.client_secret.clone(),
                s.webhook_id.clone(),
            ) {
                Ok(client) => client.check_credentials().await,
                Err(err) => Err(err),
            };
            report.push(match checked {
                Ok(()) => Check::pass("PayPal", format!("the app's credentials work at {}", s.api_base_url)),
                Err(err) => Check::fail(
                    "PayPal",
                    format!("no OAuth token ({err})"),
                    "copy client_id and client_secret again from developer.paypal.com → Apps & Credentials, in the same mode (sandbox or live) as payments.paypal.api_base_url",
                ),
            });
        }
    }
    match &p.plisio {
        None => report.push(Check::skip("Plisio", "not configured")),
        Some(s) => {
            let checked = match PlisioClient::new(s.api_base_url.clone(), s.secret_key.clone()) {
                Ok(client) => client.check_key().await,
                Err(err) => Err(err),
            };
            report.push(match checked {
                Ok(()) => Check::pass("Plisio", "the secret key is accepted"),
                Err(err) => Check::fail(
                    "Plisio",
                    format!("the key is refused ({err})"),
                    "copy the shop's secret key again (Plisio → API → Secret key) into payments.plisio.secret_key",
                ),
            });
        }
    }
    report
}

async fn stripe(client: &StripeClient, hook: &str) -> Vec<Check> {
    let live = match client.livemode().await {
        Ok(live) => live,
        Err(err) => {
            return vec![
                Check::fail(
                    "Stripe key",
                    format!("Stripe refused it ({err})"),
                    "copy the secret key again (Dashboard → Developers → API keys) into payments.stripe.secret_key",
                ),
                Check::skip("Stripe webhook", "needs a working key"),
            ];
        }
    };
    let mode = if live { "live" } else { "test" };
    let mut report = vec![Check::pass("Stripe key", format!("works ({mode} mode)"))];
    report.push(match client.webhook_endpoints().await {
        Err(err) => Check::fail(
            "Stripe webhook",
            format!("cannot list the webhook endpoints ({err})"),
            "use a secret key (or a restricted key that may read webhook endpoints)",
        ),
        Ok(endpoints) => match endpoints.iter().find(|e| e.url == hook) {
            Some(e) if e.enabled => Check::pass(
                "Stripe webhook",
                format!("{} delivers to {hook} ({mode} mode)", e.id),
            ),
            Some(e) => Check::fail(
                "Stripe webhook",
                format!("the endpoint {} for {hook} is disabled", e.id),
                "enable it in the Dashboard → Developers → Webhooks",
            ),
            None => Check::fail(
                "Stripe webhook",
                format!("no endpoint delivers to {hook} in {mode} mode, so payments.stripe.webhook_secret belongs to another mode or endpoint"),
                format!("in the Dashboard's {mode} mode add an endpoint for {hook} and paste its signing secret (whsec_…) as payments.stripe.webhook_secret"),
            ),
        },
    });
    report
}

async fn plex(app: &App) -> Vec<Check> {
    let accounts = match health::owner_accounts(app).await {
        Ok(accounts) => accounts,
        Err(err) => {
            return vec![Check::fail(
                "owner Plex accounts",
                format!("cannot read them ({err:#})"),
                "check the database and the secret key",
            )];
        }
    };
    if accounts.is_empty() {
        return vec![Check::skip(
            "owner Plex accounts",
            "none yet: add one with `usher plex-account add`",
        )];
    }
    let mut report = Vec::new();
    for account in accounts {
        let name = format!("owner Plex account {}", account.name);
        match &account.token {
            Err(why) => {
                report.push(Check::fail(
                    name,
                    why.clone(),
                    "add the account again with a fresh sign-in (`usher plex-account add`) after removing the old one with /admin plex-account remove",
                ));
                continue;
            }
            Ok(plex_pass) => {
                let seats = account.seats.map_or_else(String::new, |n| {
                    format!(", its shares seat {n} of about 100 people")
                });
                let found = format!(
                    "the token works (Plex Pass: {}){seats}",
                    if *plex_pass { "yes" } else { "no" }
                );
                report.push(if account.seats.is_some_and(|n| n >= 99) {
                    Check::fail(
                        name,
                        found,
                        "plex.tv refuses new shares near 100 people: add another owner account for new subscribers",
                    )
                } else {
                    Check::pass(name, found)
                });
            }
        }
        for server in &account.servers {
            let name = format!("server {}", server.name);
            let seats = format!("{}/{} users", server.users, server.max_users);
            report.push(match server.on_plex {
                Some(true) => Check::pass(name, format!("among the account's servers on plex.tv, {seats}")),
                Some(false) => Check::fail(
                    name,
                    format!("no longer among {}'s servers on plex.tv", account.name),
                    "check the server is still claimed by that Plex account; otherwise disable it (/admin server set) and add the new one",
                ),
                None => Check::fail(
                    name,
                    "plex.tv did not list the account's servers",
                    "try again in a minute",
                ),
            });
        }
    }
    report
}

async fn public_url(app: &App) -> Check {
    let name = "public_url";
    let url = app.settings.public_link("healthz");
    let expected = crate::web::instance_id(app);
    let answer = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string());
    let answer = match answer {
        Ok(client) => client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| e.without_url().to_string()),
        Err(e) => Err(e),
    };
    match answer {
        Err(err) => Check::fail(
            name,
            format!("{url} does not answer ({err})"),
            "start `usher run` (with the web role), and make the proxy in front forward public_url to web.addr",
        ),
        Ok(response) if !response.status().is_success() => Check::fail(
            name,
            format!("{url} answers {}", response.status()),
            "make public_url the site root that forwards to Usher's web.addr",
        ),
        Ok(response) => {
            let instance = response
                .headers()
                .get(crate::web::INSTANCE_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            if instance == expected {
                Check::pass(name, format!("{url} answers, from this installation"))
            } else {
                Check::fail(
                    name,
                    format!("{url} answers, but from another installation (or not Usher)"),
                    "point public_url (or the proxy) at this installation: webhooks and sign-in links would go elsewhere",
                )
            }
        }
    }
}
