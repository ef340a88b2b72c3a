//! Durable background work, a door like the bot and the web: every side effect on a remote system
//! (an invite, a removal, an email, a DM) is a job enqueued in the same transaction as the state
//! change that caused it, and run later by a worker.
//!
//! Rules it keeps:
//! - One file per job kind: its typed arguments (serde) and `impl Job` with the kind name, the
//!   idempotency key and a thin `run` that loads, calls ONE service or integration, and maps the
//!   outcome to done / retry / park / dead. Decisions live in services.
//! - One registry ([`registry!`] below) lists every kind. Only registered kinds can be enqueued
//!   (the typed [`Queue::enqueue`] takes [`Registered`] jobs), so a kind cannot be queued that no
//!   worker would run.
//! - Services enqueue with one typed call inside their transaction:
//!   `app.queue.enqueue(&mut tx, &InviteShare::new(share, owner, "1"))`; they never name a kind
//!   string and never call a handler. Handlers import services, not the reverse.
//! - The queue's mechanics (claim, lease, backoff, per-key rate limits) are in [`queue`].

use std::future::Future;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::app::App;
use crate::integrations::plex::{PlexError, Retry};
use crate::services::StepError;

pub mod queue;

mod deliver_notification;
mod flag_fanout;
mod invite_share;
mod kinds;
mod lifecycle_sweep;
mod place_waiting;
mod poll_sign_in;
mod reconcile_server;
mod release_share;
mod remove_share;
mod suspend_share;
mod sync_roles;
mod update_share;

pub use deliver_notification::DeliverNotification;
pub use flag_fanout::FlagFanout;
pub use invite_share::InviteShare;
pub use lifecycle_sweep::LifecycleSweep;
pub use place_waiting::PlaceWaiting;
pub use poll_sign_in::PollSignIn;
pub use queue::{ClaimedJob, Dispatch, JobError, NewJob, Outcome, Queue};
pub use reconcile_server::ReconcileServer;
pub use release_share::ReleaseShare;
pub use remove_share::RemoveShare;
pub use suspend_share::SuspendShare;
pub use sync_roles::SyncRoles;
pub use update_share::UpdateShare;

/// A kind of job: its arguments are the implementing type.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + Sized + 'static {
    /// The kind name stored with each job. Never rename a released kind: queued jobs carry it.
    const KIND: &'static str;

    /// The idempotency key: enqueueing a job whose key exists already is a no-op. It names the
    /// logical event (the share and its generation, the hour, the notification row).
    fn key(&self) -> String;

    /// Jobs with the same rate key share one rate limit (one owner Plex account's plex.tv calls).
    fn rate_key(&self) -> Option<String> {
        None
    }

    /// Runs one attempt.
    fn run(self, app: &App, job: &ClaimedJob) -> impl Future<Output = Result<(), JobError>> + Send;
}

/// A job kind listed in the registry: only these can be enqueued. Implemented by [`registry!`]
/// alone.
pub trait Registered: Job {}

/// Lists every job kind: implements [`Registered`] for each, and builds [`KINDS`] and the
/// dispatcher from the same list, so the three cannot disagree.
macro_rules! registry {
    ($($job:ty),+ $(,)?) => {
        $(impl Registered for $job {})+

        /// Every registered kind name.
        pub const KINDS: &[&str] = &[$(<$job as Job>::KIND),+];

        async fn dispatch(app: &App, job: &ClaimedJob) -> Result<(), JobError> {
            $(
                if job.kind == <$job as Job>::KIND {
                    return args::<$job>(job)?.run(app, job).await;
                }
            )+
            Err(JobError::Fail(anyhow::anyhow!(
                "this version of Usher has no handler for jobs of kind `{}`",
                job.kind
            )))
        }
    };
}

registry!(
    InviteShare,
    UpdateShare,
    RemoveShare,
    SuspendShare,
    ReleaseShare,
    ReconcileServer,
    LifecycleSweep,
    SyncRoles,
    DeliverNotification,
    FlagFanout,
    PlaceWaiting,
    PollSignIn,
);

/// Runs the application's jobs through the registry.
#[derive(Debug, Clone)]
pub struct AppDispatch {
    app: App,
}

impl AppDispatch {
    /// A dispatcher over `app`'s services and integrations.
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

#[async_trait]
impl Dispatch for AppDispatch {
    async fn run(&self, job: &ClaimedJob) -> Result<(), JobError> {
        dispatch(&self.app, job).await
    }
}

/// Reads a job's JSON arguments; a payload that does not parse can never succeed.
fn args<T: DeserializeOwned>(job: &ClaimedJob) -> Result<T, JobError> {
    serde_json::from_str(&job.payload).map_err(|e| {
        JobError::Fail(anyhow::anyhow!(
            "job {} has unreadable arguments: {e}",
            job.id
        ))
    })
}

/// How long a job waits after a 429 that named no Retry-After.
const RATE_LIMIT_PAUSE: std::time::Duration = std::time::Duration::from_secs(10);

/// How a remote step's failure decides the job's fate (wire reference §1.9): a refused owner
/// token or a retired endpoint waits for an admin; rate limiting waits (honouring Retry-After,
/// spending no attempt); server faults retry; anything else can never succeed.
impl From<StepError> for JobError {
    fn from(err: StepError) -> Self {
        match err {
            StepError::Plex(PlexError::Unauthorized) => Self::Park(anyhow::anyhow!(
                "plex.tv refused the owner account's token; give Usher a working token with /admin plex-account update-token"
            )),
            StepError::Plex(PlexError::Gone { endpoint }) => Self::Park(anyhow::anyhow!(
                "plex.tv retired the endpoint {endpoint}; update Usher"
            )),
            // Rate limiting is not failure: wait as long as plex.tv asks, without an attempt.
            StepError::Plex(PlexError::RateLimited { retry_after }) => Self::Wait {
                reason: "plex.tv is rate limiting (429)".to_owned(),
                after: retry_after.unwrap_or(RATE_LIMIT_PAUSE),
            },
            StepError::Plex(other) => match other.retry() {
                Retry::After(after) => Self::Retry {
                    error: other.into(),
                    after,
                },
                Retry::Never => Self::Fail(other.into()),
            },
            StepError::NeedsAdmin(why) => Self::Park(why),
            StepError::Impossible(why) => Self::Fail(why),
            StepError::Temporary(why) => Self::retry(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{OwnerAccountId, ServerId, ShareId, SubscriberId};

    /// One value of every kind, as a service would enqueue it.
    fn examples() -> Vec<(&'static str, String, String)> {
        fn one<J: Registered>(job: &J) -> (&'static str, String, String) {
            (J::KIND, serde_json::to_string(job).unwrap(), job.key())
        }
        let (share, owner) = (ShareId::new(7), OwnerAccountId::new(2));
        vec![
            one(&InviteShare::new(share, owner, "1")),
            one(&UpdateShare::new(share, owner, "plan-3")),
            one(&RemoveShare::new(share, owner, "account-change")),
            one(&SuspendShare::new(share, owner, "end")),
            one(&ReleaseShare::new(share, owner, "end")),
            one(&ReconcileServer::new(ServerId::new(4), owner, "2026030112")),
            one(&LifecycleSweep::new("2026030112")),
            one(&SyncRoles::new(SubscriberId::new(9), "paid-1")),
            one(&DeliverNotification { notification: 11 }),
            one(&FlagFanout {
                preview: 3,
                after: SubscriberId::new(500),
            }),
            one(&PlaceWaiting::new("2026030112")),
            one(&PollSignIn::new(crate::domain::ProofId::new(12))),
        ]
    }

    #[test]
    fn every_registered_kind_has_an_example_and_kinds_are_unique() {
        let mut kinds: Vec<&str> = examples().iter().map(|(k, _, _)| *k).collect();
        kinds.sort_unstable();
        let mut registered = KINDS.to_vec();
        registered.sort_unstable();
        assert_eq!(kinds, registered, "one example per registered kind");
        registered.dedup();
        assert_eq!(registered.len(), KINDS.len(), "kind names are unique");
    }

    #[test]
    fn every_kind_round_trips_its_arguments_and_key_through_the_stored_payload() {
        fn again<J: Registered>(payload: &str) -> (String, String) {
            let job: J = serde_json::from_str(payload).unwrap();
            (serde_json::to_string(&job).unwrap(), job.key())
        }
        for (kind, payload, key) in examples() {
            let back = match kind {
                InviteShare::KIND => again::<InviteShare>(&payload),
                UpdateShare::KIND => again::<UpdateShare>(&payload),
                RemoveShare::KIND => again::<RemoveShare>(&payload),
                SuspendShare::KIND => again::<SuspendShare>(&payload),
                ReleaseShare::KIND => again::<ReleaseShare>(&payload),
                ReconcileServer::KIND => again::<ReconcileServer>(&payload),
                LifecycleSweep::KIND => again::<LifecycleSweep>(&payload),
                SyncRoles::KIND => again::<SyncRoles>(&payload),
                DeliverNotification::KIND => again::<DeliverNotification>(&payload),
                FlagFanout::KIND => again::<FlagFanout>(&payload),
                PlaceWaiting::KIND => again::<PlaceWaiting>(&payload),
                PollSignIn::KIND => again::<PollSignIn>(&payload),
                other => panic!("no round trip for {other}"),
            };
            assert_eq!(back, (payload, key), "{kind}");
        }
    }

    #[test]
    fn payloads_queued_by_the_previous_release_still_parse() {
        // Share jobs were queued as `{"share": N}` before the kinds had their own files.
        let job: InviteShare = serde_json::from_str(r#"{"share": 5}"#).unwrap();
        assert_eq!(job.share, ShareId::new(5));
        let job: ReconcileServer = serde_json::from_str(r#"{"server": 4}"#).unwrap();
        assert_eq!(job.server, ServerId::new(4));
        let job: SyncRoles = serde_json::from_str(r#"{"subscriber": 9}"#).unwrap();
        assert_eq!(job.subscriber, SubscriberId::new(9));
        let _: LifecycleSweep = serde_json::from_str("{}").unwrap();
        let _: PlaceWaiting = serde_json::from_str("{}").unwrap();
    }
}
