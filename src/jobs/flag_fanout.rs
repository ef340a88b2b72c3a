//! The `notify.flag_fanout` job: makes the flag notifications of a confirmed bulk flag, one
//! batch per step.

use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::domain::SubscriberId;
use crate::jobs::{ClaimedJob, Job, JobError};
use crate::services::notify;

/// One fan-out step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagFanout {
    /// The confirmed bulk-flag preview.
    pub preview: i64,
    /// Members with a larger subscriber id are still to do.
    pub after: SubscriberId,
}

impl Job for FlagFanout {
    const KIND: &'static str = "notify.flag_fanout";

    fn key(&self) -> String {
        format!("{}:{}:{}", Self::KIND, self.preview, self.after)
    }

    async fn run(self, app: &App, _job: &ClaimedJob) -> Result<(), JobError> {
        Ok(notify::fan_out_flagged(app, self.preview, self.after).await?)
    }
}
