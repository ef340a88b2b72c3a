//! The web door: health, metrics, the My Account page ([`account`]) and the payment webhooks
//! ([`webhooks`]).
//! Handlers call services and render; internal errors become an opaque 500 with a logged cause.

use std::fmt::Write as _;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::domain::JobState;
use crate::store;

pub mod account;
pub mod webhooks;

/// Every route of the web door.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(account::routes())
        .merge(webhooks::routes())
        .with_state(app)
}

/// Serves the web door on `listener` until `shutdown`, letting open requests finish.
pub async fn serve(
    app: App,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(app))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// 200 when the database answers, 503 otherwise.
async fn healthz(State(app): State<App>) -> impl IntoResponse {
    match app.db.ping().await {
        Ok(()) => (StatusCode::OK, "ok\n"),
        Err(err) => {
            tracing::error!(error = %err, "health check: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n")
        }
    }
}

/// Prometheus text exposition (every job state, even at zero). Written by hand: a handful of gauges read from the database per
/// scrape do not warrant a metrics registry.
async fn metrics(State(app): State<App>) -> Result<impl IntoResponse, StatusCode> {
    let counts = store::jobs::count_by_state(&app.db).await.map_err(|err| {
        tracing::error!(error = %err, "metrics: reading job counts failed");
        StatusCode::INTERNAL_SERVER_ERROR
    })?;
    let mut body = String::from(
        "# HELP usher_jobs Jobs in the durable queue, by state.\n# TYPE usher_jobs gauge\n",
    );
    for state in JobState::ALL {
        let n = counts
            .iter()
            .find(|(s, _)| s == state)
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(body, "usher_jobs{{state=\"{state}\"}} {n}");
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body))
}
