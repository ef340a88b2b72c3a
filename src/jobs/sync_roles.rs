//! The `discord.sync_roles` job: gives or takes a subscriber's Discord roles to match their
//! standing when it runs.

use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::domain::SubscriberId;
use crate::jobs::{ClaimedJob, Job, JobError};
use crate::services::lifecycle;

/// One role sync, once per event (a payment, a lapse).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRoles {
    /// The subscriber.
    pub subscriber: SubscriberId,
    /// What caused it (separates repeated syncs).
    #[serde(default)]
    pub event: String,
}

impl SyncRoles {
    /// The sync of `subscriber`'s roles after `event`.
    pub fn new(subscriber: SubscriberId, event: &str) -> Self {
        Self {
            subscriber,
            event: event.to_owned(),
        }
    }
}

impl Job for SyncRoles {
    const KIND: &'static str = "discord.sync_roles";

    fn key(&self) -> String {
        format!("{}:{}:{}", Self::KIND, self.subscriber, self.event)
    }

    async fn run(self, app: &App, _job: &ClaimedJob) -> Result<(), JobError> {
        Ok(lifecycle::sync_roles(app, self.subscriber).await?)
    }
}
