//! The `plex.release_share` job: gives up a suspended share's place after the grace days (marks it removed).

use crate::jobs::kinds::share_job;
use crate::services::plex_sync;

share_job!(
    /// Gives up a suspended share's place after the grace days (marks it removed).
    ReleaseShare,
    "plex.release_share",
    plex_sync::release_share
);
