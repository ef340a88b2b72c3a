//! Job-queue throughput (no-op jobs, SQLite and PostgreSQL) next to SQLite's raw commit rate for a
//! one-row insert under the same durability settings (WAL, synchronous=NORMAL), measured in the
//! same run and printed as a ratio. Each job costs two write transactions (claim, done), so 0.5 is
//! the ceiling on SQLite's single writer.
//!
//! `cargo bench --bench queue` (PostgreSQL from `USHER_TEST_DATABASE_URL`, default the local
//! server). Set `USHER_BENCH_JOBS` to change the job count (default 5000).

// Tests and benchmarks reach the store directly to set up and assert; the wall (clippy.toml)
// guards commands/ only.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqlx::Connection as _;
use sqlx::sqlite::SqliteConnectOptions;
use tokio_util::sync::CancellationToken;
use usher::clock::SystemClock;
use usher::config::JobSettings;
use usher::jobs::{ClaimedJob, Dispatch, JobError, NewJob, Queue};
use usher::store::{self, Db};

struct Noop(AtomicUsize);

#[async_trait]
impl Dispatch for Noop {
    async fn run(&self, _job: &ClaimedJob) -> Result<(), JobError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let jobs: usize = std::env::var("USHER_BENCH_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let dir = tempfile::tempdir()?;

    let raw = sqlite_raw_commits(&dir.path().join("raw.db"), jobs).await?;
    println!("sqlite raw one-row commits/s: {raw:.0}");

    let sqlite_url = format!("sqlite://{}", dir.path().join("queue.db").display());
    let sqlite = Db::connect_url(&sqlite_url, 8).await?;
    let sqlite_rate = queue_throughput(sqlite, jobs).await?;
    println!(
        "sqlite queue no-op jobs/s: {sqlite_rate:.0}  (ratio to raw commits: {:.2})",
        sqlite_rate / raw
    );

    let (pg_url, pg_name) = common::fresh_postgres().await?;
    let pg = Db::connect_url(&pg_url, 8).await?;
    let pg_rate = queue_throughput(pg.clone(), jobs).await?;
    pg.close().await;
    common::drop_postgres(&pg_name).await?;
    println!("postgres queue no-op jobs/s: {pg_rate:.0}");
    Ok(())
}

async fn sqlite_raw_commits(path: &std::path::Path, n: usize) -> anyhow::Result<f64> {
    let options = store::sqlite_options(SqliteConnectOptions::from_str(&format!(
        "sqlite://{}",
        path.display()
    ))?);
    let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
    sqlx::query("CREATE TABLE bench (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
        .execute(&mut conn)
        .await?;
    let start = Instant::now();
    for i in 0..n {
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("INSERT INTO bench (payload) VALUES ($1)")
            .bind(format!("row {i}"))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    Ok(rate(n, start.elapsed()))
}

async fn queue_throughput(db: Db, n: usize) -> anyhow::Result<f64> {
    db.migrate().await?;
    let settings = JobSettings {
        workers: 4,
        poll_interval_ms: 100,
        ..JobSettings::default()
    };
    let queue = Queue::new(db.clone(), Arc::new(SystemClock), settings, 1000.0);
    let mut tx = db.begin().await?;
    for i in 0..n {
        queue
            .enqueue_raw(
                &mut tx,
                &NewJob::new("noop", &serde_json::json!({}), format!("bench-{i}")),
            )
            .await?;
    }
    tx.commit().await?;

    let noop = Arc::new(Noop(AtomicUsize::new(0)));
    let shutdown = CancellationToken::new();
    let start = Instant::now();
    let workers = tokio::spawn({
        let (queue, noop, shutdown) = (queue.clone(), Arc::clone(&noop), shutdown.clone());
        async move { queue.run_workers(noop, shutdown).await }
    });
    loop {
        let done = store::jobs::count_by_state(&db)
            .await?
            .into_iter()
            .find(|(state, _)| *state == usher::domain::JobState::Done)
            .map_or(0, |(_, count)| count);
        if usize::try_from(done)? >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = start.elapsed();
    shutdown.cancel();
    workers.await?;
    assert_eq!(
        noop.0.load(Ordering::Relaxed),
        n,
        "every job ran exactly once"
    );
    Ok(rate(n, elapsed))
}

#[allow(clippy::cast_precision_loss)] // counts far below 2^52
fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}
