//! CSV export of users: the admin's backup before cleaning up after a ban, and the snapshot
//! taken automatically when an owner account is marked banned. Written with the `csv` crate; it
//! re-imports with `usher import csv` (see `services::import_csv`).

use chrono::{DateTime, Utc};

use crate::app::App;
use crate::domain::OwnerAccountId;
use crate::store::{Tx, export};

/// The columns, in order.
pub const HEADER: [&str; 9] = [
    "discord_id",
    "name",
    "plex_email",
    "plan",
    "server",
    "state",
    "paid_until",
    "flagged",
    "permanent",
];

/// Renders the users (all, or those on one owner account's servers) as CSV.
pub async fn users_csv(
    tx: &mut Tx,
    owner: Option<OwnerAccountId>,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<u8>> {
    let rows = export::find_users(tx, owner).await?;
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(HEADER)?;
    for row in rows {
        let discord = row.discord_id.map(|id| id.to_string()).unwrap_or_default();
        let state = match (row.share_state, row.permanent, row.paid_until) {
            (Some(share), ..) => share.as_str().to_owned(),
            (None, true, _) => "permanent".into(),
            (None, false, Some(until)) if until > now => "paid, no share".into(),
            (None, false, Some(_)) => "expired".into(),
            (None, false, None) => "never paid".into(),
        };
        out.write_record([
            discord,
            row.display_name,
            row.plex_email.map(String::from).unwrap_or_default(),
            row.plan.unwrap_or_default(),
            row.server.unwrap_or_default(),
            state,
            row.paid_until.map(whole_second).unwrap_or_default(),
            if row.requires_plex_change {
                "yes"
            } else {
                "no"
            }
            .to_string(),
            if row.permanent { "yes" } else { "no" }.to_string(),
        ])?;
    }
    Ok(out.into_inner()?)
}

/// A paid end as the export writes it: rounded up to the whole second (paid time is laid out in
/// seconds from a moment with microseconds), so re-importing the file gives the same end.
fn whole_second(at: DateTime<Utc>) -> String {
    let up = if at.timestamp_subsec_micros() == 0 {
        at
    } else {
        at + chrono::Duration::microseconds(1_000_000 - i64::from(at.timestamp_subsec_micros()))
    };
    up.to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

/// Every subscriber as CSV, read in one transaction (`usher users export`, `/admin users export`).
pub async fn all_users_csv(app: &App) -> anyhow::Result<Vec<u8>> {
    let mut tx = app.db.read().await?;
    let csv = users_csv(&mut tx, None, app.clock.now()).await?;
    tx.rollback().await?;
    Ok(csv)
}
