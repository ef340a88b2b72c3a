//! Recurring work of a running installation: a tick that enqueues periodic jobs (hourly Plex
//! share reconcile, placing subscribers who waited for room, and the lifecycle sweep: expiry,
//! reminders, roles) for the job workers (`Queue::run_workers`, the `jobs` role) to run. Ticks
//! only enqueue, with period-stamped idempotency keys, so a restart or a second process running
//! the scheduler never doubles them.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::services::access::enqueue_place_waiting;
use crate::services::lifecycle::enqueue_sweep;
use crate::services::shares::enqueue_reconciles;

/// How often the tick looks for periodic work.
const TICK: Duration = Duration::from_secs(60);

/// Runs the periodic tick until `shutdown`.
pub async fn run(app: App, shutdown: CancellationToken) {
    loop {
        if let Err(err) = tick(&app).await {
            tracing::error!(error = format!("{err:#}"), "scheduler tick failed");
        }
        tokio::select! {
            () = tokio::time::sleep(TICK) => {}
            () = shutdown.cancelled() => break,
        }
    }
}

/// Enqueues the periodic jobs due now; returns how many were added.
pub async fn tick(app: &App) -> anyhow::Result<usize> {
    let hour = app.clock.now().format("%Y%m%d%H").to_string();
    let mut tx = app.db.begin().await?;
    let mut added = enqueue_reconciles(&app.queue, &mut tx, &hour).await?;
    if enqueue_place_waiting(app, &mut tx, &hour).await? {
        added += 1;
    }
    if enqueue_sweep(app, &mut tx, &hour).await? {
        added += 1;
    }
    app.queue.commit(tx).await?;
    Ok(added)
}
