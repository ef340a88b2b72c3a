//! The `lifecycle.sweep` job: the hourly expiry, reminder and role sweep.

use crate::jobs::kinds::period_job;
use crate::services::lifecycle;

period_job!(
    /// One lifecycle sweep, once per period (the hour).
    LifecycleSweep,
    "lifecycle.sweep",
    lifecycle::sweep
);
