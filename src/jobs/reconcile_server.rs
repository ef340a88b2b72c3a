//! The `plex.reconcile` job: compares one server's shares with plex.tv's (hourly) and records
//! the drift.

use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::domain::{OwnerAccountId, ServerId};
use crate::jobs::{ClaimedJob, Job, JobError};
use crate::services::{plex_sync, shares};

/// Reconciles one server, once per period (the hour).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileServer {
    /// The server.
    pub server: ServerId,
    /// Its owner account when queued (the plex.tv rate limit).
    #[serde(default)]
    pub owner: Option<OwnerAccountId>,
    /// The period label (e.g. `2026030112`).
    #[serde(default)]
    pub period: String,
}

impl ReconcileServer {
    /// The reconcile of `server` (of `owner`) for `period`.
    pub fn new(server: ServerId, owner: OwnerAccountId, period: &str) -> Self {
        Self {
            server,
            owner: Some(owner),
            period: period.to_owned(),
        }
    }
}

impl Job for ReconcileServer {
    const KIND: &'static str = "plex.reconcile";

    fn key(&self) -> String {
        format!("{}:{}:{}", Self::KIND, self.server, self.period)
    }

    fn rate_key(&self) -> Option<String> {
        self.owner.map(shares::owner_rate_key)
    }

    async fn run(self, app: &App, _job: &ClaimedJob) -> Result<(), JobError> {
        plex_sync::reconcile_server(app, self.server).await?;
        Ok(())
    }
}
