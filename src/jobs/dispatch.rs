//! The job kinds this installation runs, mapped to their handlers. Each issue that adds a side
//! effect (invite, removal, email, DM) adds its kind here.

use async_trait::async_trait;

use crate::app::App;
use crate::jobs::{ClaimedJob, Dispatch, JobError, plex};
use crate::services::access::{self, PLACE_WAITING};
use crate::services::lifecycle::{self, RoleJob, SWEEP, SYNC_ROLES};
use crate::services::notify::{self, DELIVER, FLAG_FANOUT};
use crate::services::shares::{
    INVITE, RECONCILE, RELEASE, REMOVE, ReconcileJob, SUSPEND, ShareJob, UPDATE,
};

/// Runs the application's jobs.
#[derive(Debug, Clone)]
pub struct AppDispatch {
    app: App,
}

impl AppDispatch {
    /// A dispatcher over `app`'s services and integrations.
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

#[async_trait]
impl Dispatch for AppDispatch {
    async fn run(&self, job: &ClaimedJob) -> Result<(), JobError> {
        let app = &self.app;
        match job.kind.as_str() {
            INVITE => plex::invite(app, args::<ShareJob>(job)?.share).await,
            UPDATE => plex::update(app, args::<ShareJob>(job)?.share).await,
            REMOVE => plex::remove(app, args::<ShareJob>(job)?.share).await,
            SUSPEND => plex::suspend(app, args::<ShareJob>(job)?.share).await,
            RELEASE => plex::release(app, args::<ShareJob>(job)?.share).await,
            SWEEP => lifecycle::sweep(app)
                .await
                .map(drop)
                .map_err(JobError::retry),
            SYNC_ROLES => lifecycle::sync_roles(app, args::<RoleJob>(job)?.subscriber).await,
            RECONCILE => plex::reconcile(app, args::<ReconcileJob>(job)?.server)
                .await
                .map(drop),
            DELIVER => notify::deliver(app, job, args(job)?).await,
            FLAG_FANOUT => notify::fan_out_flagged(app, args(job)?).await,
            PLACE_WAITING => access::place_waiting(app)
                .await
                .map(drop)
                .map_err(JobError::retry),
            other => Err(JobError::Fail(anyhow::anyhow!(
                "this version of Usher has no handler for jobs of kind `{other}`"
            ))),
        }
    }
}

/// Reads a job's JSON arguments; a payload that does not parse can never succeed.
fn args<T: serde::de::DeserializeOwned>(job: &ClaimedJob) -> Result<T, JobError> {
    serde_json::from_str(&job.payload).map_err(|e| {
        JobError::Fail(anyhow::anyhow!(
            "job {} has unreadable arguments: {e}",
            job.id
        ))
    })
}
