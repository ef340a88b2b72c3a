//! Importing people from a spreadsheet (Streams Manager's user export, Wizarr, Membarr, Usher's own
//! `users export`): the CSV is read and every row checked before anything is written, then it goes
//! through the same preview → confirm as the plex.tv import ([`super::import`]).
//!
//! Rules it keeps:
//! - Columns by header name, in any order: `plex_email` (required), `discord_id`, `plan`,
//!   `paid_until`, `permanent`, `contact_email`, `server`, `note`, and `name`, `state`, `flagged`
//!   (the columns of Usher's own export, so it re-imports). An unknown or repeated column, a file
//!   that is not UTF-8 or has no header, is refused as a whole.
//! - Every row is checked first; a bad one is reported by line and column with what is wrong.
//!   Nothing is written unless every row is good, or the admin asked to skip the bad ones (they
//!   are listed).
//! - The same never-reuse rule (a retired or banned account is listed and never imported) and the
//!   same idempotency (someone already in Usher is left as they are).
//! - A row naming a `server` gets a share there whose invite job finds and records the share the
//!   person already has on plex.tv (or invites them); without one, a paid or permanent person on
//!   a plan is placed like anyone who pays.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use anyhow::Context as _;
use chrono::{DateTime, NaiveDate, Utc};

use crate::app::App;
use crate::domain::{Actor, DiscordId, PlanId, PlexEmail, ServerId};
use crate::services::identities::{self, Conflict, PlexAccountRef};
use crate::services::import::{
    ImportError, ImportPreview, ServerCount, Skipped, Work, WorkPerson, WorkStanding, store_preview,
};
use crate::store::{servers, subscribers};

/// The columns a CSV may have.
pub const COLUMNS: [&str; 11] = [
    "plex_email",
    "discord_id",
    "plan",
    "paid_until",
    "permanent",
    "contact_email",
    "server",
    "note",
    "name",
    "state",
    "flagged",
];

/// One thing wrong with a CSV: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvProblem {
    /// The line (1 is the header).
    pub line: u64,
    /// The column's name, when one is at fault.
    pub column: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for CsvProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some(column) => write!(f, "line {}, column {column}: {}", self.line, self.message),
            None => write!(f, "line {}: {}", self.line, self.message),
        }
    }
}

/// Why a CSV was refused as a whole, or its bad rows without `skip_bad`; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    /// The file itself, or rows, are wrong.
    #[error("{}", render(.0))]
    Bad(Vec<CsvProblem>),
    /// The import failed otherwise.
    #[error(transparent)]
    Import(#[from] ImportError),
}

fn render(problems: &[CsvProblem]) -> String {
    let mut text = format!(
        "nothing was imported: {} problem{} in the file",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for problem in problems {
        text.push_str("\n- ");
        text.push_str(&problem.to_string());
    }
    text
}

impl From<anyhow::Error> for CsvError {
    fn from(err: anyhow::Error) -> Self {
        Self::Import(ImportError::Unexpected(err))
    }
}

impl crate::services::UserFacing for CsvError {
    fn user_message(&self) -> Option<String> {
        match self {
            Self::Bad(problems) => Some(render(problems)),
            Self::Import(err) => err.user_message(),
        }
    }
}

/// A checked CSV, previewed.
#[derive(Debug, Clone)]
pub struct CsvPreview {
    /// The preview (its token confirms it).
    pub preview: ImportPreview,
    /// Bad rows that were skipped (`skip_bad`).
    pub bad: Vec<CsvProblem>,
}

fn problem(line: u64, column: Option<&str>, message: impl Into<String>) -> CsvProblem {
    CsvProblem {
        line,
        column: column.map(str::to_owned),
        message: message.into(),
    }
}

/// Step one of a CSV import: reads and checks every row (refusing the file when any is bad, unless
/// `skip_bad`), decides each person as the plex.tv import does, and stores the work to confirm.
pub async fn preview_csv_import(
    app: &App,
    actor: &Actor,
    bytes: &[u8],
    skip_bad: bool,
) -> Result<CsvPreview, CsvError> {
    let now = app.clock.now();
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let lines = bytes[..e.valid_up_to()].split(|b| *b == b'\n').count() - 1;
        CsvError::Bad(vec![problem(
            1 + u64::try_from(lines).unwrap_or(u64::MAX - 1),
            None,
            "the file is not UTF-8 text; save it as CSV UTF-8",
        )])
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let header = match records.next() {
        None => {
            return Err(CsvError::Bad(vec![problem(
                1,
                None,
                "the file is empty; the first line must name the columns (plex_email is required)",
            )]));
        }
        Some(Err(err)) => return Err(CsvError::Bad(vec![problem(1, None, err.to_string())])),
        Some(Ok(header)) => header,
    };
    let columns = read_header(&header)?;
    let column = |name: &str| columns.iter().position(|c| c == name);

    let (plans, server_names) = {
        let mut tx = app.db.read().await.context("database")?;
        let plans = servers::find_plans(&mut tx).await.context("database")?;
        let live = servers::find_servers(&mut tx).await.context("database")?;
        (
            plans,
            live.into_iter()
                .filter(|s| !s.retired)
                .map(|s| (s.name, s.id))
                .collect::<Vec<_>>(),
        )
    };
    let mut bad = Vec::new();
    let mut rows: Vec<(u64, WorkPerson)> = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut members: HashMap<u64, u64> = HashMap::new();
    for record in records {
        let record = match record {
            Ok(record) => record,
            Err(err) => {
                let line = err.position().map_or(0, csv::Position::line);
                bad.push(problem(line, None, err.to_string()));
                continue;
            }
        };
        let line = record.position().map_or(0, csv::Position::line);
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        if record.len() != columns.len() {
            bad.push(problem(
                line,
                None,
                format!(
                    "{} fields where the header names {} columns",
                    record.len(),
                    columns.len()
                ),
            ));
            continue;
        }
        let field = |name: &str| {
            column(name)
                .and_then(|i| record.get(i))
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let before = bad.len();
        let email = match field("plex_email").map(PlexEmail::parse) {
            None => {
                bad.push(problem(
                    line,
                    Some("plex_email"),
                    "is empty; every row needs the Plex email",
                ));
                None
            }
            Some(Err(err)) => {
                bad.push(problem(
                    line,
                    Some("plex_email"),
                    format!("`{}`: {err}", field("plex_email").unwrap_or_default()),
                ));
                None
            }
            Some(Ok(email)) => {
                if let Some(first) = seen.insert(email.as_str().to_owned(), line) {
                    bad.push(problem(
                        line,
                        Some("plex_email"),
                        format!("{email} is on line {first} already; one row per person"),
                    ));
                }
                Some(email)
            }
        };
        let discord_id = match field("discord_id") {
            None => None,
            Some(raw) => {
                if let Some(id) = raw
                    .parse::<u64>()
                    .ok()
                    .and_then(|id| DiscordId::new(id).ok())
                {
                    if let Some(first) = members.insert(id.get(), line) {
                        bad.push(problem(
                            line,
                            Some("discord_id"),
                            format!(
                                "{raw} is on line {first} already; one member is one subscriber"
                            ),
                        ));
                    }
                    Some(id.get())
                } else {
                    bad.push(problem(
                        line,
                        Some("discord_id"),
                        format!("`{raw}` is not a Discord user id"),
                    ));
                    None
                }
            }
        };
        let plan = match field("plan") {
            None => None,
            Some(raw) => {
                let found = plans
                    .iter()
                    .find(|p| p.name.eq_ignore_ascii_case(raw) || p.id.to_string() == raw)
                    .map(|p| p.id);
                if found.is_none() {
                    bad.push(problem(
                        line,
                        Some("plan"),
                        format!("there is no plan `{raw}`"),
                    ));
                }
                found
            }
        };
        let permanent = match field("permanent") {
            None => field("state") == Some("permanent") && field("paid_until").is_none(),
            Some(raw) => match raw.to_ascii_lowercase().as_str() {
                "yes" | "true" | "1" | "y" => true,
                "no" | "false" | "0" | "n" => false,
                _ => {
                    bad.push(problem(
                        line,
                        Some("permanent"),
                        format!("`{raw}` is not yes or no"),
                    ));
                    false
                }
            },
        };
        // A permanent person's paid time does not matter (and may be long past).
        let paid_until = match field("paid_until").filter(|_| !permanent) {
            None => None,
            Some(raw) => match parse_date(raw) {
                Some(at) if at <= now => {
                    bad.push(problem(
                        line,
                        Some("paid_until"),
                        format!("{raw} is in the past; give a later date or leave it empty"),
                    ));
                    None
                }
                Some(at) => Some(at),
                None => {
                    bad.push(problem(
                        line,
                        Some("paid_until"),
                        format!("`{raw}` is not a date like 2026-12-31"),
                    ));
                    None
                }
            },
        };
        if paid_until.is_some() && plan.is_none() && field("plan").is_none() {
            bad.push(problem(
                line,
                Some("plan"),
                "is empty; paid time needs a plan",
            ));
        }
        let contact_email = field("contact_email").map(str::to_owned);
        if let Some(contact) = &contact_email
            && !looks_like_email(contact)
        {
            bad.push(problem(
                line,
                Some("contact_email"),
                format!("`{contact}` is not an email address"),
            ));
        }
        let server = match field("server") {
            None => None,
            Some(raw) => {
                let found = server_names
                    .iter()
                    .find(|(name, id)| name.eq_ignore_ascii_case(raw) || id.to_string() == raw)
                    .map(|(_, id)| *id);
                if found.is_none() {
                    bad.push(problem(
                        line,
                        Some("server"),
                        format!("there is no server `{raw}`"),
                    ));
                }
                found
            }
        };
        if server.is_some() && plan.is_none() && field("plan").is_none() {
            bad.push(problem(
                line,
                Some("plan"),
                "is empty; a share on a server needs a plan",
            ));
        }
        if let Some(flag) = field("flagged")
            && !matches!(flag.to_ascii_lowercase().as_str(), "yes" | "no")
        {
            bad.push(problem(
                line,
                Some("flagged"),
                format!("`{flag}` is not yes or no"),
            ));
        }
        if bad.len() > before {
            continue;
        }
        let email = email.context("a good row has its email")?;
        rows.push((
            line,
            WorkPerson {
                name: field("name").map_or_else(|| email.as_str().to_owned(), str::to_owned),
                email: email.as_str().to_owned(),
                username: None,
                plex_user_id: None,
                plan,
                discord_id,
                contact_email,
                note: field("note").map(str::to_owned),
                standing: Some(match (permanent, paid_until) {
                    (true, _) => WorkStanding::Permanent,
                    (false, Some(until)) => WorkStanding::Until(until),
                    (false, None) => WorkStanding::Unpaid,
                }),
                shares: Vec::new(),
                invite_on: server,
            },
        ));
    }
    if !bad.is_empty() && !skip_bad {
        return Err(CsvError::Bad(bad));
    }

    // People: new, already in Usher (left as they are), or retired here (never).
    let mut tx = app.db.begin().await.context("database")?;
    let mut people = Vec::new();
    let mut skipped = Vec::new();
    let mut already = 0;
    for (line, person) in rows {
        let account = PlexAccountRef::typed(
            PlexEmail::parse(&person.email).context("a checked email parses")?,
        );
        match identities::find_conflict(&mut tx, &account, None)
            .await
            .context("database")?
        {
            Some(Conflict::Retired) => {
                skipped.push(Skipped {
                    who: person.email.clone(),
                    why: format!("line {line}: retired or banned in Usher: never imported"),
                });
                continue;
            }
            Some(_) => {
                already += 1;
                continue;
            }
            None => {}
        }
        if let Some(member) = person.discord_id
            && subscribers::find_id_by_discord(
                &mut tx,
                DiscordId::new(member).context("a checked Discord id")?,
            )
            .await
            .context("database")?
            .is_some()
        {
            let problem = problem(
                line,
                Some("discord_id"),
                format!("{member} is a subscriber already (with another Plex account)"),
            );
            if !skip_bad {
                return Err(CsvError::Bad(vec![problem]));
            }
            bad.push(problem);
            continue;
        }
        people.push(person);
    }
    let plan_names: HashMap<PlanId, String> =
        plans.iter().map(|p| (p.id, p.name.clone())).collect();
    let mut per_plan: BTreeMap<Option<String>, usize> = BTreeMap::new();
    let mut per_server: BTreeMap<ServerId, usize> = BTreeMap::new();
    for person in &people {
        *per_plan
            .entry(person.plan.and_then(|p| plan_names.get(&p).cloned()))
            .or_default() += 1;
        if let Some(server) = person.invite_on {
            *per_server.entry(server).or_default() += 1;
        }
    }
    let preview = ImportPreview {
        token: String::new(),
        new_people: people.len(),
        servers: per_server
            .into_iter()
            .map(|(id, new)| ServerCount {
                name: server_names
                    .iter()
                    .find(|(_, s)| *s == id)
                    .map(|(n, _)| n.clone())
                    .unwrap_or_default(),
                new,
                pending: 0,
                known: 0,
            })
            .collect(),
        plans: per_plan.into_iter().collect(),
        first_names: people.iter().take(10).map(|p| p.name.clone()).collect(),
        without_plan: people
            .iter()
            .filter(|p| p.plan.is_none())
            .map(|p| p.name.clone())
            .collect(),
        skipped,
        already,
        home: 0,
        seats: Vec::new(),
    };
    let work = Work {
        standing: WorkStanding::Unpaid,
        people,
        seats: Vec::new(),
    };
    let preview = store_preview(app, tx, actor, "csv", &work, preview, now).await?;
    Ok(CsvPreview { preview, bad })
}

fn read_header(header: &csv::StringRecord) -> Result<Vec<String>, CsvError> {
    let columns: Vec<String> = header.iter().map(|c| c.trim().to_lowercase()).collect();
    if !columns.iter().any(|c| c == "plex_email") {
        let message = if columns.iter().any(|c| c.contains('@')) {
            "no header: the first line must name the columns (plex_email is required)".to_owned()
        } else {
            "no plex_email column: every import needs the Plex email".to_owned()
        };
        return Err(CsvError::Bad(vec![problem(1, None, message)]));
    }
    let mut problems = Vec::new();
    for (index, name) in columns.iter().enumerate() {
        if !COLUMNS.contains(&name.as_str()) {
            problems.push(problem(
                1,
                Some(name),
                format!(
                    "unknown column (column {}); the columns are {}",
                    index + 1,
                    COLUMNS.join(", ")
                ),
            ));
        } else if let Some(first) = columns[..index].iter().position(|c| c == name) {
            problems.push(problem(
                1,
                Some(name),
                format!("appears twice (columns {} and {})", first + 1, index + 1),
            ));
        }
    }
    if problems.is_empty() {
        Ok(columns)
    } else {
        Err(CsvError::Bad(problems))
    }
}

fn parse_date(raw: &str) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(raw) {
        return Some(at.to_utc());
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(23, 59, 59))
        .map(|t| t.and_utc())
}

fn looks_like_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !text.chars().any(char::is_whitespace)
}
