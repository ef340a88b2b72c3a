//! Use cases: one function per thing a person does. They take a transaction (the caller commits),
//! return typed results and typed errors that each door renders its own way.

pub mod access;
pub mod account;
pub mod account_change;
pub mod catalog;
pub mod checkout;
pub mod export;
pub mod health;
pub mod identities;
pub mod import;
pub mod import_csv;
pub mod jobs_admin;
pub mod joining;
pub mod lifecycle;
pub mod members;
pub mod notify;
pub mod payments;
pub mod placement;
pub mod plex_admin;
pub mod plex_sign_in;
pub mod plex_sync;
pub mod proofs;
pub mod recovery;
pub mod seats;
pub mod settings;
pub mod shares;
pub mod sign_in;
pub mod trials;

/// How one step of background work (a job's attempt) failed, in the service's terms; the job
/// door maps it to retry, park or dead (see `jobs::JobError`'s `From`).
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// plex.tv (or a Plex server) failed; its kind decides (401 needs an admin, 429/5xx retry, …).
    #[error(transparent)]
    Plex(#[from] crate::integrations::plex::PlexError),
    /// Cannot succeed until an admin acts; the message says what to do.
    #[error("{0:#}")]
    NeedsAdmin(anyhow::Error),
    /// Can never succeed.
    #[error("{0:#}")]
    Impossible(anyhow::Error),
    /// A passing fault (the database, a remote hiccup): try again later.
    #[error("{0:#}")]
    Temporary(anyhow::Error),
}

impl From<sqlx::Error> for StepError {
    fn from(err: sqlx::Error) -> Self {
        Self::Temporary(anyhow::Error::new(err).context("database"))
    }
}

/// An error a door can show to the person who caused it. Every service error type implements it
/// (usually through [`user_facing!`]), so each door renders them all in one place: a refusal as
/// its sentence, anything unexpected as an apology with a reference and the cause in the log.
pub trait UserFacing: std::error::Error + Send + Sync + 'static {
    /// The message for the person, or `None` for an unexpected failure (never shown as it is).
    fn user_message(&self) -> Option<String>;
}

/// Implements [`UserFacing`] for service error enums whose every variant but
/// `Unexpected(anyhow::Error)` is a message for the person; with `and_database`, also the
/// conversion of a database error into `Unexpected`.
macro_rules! user_facing {
    ($($ty:ty),+ $(,)?) => {$(
        impl $crate::services::UserFacing for $ty {
            fn user_message(&self) -> Option<String> {
                (!matches!(self, Self::Unexpected(_)))
                    .then(|| $crate::domain::as_sentence(&self.to_string()))
            }
        }
    )+};
    (and_database: $($ty:ty),+ $(,)?) => {$(
        user_facing!($ty);

        impl From<sqlx::Error> for $ty {
            fn from(err: sqlx::Error) -> Self {
                Self::Unexpected(anyhow::Error::new(err).context("database"))
            }
        }
    )+};
}

user_facing!(
    checkout::CheckoutError,
    payments::AssignError,
    members::MemberError
);
user_facing!(
    and_database: account::NoteError,
    account_change::BulkFlagError,
    joining::JoinError,
    trials::TrialError,
    proofs::ProofError,
    access::ReinviteError,
    plex_admin::AdminError,
    settings::SettingError,
    sign_in::SignInError,
    import::ImportError,
);

impl UserFacing for crate::domain::DiscordIdError {
    fn user_message(&self) -> Option<String> {
        Some(crate::domain::as_sentence(&self.to_string()))
    }
}
