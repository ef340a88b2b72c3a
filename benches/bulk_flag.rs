//! Bulk flag at scale: 100,000 subscribers flagged by filter ("everyone") on SQLite and
//! PostgreSQL. Times the preview (records the exact set), the confirm (one UPDATE of that set,
//! plus the audit entry) and, in the same run, a bare `UPDATE` flagging the same rows. Goal:
//! confirm < 1 s and ≤ 2× the bare UPDATE.
//!
//! `cargo bench --bench bulk_flag`; `USHER_BENCH_SUBSCRIBERS` changes the size (default 100000).
// Benchmarks seed the store directly; the wall guards commands/ only.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use usher::App;
use usher::clock::SystemClock;
use usher::config::Settings;
use usher::domain::{Actor, DiscordId};
use usher::services::account_change::{confirm_bulk_flag, preview_bulk_flag};
use usher::store::bulk_flags::FlagFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: i64 = std::env::var("USHER_BENCH_SUBSCRIBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir()?;
    let sqlite = Settings {
        data_dir: dir.path().join("sqlite"),
        ..Settings::default()
    };
    measure("sqlite", sqlite, n).await?;

    let (url, name) = common::fresh_postgres().await?;
    let mut postgres = Settings {
        data_dir: dir.path().join("pg"),
        ..Settings::default()
    };
    postgres.database.url = Some(url.into());
    measure("postgres", postgres, n).await?;
    common::drop_postgres(&name).await
}

async fn measure(label: &str, settings: Settings, n: i64) -> anyhow::Result<()> {
    let app = App::build(settings, Arc::new(SystemClock)).await?;
    let admin = Actor::Admin(DiscordId::new(1)?);
    let mut tx = app.db.begin().await?;
    common::seed_subscribers(&mut tx, n).await?;
    tx.commit().await?;

    let start = Instant::now();
    let preview = preview_bulk_flag(&app, &admin, FlagFilter::Everyone).await?;
    let preview_time = start.elapsed();
    anyhow::ensure!(preview.count == n, "preview saw {} of {n}", preview.count);
    let start = Instant::now();
    let flagged = confirm_bulk_flag(&app, &admin, &preview.token).await?;
    let confirm_time = start.elapsed();
    anyhow::ensure!(
        i64::try_from(flagged)? == n,
        "confirm flagged {flagged} of {n}"
    );

    let bare_time = bare_update(&app).await?;
    #[allow(clippy::cast_precision_loss)]
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{label}: {n} subscribers: preview {:.0} ms, confirm {:.0} ms, bare UPDATE {:.0} ms, confirm ÷ bare {:.2}",
        ms(preview_time),
        ms(confirm_time),
        ms(bare_time),
        confirm_time.as_secs_f64() / bare_time.as_secs_f64()
    );
    app.db.close().await;
    Ok(())
}

/// Clears the flags, then times one plain UPDATE flagging everyone in its own transaction.
async fn bare_update(app: &App) -> anyhow::Result<Duration> {
    let mut tx = app.db.begin().await?;
    usher::on_tx!(&mut tx, |c| sqlx::query(
        "UPDATE subscriber SET requires_plex_change = FALSE, flagged_at = NULL"
    )
    .execute(c)
    .await
    .map(drop))?;
    tx.commit().await?;
    let now = chrono::Utc::now();
    let start = Instant::now();
    let mut tx = app.db.begin().await?;
    usher::on_tx!(&mut tx, |c| {
        sqlx::query(
        "UPDATE subscriber SET requires_plex_change = TRUE, flagged_at = $1, updated_at = $1 WHERE NOT requires_plex_change"
    )
    .bind(now)
    .execute(c)
    .await
    .map(drop)
    })?;
    tx.commit().await?;
    Ok(start.elapsed())
}
