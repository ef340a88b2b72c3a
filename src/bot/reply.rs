//! How failures reach people through Discord, in one place: a refusal or a service's user-facing
//! error ([`UserFacing`]) is shown as it is; any other error becomes "Something went wrong (ref
//! XXXX)" with the cause logged under that ref.

use crate::domain::as_sentence;
use crate::services::UserFacing;

/// A door-level "no" with its reason, shown to the user as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(String);

impl Refusal {
    /// A refusal saying `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl UserFacing for Refusal {
    fn user_message(&self) -> Option<String> {
        Some(as_sentence(&self.0))
    }
}

/// What a command or button handler fails with: decided once, when the error is raised with `?`,
/// by the error's [`UserFacing`] answer.
#[derive(Debug)]
pub enum Error {
    /// A message for the person.
    User(String),
    /// Something went wrong; never shown as it is.
    Unexpected(anyhow::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::User(message) => f.write_str(message),
            Self::Unexpected(err) => write!(f, "{err:#}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::User(_) => None,
            Self::Unexpected(err) => Some(err.as_ref()),
        }
    }
}

impl<E: UserFacing> From<E> for Error {
    fn from(err: E) -> Self {
        match err.user_message() {
            Some(message) => Self::User(message),
            None => Self::Unexpected(anyhow::Error::new(err)),
        }
    }
}

impl From<anyhow::Error> for Error {
    fn from(err: anyhow::Error) -> Self {
        Self::Unexpected(err)
    }
}

impl From<poise::serenity_prelude::Error> for Error {
    fn from(err: poise::serenity_prelude::Error) -> Self {
        Self::Unexpected(anyhow::Error::new(err).context("Discord"))
    }
}

impl Error {
    /// The message for the user when the error is meant for them; `None` for unexpected failures.
    pub fn user_message(&self) -> Option<&str> {
        match self {
            Self::User(message) => Some(message),
            Self::Unexpected(_) => None,
        }
    }
}

/// What to tell the user about `error`: its message, or an apology with a reference whose cause
/// goes to the log.
pub fn reply_failure(error: &Error) -> String {
    match error {
        Error::User(message) => message.clone(),
        Error::Unexpected(err) => {
            let reference = short_ref();
            tracing::error!(reference, error = format!("{err:#}"), "interaction failed");
            format!("Something went wrong (ref {reference}). The admins can look it up.")
        }
    }
}

/// A short random reference that ties a user-facing apology to a log line.
pub fn short_ref() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::settings::SettingError;

    #[test]
    fn a_service_refusal_reaches_the_person_and_an_unexpected_failure_does_not() {
        let refused = Error::from(SettingError::BadGraceDays(400));
        assert_eq!(
            refused.user_message(),
            Some(
                "The days a share is kept after access ends must be between 0 and 365; 400 is not."
            )
        );
        let broken = Error::from(SettingError::Unexpected(anyhow::anyhow!("disk on fire")));
        assert_eq!(broken.user_message(), None);
        let shown = reply_failure(&broken);
        assert!(shown.starts_with("Something went wrong (ref "), "{shown}");
        assert!(!shown.contains("disk"), "{shown}");
        assert_eq!(
            Error::from(Refusal::new("not now")).user_message(),
            Some("Not now.")
        );
    }
}
