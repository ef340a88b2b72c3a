//! The `plex.suspend_share` job: removes a lapsed subscriber's library access (the paid time ended), keeping the share row and its place on the server.

use crate::jobs::kinds::share_job;
use crate::services::plex_sync;

share_job!(
    /// Removes a lapsed subscriber's library access (the paid time ended), keeping the share row and its place on the server.
    SuspendShare,
    "plex.suspend_share",
    plex_sync::suspend_share
);
