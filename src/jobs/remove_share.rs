//! The `plex.remove_share` job: deletes a share on plex.tv and marks it removed.

use crate::jobs::kinds::share_job;
use crate::services::plex_sync;

share_job!(
    /// Deletes a share on plex.tv and marks it removed.
    RemoveShare,
    "plex.remove_share",
    plex_sync::remove_share
);
