//! `usher import plex` from a terminal: the same preview and confirm as `/admin import plex`,
//! acting as [`Actor::System`]. Owner accounts, servers and plans are named by name (or id).

use std::fmt::Write as _;
use std::io::{BufRead as _, Write as _};

use crate::app::App;
use crate::domain::{Actor, OwnerAccountId};
use crate::services::catalog;
use crate::services::import::{self, PlexImportOptions};
use crate::services::members::Standing;

/// What `usher import plex` was given.
#[derive(Debug, Clone)]
pub struct PlexInput {
    /// Only this owner account (name or id).
    pub owner: Option<String>,
    /// Only this server (name or id).
    pub server: Option<String>,
    /// The plan of people whose libraries match no plan (name or id).
    pub default_plan: Option<String>,
    /// Their standing.
    pub standing: Standing,
    /// Show the preview only.
    pub dry_run: bool,
    /// Confirm without asking.
    pub yes: bool,
}

/// The owner account named `wanted` (its name in any case, or its id).
pub async fn find_owner(app: &App, wanted: &str) -> anyhow::Result<OwnerAccountId> {
    let accounts = catalog::owner_accounts(app).await?;
    let wanted = wanted.trim();
    accounts
        .iter()
        .find(|a| a.name.eq_ignore_ascii_case(wanted) || a.id.to_string() == wanted)
        .map(|a| a.id)
        .ok_or_else(|| anyhow::anyhow!("there is no owner Plex account `{wanted}`"))
}

/// Previews an import from plex.tv, then applies it when confirmed (`--yes`, or `y` typed).
pub async fn plex(app: &App, input: &PlexInput) -> anyhow::Result<String> {
    let options = PlexImportOptions {
        owner: match &input.owner {
            Some(name) => Some(find_owner(app, name).await?),
            None => None,
        },
        server: match &input.server {
            Some(name) => Some(super::members::find_server(app, name).await?),
            None => None,
        },
        default_plan: match &input.default_plan {
            Some(name) => Some(super::members::find_plan(app, name).await?),
            None => None,
        },
        standing: input.standing,
    };
    let preview = import::preview_plex_import(app, &Actor::System, &options).await?;
    let mut text = format!("Import {} people from plex.tv:\n", preview.new_people);
    for line in preview.lines() {
        text.push_str("  ");
        text.push_str(&line);
        text.push('\n');
    }
    if input.dry_run {
        text.push_str("Dry run: nothing was written.");
        return Ok(text);
    }
    if preview.new_people == 0 {
        text.push_str("Nobody new to import.");
        return Ok(text);
    }
    if !input.yes {
        print!("{text}Import them? [y/N] ");
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !answer.trim().eq_ignore_ascii_case("y") {
            return Ok("Cancelled: nothing was imported.".into());
        }
        text.clear();
    }
    let done = import::confirm_import(app, &Actor::System, &preview.token, &|progress| {
        if progress.total >= 500 && progress.done % 500 == 0 && progress.done > 0 {
            eprintln!("imported {} of {}", progress.done, progress.total);
        }
    })
    .await?;
    let _ = write!(
        text,
        "Imported {} people with {} Plex shares{}.",
        done.added,
        done.shares,
        if done.skipped > 0 {
            format!(
                "; {} joined Usher meanwhile and were left as they are",
                done.skipped
            )
        } else {
            String::new()
        }
    );
    Ok(text)
}

/// Imports people from a CSV file: every row checked first; nothing written unless all are good
/// or `skip_bad` (the bad ones are listed); `dry_run` shows the preview only.
pub async fn csv(
    app: &App,
    path: &std::path::Path,
    dry_run: bool,
    skip_bad: bool,
) -> anyhow::Result<String> {
    let bytes =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    let checked =
        crate::services::import_csv::preview_csv_import(app, &Actor::System, &bytes, skip_bad)
            .await?;
    let preview = &checked.preview;
    let mut text = String::new();
    if !checked.bad.is_empty() {
        let _ = writeln!(text, "Skipped {} bad rows:", checked.bad.len());
        for problem in &checked.bad {
            let _ = writeln!(text, "  {problem}");
        }
    }
    let _ = writeln!(
        text,
        "Import {} people from {} ({} in Usher already):",
        preview.new_people,
        path.display(),
        preview.already
    );
    for line in preview.lines() {
        text.push_str("  ");
        text.push_str(&line);
        text.push('\n');
    }
    if dry_run {
        text.push_str("Dry run: nothing was written.");
        return Ok(text);
    }
    if preview.new_people == 0 {
        text.push_str("Nobody new to import.");
        return Ok(text);
    }
    let done = import::confirm_import(app, &Actor::System, &preview.token, &|_| {}).await?;
    let _ = write!(text, "Imported {} people.", done.added);
    Ok(text)
}
