//! The `plex.poll_sign_in` job: watches a Plex sign-in until the person approves it, then the
//! account change, join or claim it was started for is finished (or refused) without them
//! pressing anything.

use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::domain::{ProofId, ProofPurpose};
use crate::jobs::{ClaimedJob, Job, JobError};
use crate::services::{account_change, joining, proofs};

/// How often plex.tv is asked while the person signs in.
const POLL_EVERY: std::time::Duration = std::time::Duration::from_secs(3);

/// Watches one sign-in request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollSignIn {
    /// The sign-in request.
    pub request: ProofId,
}

impl PollSignIn {
    /// The watch of `request`.
    pub fn new(request: ProofId) -> Self {
        Self { request }
    }
}

impl Job for PollSignIn {
    const KIND: &'static str = "plex.poll_sign_in";

    fn key(&self) -> String {
        format!("{}:{}", Self::KIND, self.request)
    }

    async fn run(self, app: &App, _job: &ClaimedJob) -> Result<(), JobError> {
        let settled = match proofs::purpose_of(app, self.request).await {
            Ok(Some(ProofPurpose::Change)) => account_change::poll_sign_in(app, self.request).await,
            Ok(Some(ProofPurpose::Join | ProofPurpose::Claim)) => {
                joining::poll_sign_in(app, self.request).await
            }
            Ok(None) => Ok(true), // Gone (a restore from before it): nothing to watch.
            Err(err) => Err(err),
        };
        match settled {
            Ok(true) => Ok(()),
            Ok(false) => Err(JobError::Wait {
                reason: "the Plex sign-in is not approved yet".to_owned(),
                after: POLL_EVERY,
            }),
            Err(err) => Err(JobError::retry(err)),
        }
    }
}
