//! The durable job queue: enqueue inside the caller's transaction (outbox), claim with a lease,
//! run, and then done / retry with exponential backoff and jitter / dead / parked.
//!
//! Rules it keeps:
//! - A job exists only if the transaction that enqueued it committed; its idempotency key makes a
//!   second enqueue of the same logical job a no-op.
//! - A claimed job whose worker died is taken over once its lease expires; every transition after
//!   a claim is fenced by the lease token, so a late worker cannot overwrite a newer claim.
//! - Jobs sharing a rate key (one per owner Plex account) never run faster than the configured rate
//!   in this process.
//! - Shutdown lets running jobs finish within a grace period and releases the rest, uncharged.
//! - Business time (due times, leases) comes from the injected clock; only the rate limiter and the
//!   idle poll use the monotonic clock, because they pace real requests.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use rand::Rng as _;
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::config::JobSettings;
use crate::domain::JobId;
use crate::jobs::Registered;
use crate::store::jobs::{self as sql, AfterFailure, ClaimedJobRow, NewJobRow};
use crate::store::{Db, Tx};

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    kind: &'static str,
    payload: String,
    idempotency_key: String,
    rate_key: Option<String>,
    delay: Option<chrono::Duration>,
}

impl NewJob {
    /// A job of `kind` with JSON arguments, unique per `idempotency_key`.
    pub fn new(
        kind: &'static str,
        payload: &impl Serialize,
        idempotency_key: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            payload: serde_json::to_string(payload).expect("job payloads serialise"),
            idempotency_key: idempotency_key.into(),
            rate_key: None,
            delay: None,
        }
    }

    /// Shares a rate limit with every other job of the same key.
    #[must_use]
    pub fn rate_limited_by(mut self, key: impl Into<String>) -> Self {
        self.rate_key = Some(key.into());
        self
    }

    /// Runs no earlier than `delay` from now.
    #[must_use]
    pub fn after(mut self, delay: chrono::Duration) -> Self {
        self.delay = Some(delay);
        self
    }
}

/// A job a worker holds.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    /// Row id.
    pub id: JobId,
    /// Handler name.
    pub kind: String,
    /// JSON arguments.
    pub payload: String,
    /// The enqueue key; handlers reuse it as the idempotency key of remote calls.
    pub idempotency_key: String,
    /// Rate-limit key.
    pub rate_key: Option<String>,
    /// Attempts so far, this one included.
    pub attempt: u32,
    /// When it was queued.
    pub created_at: chrono::DateTime<chrono::Utc>,
    lease_token: String,
    max_attempts: u32,
}

impl ClaimedJob {
    /// True when this attempt is the last one allowed: a handler may then record its own
    /// give-up state instead of leaving the job to die.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }
}

/// How a job attempt failed, and so what happens next.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// A passing fault: try again, after the given delay or the queue's backoff.
    #[error("{error:#}")]
    Retry {
        /// The cause.
        error: anyhow::Error,
        /// The remote service said when (Retry-After).
        after: Option<Duration>,
    },
    /// Cannot succeed until an admin acts (e.g. an owner token was revoked); not retried.
    #[error("parked: {0:#}")]
    Park(anyhow::Error),
    /// Cannot ever succeed; marked dead at once.
    #[error("{0:#}")]
    Fail(anyhow::Error),
    /// Not a failure: the remote side asks us to wait (plex.tv's 429 and its Retry-After) or a
    /// person has not finished yet (a Plex sign-in). Runs again after `after` without spending an
    /// attempt, until `jobs.max_wait_secs` after it was queued.
    #[error("waiting: {reason}")]
    Wait {
        /// Why, for the job's record.
        reason: String,
        /// When to look again.
        after: Duration,
    },
}

impl JobError {
    /// A retryable failure with the queue's own backoff.
    pub fn retry(error: impl Into<anyhow::Error>) -> Self {
        Self::Retry {
            error: error.into(),
            after: None,
        }
    }
}

/// Runs jobs of every kind this process knows.
#[async_trait]
pub trait Dispatch: Send + Sync {
    /// Runs one attempt of a job.
    async fn run(&self, job: &ClaimedJob) -> Result<(), JobError>;
}

/// What one executed attempt ended as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Succeeded.
    Done,
    /// Failed; queued again.
    Retried,
    /// Told to wait; queued again without spending the attempt.
    Waiting,
    /// Failed for good.
    Dead,
    /// Waits for an admin.
    Parked,
    /// Given back at shutdown.
    Released,
    /// Another worker took the job over (this worker's lease had expired).
    LeaseLost,
}

/// The queue of one installation. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    clock: SharedClock,
    settings: JobSettings,
    wake: Notify,
    limiter: DefaultKeyedRateLimiter<String>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl Queue {
    /// A queue over `db`; keyed jobs are limited to `per_key_per_second`.
    pub fn new(db: Db, clock: SharedClock, settings: JobSettings, per_key_per_second: f64) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                clock,
                settings,
                wake: Notify::new(),
                limiter: DefaultKeyedRateLimiter::keyed(quota(per_key_per_second)),
            }),
        }
    }

    /// Adds a job of a registered kind inside the caller's transaction: the typed call every
    /// service uses. False when a job with the same key exists. Commit with [`Queue::commit`] (or
    /// call [`Queue::wake`] after the commit) so idle workers start at once.
    pub async fn enqueue<J: Registered>(&self, tx: &mut Tx, job: &J) -> Result<bool, sqlx::Error> {
        let mut new = NewJob::new(J::KIND, job, job.key());
        if let Some(key) = job.rate_key() {
            new = new.rate_limited_by(key);
        }
        self.enqueue_raw(tx, &new).await
    }

    /// Adds a job by kind name: the queue's own mechanics, for its tests and benchmarks. Services
    /// use the typed [`Queue::enqueue`].
    pub async fn enqueue_raw(&self, tx: &mut Tx, job: &NewJob) -> Result<bool, sqlx::Error> {
        let now = self.inner.clock.now();
        let row = NewJobRow {
            kind: job.kind,
            payload: &job.payload,
            idempotency_key: &job.idempotency_key,
            rate_key: job.rate_key.as_deref(),
            max_attempts: i32::try_from(self.inner.settings.max_attempts).unwrap_or(i32::MAX),
            run_at: now + job.delay.unwrap_or_default(),
        };
        sql::insert_job(tx, &row, now).await
    }

    /// Commits a transaction that enqueued jobs, then wakes idle workers.
    pub async fn commit(&self, tx: Tx) -> Result<(), sqlx::Error> {
        tx.commit().await?;
        self.wake();
        Ok(())
    }

    /// Wakes idle workers (they also poll on their own).
    pub fn wake(&self) {
        self.inner.wake.notify_waiters();
    }

    /// Claims the next due job, if any.
    pub async fn claim(&self) -> Result<Option<ClaimedJob>, sqlx::Error> {
        let now = self.inner.clock.now();
        let lease = chrono::Duration::seconds(
            i64::try_from(self.inner.settings.lease_secs).unwrap_or(i64::MAX / 1000),
        );
        let token = uuid::Uuid::new_v4().to_string();
        let row = sql::claim_next(&self.inner.db, &token, now, now + lease).await?;
        Ok(row.map(|r: ClaimedJobRow| ClaimedJob {
            id: r.id,
            kind: r.kind,
            payload: r.payload,
            idempotency_key: r.idempotency_key,
            rate_key: r.rate_key,
            attempt: u32::try_from(r.attempts).unwrap_or(0),
            created_at: r.created_at,
            max_attempts: u32::try_from(r.max_attempts).unwrap_or(1),
            lease_token: token,
        }))
    }

    /// Runs one claimed job to an outcome and records it, in a `job` span carrying its id, kind
    /// and attempt. On `shutdown`, a running job gets the grace period to finish and is released
    /// otherwise.
    pub async fn execute(
        &self,
        job: ClaimedJob,
        dispatch: &dyn Dispatch,
        shutdown: &CancellationToken,
    ) -> Result<Outcome, sqlx::Error> {
        let span =
            tracing::info_span!("job", id = job.id.get(), kind = %job.kind, attempt = job.attempt);
        tracing::Instrument::instrument(self.execute_in_span(job, dispatch, shutdown), span).await
    }

    async fn execute_in_span(
        &self,
        job: ClaimedJob,
        dispatch: &dyn Dispatch,
        shutdown: &CancellationToken,
    ) -> Result<Outcome, sqlx::Error> {
        if job.attempt > job.max_attempts {
            // Its workers kept dying mid-run until the budget was spent.
            return self
                .record_failure(
                    &job,
                    "attempts exhausted (leases expired)",
                    AfterFailure::Dead,
                )
                .await;
        }
        if let Some(key) = &job.rate_key
            && !self.wait_for_rate(key, shutdown).await
        {
            return self.release(&job).await;
        }
        let run = dispatch.run(&job);
        tokio::pin!(run);
        let result = tokio::select! {
            result = &mut run => Some(result),
            () = shutdown.cancelled() => {
                let grace = Duration::from_secs(self.inner.settings.shutdown_grace_secs);
                tokio::time::timeout(grace, &mut run).await.ok()
            }
        };
        match result {
            None => self.release(&job).await,
            Some(Ok(())) => {
                let now = self.inner.clock.now();
                if sql::update_done(&self.inner.db, job.id, &job.lease_token, now).await? {
                    Ok(Outcome::Done)
                } else {
                    tracing::warn!(job = %job.id, kind = %job.kind, "job finished after its lease was taken over");
                    Ok(Outcome::LeaseLost)
                }
            }
            Some(Err(err)) => {
                let next = self.after_failure(&job, &err);
                if matches!(err, JobError::Wait { .. }) {
                    tracing::debug!(job = %job.id, kind = %job.kind, reason = %err, next = ?next, "job waits");
                } else {
                    tracing::warn!(job = %job.id, kind = %job.kind, attempt = job.attempt, error = %err, next = ?next, "job attempt failed");
                }
                self.record_failure(&job, &err.to_string(), next).await
            }
        }
    }

    /// Claims and runs due jobs one after another until none is due; returns how many ran.
    /// Tests drive the queue with this instead of background workers.
    pub async fn run_due(&self, dispatch: &dyn Dispatch) -> Result<usize, sqlx::Error> {
        let never = CancellationToken::new();
        let mut ran = 0;
        while let Some(job) = self.claim().await? {
            self.execute(job, dispatch, &never).await?;
            ran += 1;
        }
        Ok(ran)
    }

    /// Runs `workers` background workers until `shutdown`, then waits for them.
    pub async fn run_workers(&self, dispatch: Arc<dyn Dispatch>, shutdown: CancellationToken) {
        let mut set = tokio::task::JoinSet::new();
        for worker in 0..self.inner.settings.workers {
            let queue = self.clone();
            let dispatch = Arc::clone(&dispatch);
            let shutdown = shutdown.clone();
            set.spawn(async move { queue.worker_loop(worker, &*dispatch, &shutdown).await });
        }
        while set.join_next().await.is_some() {}
    }

    async fn worker_loop(
        &self,
        worker: usize,
        dispatch: &dyn Dispatch,
        shutdown: &CancellationToken,
    ) {
        let poll = Duration::from_millis(self.inner.settings.poll_interval_ms);
        while !shutdown.is_cancelled() {
            // Register for a wake-up before looking, so a job committed in between is not missed.
            let woken = self.inner.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            match self.claim().await {
                Ok(Some(job)) => {
                    if let Err(err) = self.execute(job, dispatch, shutdown).await {
                        tracing::error!(worker, error = %err, "recording a job outcome failed");
                        tokio::time::sleep(poll).await;
                    }
                }
                Ok(None) => {
                    tokio::select! {
                        () = &mut woken => {}
                        () = tokio::time::sleep(poll) => {}
                        () = shutdown.cancelled() => {}
                    }
                }
                Err(err) => {
                    tracing::error!(worker, error = %err, "claiming a job failed");
                    tokio::select! {
                        () = tokio::time::sleep(poll) => {}
                        () = shutdown.cancelled() => {}
                    }
                }
            }
        }
    }

    /// Waits until the key's limiter admits one more request. False when shut down meanwhile.
    /// Waits until a call under `key` (an owner account's plex.tv rate key) may go, sharing the
    /// limit with the jobs of that key: for plex.tv reads a service makes outside a job (an
    /// import's preview).
    pub async fn throttle(&self, key: &str) {
        self.wait_for_rate(key, &CancellationToken::new()).await;
    }

    async fn wait_for_rate(&self, key: &str, shutdown: &CancellationToken) -> bool {
        let key = key.to_string();
        loop {
            match self.inner.limiter.check_key(&key) {
                Ok(()) => return true,
                Err(not_until) => {
                    let wait = not_until.wait_time_from(DefaultClock::default().now());
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = shutdown.cancelled() => return false,
                    }
                }
            }
        }
    }

    fn after_failure(&self, job: &ClaimedJob, err: &JobError) -> AfterFailure {
        match err {
            JobError::Fail(_) => AfterFailure::Dead,
            JobError::Park(_) => AfterFailure::Parked,
            JobError::Wait { after, .. } => {
                let now = self.inner.clock.now();
                let deadline = job.created_at
                    + chrono::Duration::seconds(
                        i64::try_from(self.inner.settings.max_wait_secs).unwrap_or(i64::MAX / 1000),
                    );
                let at = now + chrono::Duration::from_std(*after).unwrap_or(chrono::Duration::MAX);
                if at > deadline {
                    AfterFailure::Dead
                } else {
                    AfterFailure::WaitUntil(at)
                }
            }
            JobError::Retry { .. } if job.attempt >= job.max_attempts => AfterFailure::Dead,
            JobError::Retry { after, .. } => {
                let delay = after.unwrap_or_else(|| self.backoff(job.attempt));
                let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
                AfterFailure::RetryAt(self.inner.clock.now() + delay)
            }
        }
    }

    /// Exponential backoff with equal jitter: half of `base · 2^(attempt-1)` (capped) is fixed, the
    /// other half random, so retries of a burst of failures spread out. Hand-rolled because the
    /// delay is persisted as the job's next due time; retry crates drive in-process loops.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let settings = &self.inner.settings;
        let exp = settings
            .backoff_base_secs
            .saturating_mul(
                1u64.checked_shl(attempt.saturating_sub(1))
                    .unwrap_or(u64::MAX),
            )
            .min(settings.backoff_max_secs)
            .max(1);
        let half_ms = exp * 500;
        Duration::from_millis(half_ms + rand::thread_rng().gen_range(0..=half_ms))
    }

    async fn record_failure(
        &self,
        job: &ClaimedJob,
        error: &str,
        next: AfterFailure,
    ) -> Result<Outcome, sqlx::Error> {
        let now = self.inner.clock.now();
        if !sql::update_failed(&self.inner.db, job.id, &job.lease_token, now, error, next).await? {
            return Ok(Outcome::LeaseLost);
        }
        Ok(match next {
            AfterFailure::RetryAt(_) => Outcome::Retried,
            AfterFailure::WaitUntil(_) => Outcome::Waiting,
            AfterFailure::Dead => {
                tracing::error!(job = %job.id, kind = %job.kind, error, "job is dead");
                Outcome::Dead
            }
            AfterFailure::Parked => Outcome::Parked,
        })
    }

    async fn release(&self, job: &ClaimedJob) -> Result<Outcome, sqlx::Error> {
        let now = self.inner.clock.now();
        sql::update_released(&self.inner.db, job.id, &job.lease_token, now).await?;
        Ok(Outcome::Released)
    }
}

/// A quota of `per_second` requests per second, evenly spaced, so a fractional rate such as
/// 2.5/s is kept exactly. A burst of two lets a worker that wakes a little late (timer
/// granularity) use its slot without pushing every later slot back, which otherwise loses about
/// 5% of the rate at 50/s; the long-run rate stays the configured one.
fn quota(per_second: f64) -> Quota {
    Quota::with_period(Duration::from_secs_f64(1.0 / per_second))
        .expect("configured rate is positive")
        .allow_burst(NonZeroU32::new(2).expect("2 is not zero"))
}
