//! Recurring work of a running installation: the job workers now; expiry, reminders and Plex
//! share sync join them in later issues. Everything here stops on the shutdown token.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::jobs::AppDispatch;

/// Runs the job workers (and recurring tasks) until `shutdown`.
pub async fn run(app: App, shutdown: CancellationToken) {
    let dispatch = Arc::new(AppDispatch::new(app.clone()));
    app.queue.run_workers(dispatch, shutdown).await;
}
