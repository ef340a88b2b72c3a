//! Setting an installation up from a terminal, before the bot runs: owner Plex accounts (Plex
//! sign-in, or a token from a file or standard input), servers and plans. The same services as
//! the `/admin plex-account|server|plan` commands, acting as [`Actor::System`].
//!
//! Rule it keeps: a token is read, trimmed and handed on as a `SecretString`; no output or error
//! repeats it.

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use secrecy::SecretString;
use url::Url;

use crate::app::App;
use crate::domain::{Actor, BillingPeriod, Currency, Money, OwnerAccountId};
use crate::services::plex_admin::{self, AdminError, GroupRef, OwnerAccountAdded, PlanSpec};
use crate::services::{catalog, checkout, plex_sign_in};

/// Reads an owner token from `path` (`-`: standard input), trimmed.
pub fn read_token(path: &Path) -> anyhow::Result<SecretString> {
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the token from standard input")?;
    } else {
        text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the token file {}", path.display()))?;
    }
    let token = text.trim();
    anyhow::ensure!(
        !token.is_empty(),
        "no token given: the file (or standard input) is empty"
    );
    Ok(SecretString::from(token.to_owned()))
}

/// Tests the token against plex.tv and stores its account as an owner account.
pub async fn add_owner_with_token(app: &App, token: &SecretString) -> Result<String, AdminError> {
    let added = plex_admin::add_owner_account(app, &Actor::System, token).await?;
    Ok(added_line(&added))
}

/// Signs the owner in to Plex: `show` gets the app.plex.tv link to open; once the PIN is
/// approved, the account is stored as an owner account. Polls every `poll`.
pub async fn add_owner_with_sign_in(
    app: &App,
    poll: Duration,
    show: impl FnOnce(&Url),
) -> anyhow::Result<String> {
    let pending = plex_sign_in::start(app, None).await?;
    show(&pending.url);
    let token = plex_sign_in::wait_for_token(app, &pending.pin, poll).await?;
    Ok(add_owner_with_token(app, &token).await?)
}

fn added_line(added: &OwnerAccountAdded) -> String {
    format!(
        "Added the owner Plex account {} (#{}, Plex Pass: {}). Add its servers with `usher server add --account {}`.",
        added.name,
        added.id,
        if added.plex_pass { "yes" } else { "no" },
        added.name
    )
}

/// Every owner account, one per line (never a token).
pub async fn list_owner_accounts(app: &App) -> anyhow::Result<String> {
    let accounts = catalog::owner_accounts(app).await?;
    if accounts.is_empty() {
        return Ok("No owner Plex accounts yet: add one with `usher plex-account add`.\n".into());
    }
    let mut out = String::new();
    for a in &accounts {
        let _ = writeln!(
            out,
            "#{}\t{}\t{}\tPlex Pass: {}",
            a.id,
            a.name,
            a.state,
            if a.plex_pass { "yes" } else { "no" }
        );
    }
    Ok(out)
}

/// What `usher server add` looks for on the owner account.
#[derive(Debug, Clone)]
pub enum ServerWanted {
    /// The server's name, case-insensitive.
    Name(String),
    /// The server's machine identifier.
    MachineId(String),
}

/// Adds a server of the owner account `account` (its name, or `#id`) and reads its libraries.
pub async fn add_server(app: &App, account: &str, wanted: &ServerWanted) -> anyhow::Result<String> {
    let owner = find_owner(app, account).await?;
    let wanted = match wanted {
        ServerWanted::Name(name) | ServerWanted::MachineId(name) => name,
    };
    let added = plex_admin::add_server(app, &Actor::System, owner, wanted).await?;
    Ok(format!(
        "Added the server {} (#{}) with {} libraries. Group them (`/admin group`), then it takes new subscribers.",
        added.name, added.id, added.libraries
    ))
}

async fn find_owner(app: &App, wanted: &str) -> anyhow::Result<OwnerAccountId> {
    let wanted = wanted.trim();
    let accounts = catalog::owner_accounts(app).await?;
    let by_id = wanted
        .strip_prefix('#')
        .and_then(|n| n.parse::<i64>().ok())
        .map(OwnerAccountId::new);
    accounts
        .iter()
        .find(|a| Some(a.id) == by_id || a.name.eq_ignore_ascii_case(wanted))
        .map(|a| a.id)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "there is no owner Plex account called `{wanted}`; `usher plex-account list` shows them"
            )
        })
}

/// Every server with its users and switches, one per line.
pub async fn list_servers(app: &App) -> anyhow::Result<String> {
    let servers = catalog::servers(app).await?;
    if servers.is_empty() {
        return Ok("No servers yet: add one with `usher server add`.\n".into());
    }
    let mut out = String::new();
    for s in &servers {
        let _ = writeln!(
            out,
            "#{}\t{}\t{}/{} users\towner #{} ({})\t{}{}{}",
            s.id,
            s.name,
            s.users,
            s.max_users,
            s.owner_account_id,
            s.owner_state,
            if s.enabled { "enabled" } else { "disabled" },
            if s.allow_new_subscriptions {
                ", open to new subscriptions"
            } else {
                ", closed to new subscriptions"
            },
            s.location
                .as_deref()
                .map(|l| format!(", {l}"))
                .unwrap_or_default(),
        );
    }
    Ok(out)
}

/// A plan as typed at the terminal, before parsing.
#[derive(Debug, Clone)]
pub struct PlanInput {
    /// Unique name.
    pub name: String,
    /// Price per period, e.g. `8` or `7.50`.
    pub price: String,
    /// ISO currency, e.g. `USD`.
    pub currency: String,
    /// `week`, `month`, `quarter`, `half_year` or `year`.
    pub period: String,
    /// Concurrent streams.
    pub streams: i32,
    /// Library group names, comma-separated.
    pub groups: String,
    /// A trial plan.
    pub trial: bool,
}

/// Parses the plan and creates it.
pub async fn create_plan(app: &App, input: &PlanInput) -> anyhow::Result<String> {
    let currency =
        Currency::parse(&input.currency).map_err(|e| anyhow::anyhow!("--currency: {e}"))?;
    let price =
        Money::parse(&input.price, currency).map_err(|e| anyhow::anyhow!("--price: {e}"))?;
    let period: BillingPeriod = input
        .period
        .trim()
        .parse()
        .map_err(|e: crate::domain::ParseStateError| anyhow::anyhow!("--period: {e}"))?;
    // The service finds the groups by name, as it does for `/admin plan create`.
    let groups = input
        .groups
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(|g| GroupRef::Name(g.to_owned()))
        .collect();
    let spec = PlanSpec {
        name: input.name.clone(),
        price,
        period,
        max_streams: input.streams,
        trial: input.trial,
        groups,
    };
    let id = plex_admin::create_plan(app, &Actor::System, &spec).await?;
    Ok(format!(
        "Created the plan {} (#{id}): {price} per {period}.",
        input.name.trim(),
    ))
}

/// Every plan with its price and who sells it, one per line.
pub async fn list_plans(app: &App) -> anyhow::Result<String> {
    let offers = checkout::offers(app).await?;
    if offers.is_empty() {
        return Ok("No plans yet: create one with `usher plan create`.\n".into());
    }
    let mut out = String::new();
    for o in &offers {
        let sold: Vec<String> = o.providers.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            out,
            "#{}\t{}\t{} per {}\t{}\t{}",
            o.plan,
            o.name,
            o.price,
            o.period,
            if o.active { "offered" } else { "not offered" },
            if sold.is_empty() {
                "sold by no provider yet".to_owned()
            } else {
                format!("sold with {}", sold.join(", "))
            }
        );
    }
    Ok(out)
}
