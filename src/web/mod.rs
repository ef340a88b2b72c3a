//! The web door: health, metrics, the My Account page ([`account`]) and the payment webhooks
//! ([`webhooks`]).
//! Handlers call services and render; internal errors become an opaque 500 with a logged cause.
//! Every request runs in a `request` span carrying its id (also sent back as `x-request-id`), its
//! method and its route — never its query string, which may carry a sign-in token.

use std::fmt::Write as _;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

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
        .layer(middleware::from_fn(request_span))
        .with_state(app)
}

/// The header `/healthz` names the installation in (see [`instance_id`]).
pub const INSTANCE_HEADER: &str = "x-usher-instance";

/// The installation's public name: a keyed digest of a constant, so every process of one
/// installation (one secret key) answers the same and `usher doctor` can tell that `public_url`
/// reaches this installation and not another, without revealing anything.
pub fn instance_id(app: &App) -> String {
    hex::encode(&app.signing_key.digest("usher/v1/instance", &[])[..8])
}

/// Runs the request in a span with a fresh id, and logs its outcome.
async fn request_span(request: Request, next: Next) -> Response {
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(no route)".to_owned(), |path| path.as_str().to_owned());
    let span = tracing::info_span!("request", id = %id, method = %request.method(), route = %route);
    let started = std::time::Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            ms = started.elapsed().as_millis(),
            "request finished"
        );
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
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

/// 200 when the database answers, 503 otherwise; names the installation in `x-usher-instance`.
async fn healthz(State(app): State<App>) -> impl IntoResponse {
    let instance = [(INSTANCE_HEADER, instance_id(&app))];
    match app.db.ping().await {
        Ok(()) => (StatusCode::OK, instance, "ok\n"),
        Err(err) => {
            tracing::error!(error = %err, "health check: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                instance,
                "database unreachable\n",
            )
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
