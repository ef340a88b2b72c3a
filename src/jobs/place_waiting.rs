//! The `access.place_waiting` job: invites the subscribers who waited for a server with room.

use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::jobs::{ClaimedJob, Job, JobError};
use crate::services::access;

/// One placement run, once per period (the hour, or an admin change's stamp).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceWaiting {
    /// The period label.
    #[serde(default)]
    pub period: String,
}

impl PlaceWaiting {
    /// The run of `period`.
    pub fn new(period: &str) -> Self {
        Self {
            period: period.to_owned(),
        }
    }
}

impl Job for PlaceWaiting {
    const KIND: &'static str = "access.place_waiting";

    fn key(&self) -> String {
        format!("{}:{}", Self::KIND, self.period)
    }

    async fn run(self, app: &App, _job: &ClaimedJob) -> Result<(), JobError> {
        access::place_waiting(app)
            .await
            .map(drop)
            .map_err(JobError::retry)
    }
}
