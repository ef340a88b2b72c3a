//! The admins' hand tools from a terminal: `usher user add|pay` and `usher users list` — the same
//! services as `/admin user add|pay` and `/admin users list`, acting as [`Actor::System`]. Plans
//! and servers are named by name (or id); Discord members by their id.

use std::fmt::Write as _;

use crate::app::App;
use crate::domain::{Actor, DiscordId, PlanId, PlexEmail, ServerId};
use crate::services::members::{self, NewMember, Standing};
use crate::services::payments::Coverage;
use crate::services::{account, catalog};
use crate::store::subscribers::MemberFilter;

/// The plan named `wanted` (its name in any case, or its id).
pub async fn find_plan(app: &App, wanted: &str) -> anyhow::Result<PlanId> {
    let plans = catalog::plans(app).await?;
    let wanted = wanted.trim();
    plans
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(wanted) || p.id.to_string() == wanted)
        .map(|p| p.id)
        .ok_or_else(|| {
            let names: Vec<_> = plans.iter().map(|p| p.name.as_str()).collect();
            anyhow::anyhow!(
                "there is no plan `{wanted}`; the plans are: {}",
                if names.is_empty() {
                    "none yet (usher plan create)".to_owned()
                } else {
                    names.join(", ")
                }
            )
        })
}

/// The server named `wanted` (its name in any case, or its id).
pub async fn find_server(app: &App, wanted: &str) -> anyhow::Result<ServerId> {
    let servers = catalog::servers(app).await?;
    let wanted = wanted.trim();
    servers
        .iter()
        .find(|s| s.name.eq_ignore_ascii_case(wanted) || s.id.to_string() == wanted)
        .map(|s| s.id)
        .ok_or_else(|| anyhow::anyhow!("there is no server `{wanted}`"))
}

/// `days`, `until` (a date or RFC 3339 time) or `permanent`: exactly one.
pub fn standing(
    days: Option<i64>,
    until: Option<&str>,
    permanent: bool,
) -> anyhow::Result<Standing> {
    match (days, until, permanent) {
        (Some(days), None, false) => Ok(Standing::Days(days)),
        (None, Some(until), false) => Ok(Standing::Until(parse_until(until)?)),
        (None, None, true) => Ok(Standing::Permanent),
        _ => anyhow::bail!("give exactly one of --days, --until or --permanent"),
    }
}

fn parse_until(raw: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    let raw = raw.trim();
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Ok(at.to_utc());
    }
    chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(23, 59, 59))
        .map(|t| t.and_utc())
        .ok_or_else(|| anyhow::anyhow!("--until: `{raw}` is not a date like 2026-12-31"))
}

/// What `usher user add` was given.
#[derive(Debug, Clone)]
pub struct AddInput {
    /// The member's Discord id.
    pub discord_id: u64,
    /// Their name.
    pub name: String,
    /// Their Plex account.
    pub plex_email: String,
    /// The plan's name or id.
    pub plan: String,
    /// How long they paid for.
    pub standing: Standing,
    /// The payment's transaction id.
    pub transaction: Option<String>,
    /// How much they paid.
    pub amount: Option<String>,
    /// Their contact email.
    pub contact_email: Option<String>,
    /// A note.
    pub note: Option<String>,
}

/// Adds a cash or bank customer.
pub async fn add(app: &App, input: &AddInput) -> anyhow::Result<String> {
    let new = NewMember {
        member: DiscordId::new(input.discord_id)
            .map_err(|e| anyhow::anyhow!("--discord-id: {e}"))?,
        name: input.name.clone(),
        plex_email: PlexEmail::parse(&input.plex_email)
            .map_err(|e| anyhow::anyhow!("--plex-email: {e}"))?,
        contact_email: input.contact_email.clone(),
        plan: find_plan(app, &input.plan).await?,
        standing: input.standing,
        transaction: input.transaction.clone(),
        amount: input.amount.clone(),
        note: input.note.clone(),
    };
    let added = members::add_member(app, &Actor::System, &new).await?;
    Ok(format!(
        "Added {} (subscriber #{}, {}): {}; {}.",
        new.name,
        added.subscriber,
        new.plex_email,
        added.paid_until.map_or_else(
            || "permanent".to_owned(),
            |t| format!("paid until {}", t.to_rfc3339())
        ),
        if added.server.is_some() {
            "the Plex invite is on its way"
        } else {
            "invited as soon as a server has room"
        }
    ))
}

/// Records a payment for the subscriber with this Discord id.
pub async fn pay(
    app: &App,
    discord_id: u64,
    coverage: Coverage,
    transaction: Option<String>,
    amount: Option<String>,
) -> anyhow::Result<String> {
    let member = DiscordId::new(discord_id).map_err(|e| anyhow::anyhow!("--discord-id: {e}"))?;
    let subscriber = account::subscriber_of(app, member)
        .await?
        .ok_or_else(|| anyhow::anyhow!("Discord user {discord_id} is not a subscriber"))?;
    let paid = members::record_payment(
        app,
        &Actor::System,
        subscriber,
        coverage,
        transaction,
        amount,
    )
    .await?;
    Ok(format!(
        "Recorded {} for {} ({}): paid until {}.",
        paid.transaction,
        paid.subscriber,
        paid.plan,
        paid.paid_to.to_rfc3339()
    ))
}

/// One page of the subscriber list, as text.
pub async fn list(app: &App, filter: MemberFilter, page: i64) -> anyhow::Result<String> {
    let shown = members::list_members(app, filter, page).await?;
    let mut text = format!(
        "{} subscribers (page {} of {})\n",
        shown.total,
        shown.page + 1,
        shown.pages
    );
    for line in &shown.lines {
        let until = if line.permanent {
            "permanent".to_owned()
        } else {
            line.paid_until.map_or_else(
                || "never paid".to_owned(),
                |t| t.format("%Y-%m-%d").to_string(),
            )
        };
        let _ = writeln!(
            text,
            "#{}\t{}\t{}\t{}\t{}\t{until}{}",
            line.id,
            line.display_name,
            line.discord_id
                .map_or_else(|| "unclaimed".to_owned(), |id| id.to_string()),
            line.plex_email.as_ref().map_or("-", PlexEmail::as_str),
            line.plan.as_deref().unwrap_or("-"),
            if line.requires_plex_change {
                "\tflagged"
            } else {
                ""
            }
        );
    }
    Ok(text)
}
