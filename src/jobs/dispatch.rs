//! The job kinds this installation runs, mapped to their handlers. Each issue that adds a side
//! effect (invite, removal, email, DM) adds its kind here.

use async_trait::async_trait;

use crate::app::App;
use crate::jobs::{ClaimedJob, Dispatch, JobError};

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
        let _ = &self.app;
        Err(JobError::Fail(anyhow::anyhow!(
            "this version of Usher has no handler for jobs of kind `{}`",
            job.kind
        )))
    }
}
