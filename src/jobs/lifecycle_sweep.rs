//! The `lifecycle.sweep` job: the hourly expiry, reminder and role sweep.

use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::jobs::{ClaimedJob, Job, JobError};
use crate::services::lifecycle;

/// One sweep, once per period (the hour).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleSweep {
    /// The period label (e.g. `2026030112`).
    #[serde(default)]
    pub period: String,
}

impl LifecycleSweep {
    /// The sweep of `period`.
    pub fn new(period: &str) -> Self {
        Self {
            period: period.to_owned(),
        }
    }
}

impl Job for LifecycleSweep {
    const KIND: &'static str = "lifecycle.sweep";

    fn key(&self) -> String {
        format!("{}:{}", Self::KIND, self.period)
    }

    async fn run(self, app: &App, _job: &ClaimedJob) -> Result<(), JobError> {
        lifecycle::sweep(app)
            .await
            .map(drop)
            .map_err(JobError::retry)
    }
}
