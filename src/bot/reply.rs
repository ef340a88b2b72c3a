//! How failures reach people: a refusal or a service's user-facing error is shown as it is; any
//! other error becomes "Something went wrong (ref XXXX)" with the cause logged under that ref.

use crate::domain::as_sentence;
use crate::services::account::NoteError;
use crate::services::account_change::{BulkFlagError, ChangeError};
use crate::services::checkout::CheckoutError;
use crate::services::payments::AssignError;
use crate::services::plex_admin::AdminError;

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

/// The message for the user when `error` is meant for them; `None` for unexpected failures.
pub fn user_message(error: &anyhow::Error) -> Option<String> {
    if let Some(refusal) = error.downcast_ref::<Refusal>() {
        return Some(as_sentence(&refusal.to_string()));
    }
    if let Some(err) = error.downcast_ref::<ChangeError>() {
        return (!matches!(err, ChangeError::Unexpected(_))).then(|| as_sentence(&err.to_string()));
    }
    if let Some(err) = error.downcast_ref::<BulkFlagError>() {
        return (!matches!(err, BulkFlagError::Unexpected(_)))
            .then(|| as_sentence(&err.to_string()));
    }
    if let Some(err) = error.downcast_ref::<AdminError>() {
        return (!matches!(err, AdminError::Unexpected(_))).then(|| as_sentence(&err.to_string()));
    }
    if let Some(err) = error.downcast_ref::<NoteError>() {
        return (!matches!(err, NoteError::Unexpected(_))).then(|| as_sentence(&err.to_string()));
    }
    if let Some(err) = error.downcast_ref::<CheckoutError>() {
        return (!matches!(err, CheckoutError::Unexpected(_)))
            .then(|| as_sentence(&err.to_string()));
    }
    if let Some(err) = error.downcast_ref::<AssignError>() {
        return (!matches!(err, AssignError::Unexpected(_))).then(|| as_sentence(&err.to_string()));
    }
    if let Some(err) = error.downcast_ref::<crate::domain::DiscordIdError>() {
        return Some(as_sentence(&err.to_string()));
    }
    None
}

/// What to tell the user about `error`: its message, or an apology with a reference whose cause
/// goes to the log.
pub fn reply_failure(error: &anyhow::Error) -> String {
    user_message(error).unwrap_or_else(|| {
        let reference = short_ref();
        tracing::error!(
            reference,
            error = format!("{error:#}"),
            "interaction failed"
        );
        format!("Something went wrong (ref {reference}). The admins can look it up.")
    })
}

/// A short random reference that ties a user-facing apology to a log line.
pub fn short_ref() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_uppercase()
}
