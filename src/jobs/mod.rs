//! Durable background work. Every side effect on a remote system (an invite, a removal, an email,
//! a DM) is a job enqueued in the same transaction as the state change that caused it.

pub mod dispatch;
pub mod plex;
pub mod queue;

pub use dispatch::AppDispatch;
pub use queue::{ClaimedJob, Dispatch, JobError, NewJob, Outcome, Queue};
