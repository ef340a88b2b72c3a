//! The `plex.invite` job: sends the plex.tv invite of a pending share (placement chose its server).

use crate::jobs::kinds::share_job;
use crate::services::plex_sync;

share_job!(
    /// Sends the plex.tv invite of a pending share (placement chose its server).
    InviteShare,
    "plex.invite",
    plex_sync::send_invite
);
