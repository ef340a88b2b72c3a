//! SQL of the durable job queue (the outbox). Claims are single atomic `UPDATE … RETURNING`
//! statements: PostgreSQL adds `FOR UPDATE SKIP LOCKED` so concurrent claimers never block on or
//! share a row; SQLite has one writer at a time, which gives the same guarantee.
//!
//! Every transition after the claim is fenced by the lease token, so a worker whose lease ran out
//! (and whose job another worker took over) can no longer change the row.

use chrono::{DateTime, Utc};

use crate::domain::{JobId, JobState};
use crate::sql;
use crate::store::{Db, Tx};

/// A job to add to the queue.
#[derive(Debug, Clone)]
pub struct NewJobRow<'a> {
    /// Which handler runs it.
    pub kind: &'a str,
    /// JSON arguments for the handler.
    pub payload: &'a str,
    /// Unique per logical job: a second enqueue with the same key is a no-op.
    pub idempotency_key: &'a str,
    /// Jobs with the same key share a rate limit.
    pub rate_key: Option<&'a str>,
    /// Attempts before the job is marked dead.
    pub max_attempts: i32,
    /// Earliest time to run.
    pub run_at: DateTime<Utc>,
}

/// A job a worker holds the lease of.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedJobRow {
    /// Row id.
    pub id: JobId,
    /// Handler name.
    pub kind: String,
    /// JSON arguments.
    pub payload: String,
    /// The enqueue key (also the idempotency key for remote calls the job makes).
    pub idempotency_key: String,
    /// Rate-limit key.
    pub rate_key: Option<String>,
    /// Attempts so far, this one included.
    pub attempts: i32,
    /// Attempt budget.
    pub max_attempts: i32,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
}

/// Where a job goes after an attempt that did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Back to the queue, due at the given time.
    RetryAt(DateTime<Utc>),
    /// Out of attempts or failed for good.
    Dead,
    /// Waits for an admin (e.g. an owner Plex token stopped working).
    Parked,
    /// Not a failure (a rate limit, a person still signing in): due again at the given time,
    /// and the attempt is given back.
    WaitUntil(DateTime<Utc>),
}

/// Inserts a job unless one with the same idempotency key exists. True when inserted.
pub async fn insert_job(
    tx: &mut Tx,
    job: &NewJobRow<'_>,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "INSERT INTO job (kind, payload, idempotency_key, rate_key, state, attempts, \
                       max_attempts, run_at, created_at) \
                       VALUES ($1, $2, $3, $4, 'queued', 0, $5, $6, $7) \
                       ON CONFLICT (idempotency_key) DO NOTHING";
    let done = sql!(tx, query(SQL), job.kind, job.payload, job.idempotency_key, job.rate_key, job.max_attempts, job.run_at, now => execute)?;
    Ok(done == 1)
}

const CLAIM_RETURNING: &str =
    "RETURNING id, kind, payload, idempotency_key, rate_key, attempts, max_attempts, created_at";

/// Claims the next due job (or one whose lease expired) for `lease_token` until `lease_until`,
/// which becomes the job's `run_at`.
pub async fn claim_next(
    db: &Db,
    lease_token: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<Option<ClaimedJobRow>, sqlx::Error> {
    // A running job's run_at is its lease expiry, so one condition finds due and orphaned jobs.
    const DUE: &str = "state IN ('queued', 'running') AND run_at <= $3";
    match db {
        Db::Postgres(pool) => {
            let sql = format!(
                "UPDATE job SET state = 'running', attempts = attempts + 1, lease_token = $1, \
                 run_at = $2 WHERE id = (SELECT id FROM job WHERE {DUE} \
                 ORDER BY run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) {CLAIM_RETURNING}"
            );
            sqlx::query_as(&sql)
                .bind(lease_token)
                .bind(lease_until)
                .bind(now)
                .fetch_optional(pool)
                .await
        }
        Db::Sqlite(pool) => {
            let sql = format!(
                "UPDATE job SET state = 'running', attempts = attempts + 1, lease_token = $1, \
                 run_at = $2 WHERE id = (SELECT id FROM job WHERE {DUE} \
                 ORDER BY run_at, id LIMIT 1) {CLAIM_RETURNING}"
            );
            sqlx::query_as(&sql)
                .bind(lease_token)
                .bind(lease_until)
                .bind(now)
                .fetch_optional(pool)
                .await
        }
    }
}

/// Marks a job done. False when the lease was lost (another worker owns the job now).
pub async fn update_done(
    db: &Db,
    id: JobId,
    lease_token: &str,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "UPDATE job SET state = 'done', finished_at = $1, lease_token = NULL, \
                       last_error = NULL WHERE id = $2 AND lease_token = $3";
    let n = exec_fenced(db, SQL, now, id, lease_token).await?;
    Ok(n == 1)
}

/// Records a failed attempt and where the job goes next. False when the lease was lost.
pub async fn update_failed(
    db: &Db,
    id: JobId,
    lease_token: &str,
    now: DateTime<Utc>,
    error: &str,
    next: AfterFailure,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "UPDATE job SET state = $1, run_at = COALESCE($2, run_at), finished_at = $3, \
                       last_error = $4, lease_token = NULL, attempts = attempts - $7 \
                       WHERE id = $5 AND lease_token = $6";
    let (state, run_at, finished, refund) = match next {
        AfterFailure::RetryAt(at) => (JobState::Queued, Some(at), None, 0),
        AfterFailure::WaitUntil(at) => (JobState::Queued, Some(at), None, 1),
        AfterFailure::Dead => (JobState::Dead, None, Some(now), 0),
        AfterFailure::Parked => (JobState::Parked, None, None, 0),
    };
    let n = crate::on_db!(db, |pool| {
        sqlx::query(SQL)
            .bind(state)
            .bind(run_at)
            .bind(finished)
            .bind(error)
            .bind(id)
            .bind(lease_token)
            .bind(refund)
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(n == 1)
}

/// Gives a claimed job back untouched (shutdown before it ran to the end): due now, and the
/// attempt it was charged is refunded.
pub async fn update_released(
    db: &Db,
    id: JobId,
    lease_token: &str,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    const SQL: &str = "UPDATE job SET state = 'queued', run_at = $1, attempts = attempts - 1, \
                       lease_token = NULL WHERE id = $2 AND lease_token = $3";
    let n = exec_fenced(db, SQL, now, id, lease_token).await?;
    Ok(n == 1)
}

/// Puts parked jobs of a rate key back in the queue (after an admin fixed the cause).
pub async fn update_unparked(
    tx: &mut Tx,
    rate_key: &str,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    const SQL: &str = "UPDATE job SET state = 'queued', run_at = $1, attempts = 0, last_error = NULL \
                       WHERE state = 'parked' AND rate_key = $2";
    Ok(sql!(tx, query(SQL), now, rate_key => execute)?)
}

/// A job an admin must look at: parked (waits for them) or dead (gave up).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StuckJobRow {
    /// Row id.
    pub id: JobId,
    /// Kind.
    pub kind: String,
    /// Parked or dead.
    pub state: JobState,
    /// Attempts spent.
    pub attempts: i32,
    /// Why (the last error).
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
}

/// The newest parked and dead jobs, at most `limit`, with how many there are in all.
pub async fn find_stuck(tx: &mut Tx, limit: i64) -> Result<(Vec<StuckJobRow>, i64), sqlx::Error> {
    const SQL: &str = "SELECT id, kind, state, attempts, last_error, created_at FROM job \
                       WHERE state IN ('parked', 'dead') ORDER BY id DESC LIMIT $1";
    const COUNT: &str = "SELECT COUNT(*) FROM job WHERE state IN ('parked', 'dead')";
    let rows = sql!(tx, query_as(SQL), limit => fetch_all)?;
    let total = sql!(tx, query_scalar(COUNT) => fetch_one)?;
    Ok((rows, total))
}

/// Puts parked and dead jobs (all, or one) back in the queue with a fresh attempt budget; returns
/// how many.
pub async fn update_retried(
    tx: &mut Tx,
    only: Option<JobId>,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    const SQL: &str = "UPDATE job SET state = 'queued', run_at = $1, attempts = 0, finished_at = NULL \
                       WHERE state IN ('parked', 'dead') AND ($2 IS NULL OR id = $2)";
    sql!(tx, query(SQL), now, only => execute)
}

/// When the next queued (or leased) job is due, if any job is waiting.
pub async fn find_next_due(db: &Db) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    const SQL: &str = "SELECT MIN(run_at) FROM job WHERE state IN ('queued', 'running')";
    crate::on_db!(db, |pool| sqlx::query_scalar(SQL).fetch_one(pool).await)
}

/// Number of jobs in each state, for `/metrics` and the admin board.
pub async fn count_by_state(db: &Db) -> Result<Vec<(JobState, i64)>, sqlx::Error> {
    const SQL: &str = "SELECT state, COUNT(*) FROM job GROUP BY state ORDER BY state";
    crate::on_db!(db, |pool| sqlx::query_as(SQL).fetch_all(pool).await)
}

/// One job's state, attempts, due time and last error (for tests and the admin board).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobStatusRow {
    /// Row id.
    pub id: JobId,
    /// Handler name.
    pub kind: String,
    /// Its state.
    pub state: JobState,
    /// Attempts so far.
    pub attempts: i32,
    /// When it is (or was last) due.
    pub run_at: DateTime<Utc>,
    /// The error of the last failed attempt.
    pub last_error: Option<String>,
}

/// Finds a job by its idempotency key.
pub async fn find_by_key(db: &Db, key: &str) -> Result<Option<JobStatusRow>, sqlx::Error> {
    const SQL: &str =
        "SELECT id, kind, state, attempts, run_at, last_error FROM job WHERE idempotency_key = $1";
    crate::on_db!(db, |pool| sqlx::query_as(SQL)
        .bind(key)
        .fetch_optional(pool)
        .await)
}

/// Runs a lease-fenced update that binds (time, id, lease token); returns the rows changed.
async fn exec_fenced(
    db: &Db,
    sql: &str,
    now: DateTime<Utc>,
    id: JobId,
    lease_token: &str,
) -> Result<u64, sqlx::Error> {
    Ok(crate::on_db!(db, |pool| {
        sqlx::query(sql)
            .bind(now)
            .bind(id)
            .bind(lease_token)
            .execute(pool)
            .await?
            .rows_affected()
    }))
}
