//! The `notify.deliver` job: delivers one notification row (DM, email or admin alert).

use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::jobs::{ClaimedJob, Job, JobError};
use crate::services::notify;

/// Delivers one notification, at most once (the row records how it went).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliverNotification {
    /// The notification row.
    pub notification: i64,
}

impl Job for DeliverNotification {
    const KIND: &'static str = "notify.deliver";

    fn key(&self) -> String {
        format!("{}:{}", Self::KIND, self.notification)
    }

    async fn run(self, app: &App, job: &ClaimedJob) -> Result<(), JobError> {
        Ok(notify::deliver(app, self.notification, job.is_last_attempt()).await?)
    }
}
