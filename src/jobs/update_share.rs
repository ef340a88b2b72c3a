//! The `plex.update_share` job: brings an invited share's libraries in line with the subscriber's plan.

use crate::jobs::kinds::share_job;
use crate::services::plex_sync;

share_job!(
    /// Brings an invited share's libraries in line with the subscriber's plan.
    UpdateShare,
    "plex.update_share",
    plex_sync::update_libraries
);
