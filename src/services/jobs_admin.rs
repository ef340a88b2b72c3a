//! What the admins see of the job queue and do with it: the jobs that stopped (parked: waiting
//! for an admin, e.g. a revoked owner token; dead: gave up) with their reasons, and retrying
//! them once the cause is fixed. Jobs are idempotent, so a retry never doubles an effect: a
//! retried invite finds the share plex.tv already made.

use chrono::{DateTime, Utc};

use crate::app::App;
use crate::domain::{Actor, JobId, JobState};
use crate::store::{audit, jobs};

/// Jobs listed at most in one reply.
pub const LIST_CAP: i64 = 20;

/// A stopped job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StuckJob {
    /// Its id (for `retry`).
    pub id: JobId,
    /// Its kind.
    pub kind: String,
    /// Parked or dead.
    pub state: JobState,
    /// Why it stopped.
    pub reason: String,
    /// Attempts it spent.
    pub attempts: i32,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
}

/// The newest stopped jobs (at most [`LIST_CAP`]) and how many there are in all.
pub async fn stuck(app: &App) -> anyhow::Result<(Vec<StuckJob>, i64)> {
    let mut tx = app.db.read().await?;
    let (rows, total) = jobs::find_stuck(&mut tx, LIST_CAP).await?;
    tx.rollback().await?;
    let list = rows
        .into_iter()
        .map(|r| StuckJob {
            id: r.id,
            kind: r.kind,
            state: r.state,
            reason: r.last_error.unwrap_or_default(),
            attempts: r.attempts,
            created_at: r.created_at,
        })
        .collect();
    Ok((list, total))
}

/// Runs stopped jobs again (all, or `only` one), audited; returns how many.
pub async fn retry(app: &App, actor: &Actor, only: Option<JobId>) -> anyhow::Result<u64> {
    let now = app.clock.now();
    let mut tx = app.db.begin().await?;
    let n = jobs::update_retried(&mut tx, only, now).await?;
    if n > 0 {
        let detail = serde_json::json!({ "job": only, "retried": n });
        audit::insert_audit(&mut tx, actor, None, "jobs.retry", &detail, now).await?;
    }
    app.queue.commit(tx).await?;
    Ok(n)
}
