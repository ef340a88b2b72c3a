//! The durable job queue on both backends: outbox semantics, retries, leases, parking, shutdown,
//! and concurrent claimers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;
use usher::clock::Clock as _;
use usher::domain::JobState;
use usher::jobs::{ClaimedJob, Dispatch, JobError, NewJob, Outcome, Queue};
use usher::store;

use crate::helpers::{Backend, TestApp};

/// A dispatcher that records every run and answers with a fixed behaviour.
#[derive(Default)]
struct Recorder {
    runs: Mutex<HashMap<String, u32>>,
    behaviour: Behaviour,
}

#[derive(Default, Clone, Copy)]
enum Behaviour {
    #[default]
    Succeed,
    Retry,
    Park,
    Hang,
}

impl Recorder {
    fn with(behaviour: Behaviour) -> Self {
        Self {
            behaviour,
            ..Self::default()
        }
    }

    fn runs_of(&self, key: &str) -> u32 {
        self.runs.lock().unwrap().get(key).copied().unwrap_or(0)
    }

    fn total(&self) -> u32 {
        self.runs.lock().unwrap().values().sum()
    }
}

#[async_trait]
impl Dispatch for Recorder {
    async fn run(&self, job: &ClaimedJob) -> Result<(), JobError> {
        *self
            .runs
            .lock()
            .unwrap()
            .entry(job.idempotency_key.clone())
            .or_default() += 1;
        match self.behaviour {
            Behaviour::Succeed => Ok(()),
            Behaviour::Retry => Err(JobError::retry(anyhow::anyhow!("plex.tv answered 503"))),
            Behaviour::Park => Err(JobError::Park(anyhow::anyhow!("owner token was revoked"))),
            Behaviour::Hang => std::future::pending().await,
        }
    }
}

async fn enqueue(app: &TestApp, key: &str) {
    let mut tx = app.app.db.begin().await.unwrap();
    assert!(
        app.app
            .queue
            .enqueue_raw(&mut tx, &NewJob::new("test", &serde_json::json!({}), key))
            .await
            .unwrap()
    );
    app.app.queue.commit(tx).await.unwrap();
}

async fn job_state(app: &TestApp, key: &str) -> store::jobs::JobStatusRow {
    store::jobs::find_by_key(&app.app.db, key)
        .await
        .unwrap()
        .expect("job exists")
}

async fn a_job_enqueued_in_a_rolled_back_transaction_never_runs(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut tx = app.app.db.begin().await.unwrap();
    let job = NewJob::new("test", &serde_json::json!({"n": 1}), "rolled-back");
    assert!(app.app.queue.enqueue_raw(&mut tx, &job).await.unwrap());
    tx.rollback().await.unwrap();

    let recorder = Recorder::default();
    assert_eq!(app.app.queue.run_due(&recorder).await.unwrap(), 0);
    assert_eq!(recorder.total(), 0);
    assert!(
        store::jobs::find_by_key(&app.app.db, "rolled-back")
            .await
            .unwrap()
            .is_none()
    );
}

async fn enqueueing_the_same_key_twice_keeps_one_job(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    enqueue(&app, "once").await;
    let mut tx = app.app.db.begin().await.unwrap();
    let again = NewJob::new("test", &serde_json::json!({}), "once");
    assert!(
        !app.app.queue.enqueue_raw(&mut tx, &again).await.unwrap(),
        "second enqueue is a no-op"
    );
    tx.commit().await.unwrap();

    let recorder = Recorder::default();
    assert_eq!(app.app.queue.run_due(&recorder).await.unwrap(), 1);
    assert_eq!(recorder.runs_of("once"), 1);
    assert_eq!(job_state(&app, "once").await.state.as_str(), "done");
}

async fn a_failing_job_is_retried_with_growing_delays_then_marked_dead(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.jobs.max_attempts = 5;
        s.jobs.backoff_base_secs = 10;
        s.jobs.backoff_max_secs = 3600;
    })
    .await;
    enqueue(&app, "flaky").await;
    let recorder = Recorder::with(Behaviour::Retry);
    let mut delays = Vec::new();
    for attempt in 1..=5u32 {
        assert_eq!(
            app.app.queue.run_due(&recorder).await.unwrap(),
            1,
            "attempt {attempt} runs"
        );
        let job = job_state(&app, "flaky").await;
        assert_eq!(u32::try_from(job.attempts).unwrap(), attempt);
        assert_eq!(job.last_error.as_deref(), Some("plex.tv answered 503"));
        if attempt == 5 {
            assert_eq!(job.state.as_str(), "dead", "out of attempts");
            break;
        }
        assert_eq!(job.state.as_str(), "queued");
        let delay = job.run_at - app.clock.now();
        // Equal jitter: between half and all of base · 2^(attempt-1).
        let full = chrono::Duration::seconds(10 * (1 << (attempt - 1)));
        assert!(
            delay >= full / 2 && delay <= full,
            "attempt {attempt}: delay {delay} outside [{}, {full}]",
            full / 2
        );
        delays.push(delay);
        // Not due a second early.
        app.clock.advance(delay - chrono::Duration::seconds(1));
        assert_eq!(
            app.app.queue.run_due(&recorder).await.unwrap(),
            0,
            "not due before its delay"
        );
        app.clock.advance(chrono::Duration::seconds(1));
    }
    assert!(
        delays.windows(2).all(|w| w[1] >= w[0]),
        "delays grow: {delays:?}"
    );
    assert_eq!(recorder.runs_of("flaky"), 5);
    app.clock.advance(chrono::Duration::days(30));
    assert_eq!(
        app.app.queue.run_due(&recorder).await.unwrap(),
        0,
        "a dead job never runs again"
    );
}

async fn a_job_whose_worker_died_runs_exactly_once_more_after_its_lease(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.jobs.lease_secs = 60).await;
    enqueue(&app, "orphan").await;
    // A worker claims the job and dies before finishing: the claim is simply never completed.
    let stale = app.app.queue.claim().await.unwrap().expect("claimed");
    assert_eq!(job_state(&app, "orphan").await.state.as_str(), "running");

    let recorder = Recorder::default();
    assert_eq!(
        app.app.queue.run_due(&recorder).await.unwrap(),
        0,
        "leased jobs are not taken"
    );
    app.clock.advance(chrono::Duration::seconds(59));
    assert_eq!(
        app.app.queue.run_due(&recorder).await.unwrap(),
        0,
        "lease still held"
    );
    app.clock.advance(chrono::Duration::seconds(1));
    assert_eq!(
        app.app.queue.run_due(&recorder).await.unwrap(),
        1,
        "taken over after the lease"
    );
    assert_eq!(recorder.runs_of("orphan"), 1);
    let job = job_state(&app, "orphan").await;
    assert_eq!((job.state.as_str(), job.attempts), ("done", 2));

    app.clock.advance(chrono::Duration::hours(1));
    assert_eq!(app.app.queue.run_due(&recorder).await.unwrap(), 0);
    assert_eq!(recorder.runs_of("orphan"), 1, "exactly once more");

    // The dead worker coming back cannot overwrite the newer outcome.
    let never = CancellationToken::new();
    let outcome = app
        .app
        .queue
        .execute(stale, &Recorder::with(Behaviour::Retry), &never)
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::LeaseLost);
    assert_eq!(job_state(&app, "orphan").await.state.as_str(), "done");
}

async fn a_parked_job_waits_for_an_admin_and_resumes_when_unparked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut tx = app.app.db.begin().await.unwrap();
    let job = NewJob::new("test", &serde_json::json!({}), "invite-1").rate_limited_by("owner:7");
    app.app.queue.enqueue_raw(&mut tx, &job).await.unwrap();
    tx.commit().await.unwrap();

    assert_eq!(
        app.app
            .queue
            .run_due(&Recorder::with(Behaviour::Park))
            .await
            .unwrap(),
        1
    );
    let parked = job_state(&app, "invite-1").await;
    assert_eq!(parked.state.as_str(), "parked");
    assert_eq!(
        parked.last_error.as_deref(),
        Some("parked: owner token was revoked")
    );
    app.clock.advance(chrono::Duration::days(7));
    let recorder = Recorder::default();
    assert_eq!(
        app.app.queue.run_due(&recorder).await.unwrap(),
        0,
        "parked jobs are not retried"
    );

    let mut tx = app.app.db.begin().await.unwrap();
    assert_eq!(
        store::jobs::update_unparked(&mut tx, "owner:7", app.clock.now())
            .await
            .unwrap(),
        1
    );
    tx.commit().await.unwrap();
    assert_eq!(app.app.queue.run_due(&recorder).await.unwrap(), 1);
    assert_eq!(job_state(&app, "invite-1").await.state, JobState::Done);
}

async fn shutdown_releases_a_running_job_uncharged(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.jobs.shutdown_grace_secs = 0;
        s.jobs.workers = 1;
    })
    .await;
    enqueue(&app, "slow").await;
    let recorder = Arc::new(Recorder::with(Behaviour::Hang));
    let shutdown = CancellationToken::new();
    let workers = tokio::spawn({
        let (queue, recorder, shutdown) = (
            app.app.queue.clone(),
            Arc::clone(&recorder),
            shutdown.clone(),
        );
        async move { queue.run_workers(recorder, shutdown).await }
    });
    wait_until(|| recorder.runs_of("slow") == 1).await;
    assert_eq!(job_state(&app, "slow").await.state.as_str(), "running");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), workers)
        .await
        .expect("workers stop")
        .unwrap();
    let job = job_state(&app, "slow").await;
    assert_eq!(
        (job.state.as_str(), job.attempts),
        ("queued", 0),
        "released and not charged"
    );
}

async fn concurrent_workers_never_run_the_same_job_twice(backend: Backend) {
    const JOBS: u32 = 1_000;
    let app = TestApp::spawn_with(backend, |s| s.jobs.workers = 4).await;
    let mut tx = app.app.db.begin().await.unwrap();
    for n in 0..JOBS {
        let job = NewJob::new("test", &serde_json::json!({ "n": n }), format!("job-{n}"));
        app.app.queue.enqueue_raw(&mut tx, &job).await.unwrap();
    }
    tx.commit().await.unwrap();

    // Two queues with their own pools stand for two Usher processes sharing the database.
    let second_db = match &app.app.db {
        usher::store::Db::Sqlite(_) => {
            let url = format!(
                "sqlite://{}",
                app.app.settings.data_dir.join("usher.db").display()
            );
            usher::store::Db::connect_url(&url, 4).await.unwrap()
        }
        usher::store::Db::Postgres(pool) => usher::store::Db::Postgres(
            sqlx::PgPool::connect_with((*pool.connect_options()).clone())
                .await
                .unwrap(),
        ),
    };
    let second = Queue::new(
        second_db,
        app.app.clock.clone(),
        app.app.settings.jobs.clone(),
        1000.0,
    );
    let recorder = Arc::new(Recorder::default());
    let shutdown = CancellationToken::new();
    let mut handles = Vec::new();
    for queue in [app.app.queue.clone(), second] {
        let (recorder, shutdown) = (Arc::clone(&recorder), shutdown.clone());
        handles.push(tokio::spawn(async move {
            queue.run_workers(recorder, shutdown).await;
        }));
    }
    wait_until(|| recorder.total() >= JOBS).await;
    shutdown.cancel();
    for handle in handles {
        handle.await.unwrap();
    }
    {
        let runs = recorder.runs.lock().unwrap();
        assert_eq!(runs.len(), JOBS as usize, "every job ran");
        let twice: Vec<_> = runs.iter().filter(|(_, n)| **n != 1).collect();
        assert!(twice.is_empty(), "jobs run more than once: {twice:?}");
    }
    let counts = store::jobs::count_by_state(&app.app.db).await.unwrap();
    assert_eq!(counts, vec![(JobState::Done, i64::from(JOBS))]);
}

/// Polls a condition for up to 60 s (a liveness bound, not a timing assertion).
async fn wait_until(condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

crate::on_both_backends!(
    a_job_enqueued_in_a_rolled_back_transaction_never_runs,
    enqueueing_the_same_key_twice_keeps_one_job,
    a_failing_job_is_retried_with_growing_delays_then_marked_dead,
    a_job_whose_worker_died_runs_exactly_once_more_after_its_lease,
    a_parked_job_waits_for_an_admin_and_resumes_when_unparked,
    shutdown_releases_a_running_job_uncharged,
    concurrent_workers_never_run_the_same_job_twice,
);
