//! The `access.place_waiting` job: invites the subscribers who waited for a server with room.

use crate::jobs::kinds::period_job;
use crate::services::access;

period_job!(
    /// One placement run, once per period (the hour, or an admin change's stamp).
    PlaceWaiting,
    "access.place_waiting",
    access::place_waiting
);
