//! Plex sign-in with a PIN: start one (a link to app.plex.tv), then wait until the person
//! approves it and take the token plex.tv hands over. `usher plex-account add` signs the owner in
//! this way; what to do with the token (store an owner account, prove a subscriber's Plex
//! account) is the caller's next use case.
//!
//! Rule it keeps: the token only ever travels as a `SecretString`; the PIN's code rides in the
//! link, never in a log line.

use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use crate::app::App;
use crate::integrations::plex::{PinCheck, PlexError, PlexPin, Retry};

/// How long a sign-in is waited for when plex.tv did not say when the PIN expires.
const DEFAULT_WAIT: Duration = Duration::from_secs(30 * 60);

/// A sign-in waiting for the person to approve it.
#[derive(Debug, Clone)]
pub struct PendingSignIn {
    /// The PIN to poll.
    pub pin: PlexPin,
    /// Where the person signs in to Plex and approves it.
    pub url: Url,
}

/// Why a sign-in did not yield a token.
#[derive(Debug, thiserror::Error)]
pub enum PlexSignInError {
    /// Nobody approved the PIN before plex.tv forgot it.
    #[error("the Plex sign-in expired before it was approved; start again")]
    Expired,
    /// plex.tv is down or rate limiting.
    #[error("plex.tv is not answering right now; try again in a minute")]
    PlexUnavailable,
    /// plex.tv retired an endpoint Usher uses.
    #[error("plex.tv retired an endpoint this version of Usher uses; update Usher")]
    PlexEndpointRetired,
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<PlexError> for PlexSignInError {
    fn from(err: PlexError) -> Self {
        match err {
            PlexError::Gone { .. } => Self::PlexEndpointRetired,
            other if matches!(other.retry(), Retry::After(_)) => Self::PlexUnavailable,
            other => Self::Unexpected(anyhow::Error::new(other).context("plex.tv sign-in")),
        }
    }
}

/// Asks plex.tv for a sign-in PIN and the link that approves it; after approving, the browser
/// goes to `forward` when given.
pub async fn start(app: &App, forward: Option<&Url>) -> Result<PendingSignIn, PlexSignInError> {
    let pin = app.plex.create_pin().await?;
    let url = app.plex.sign_in_url(&pin, forward);
    Ok(PendingSignIn { pin, url })
}

/// Polls the PIN every `poll` until it is approved (the signed-in account's token) or expired.
/// Passing faults (a 5xx, a timeout) are polled through; gives up when plex.tv forgets the PIN or
/// its expiry time has passed.
pub async fn wait_for_token(
    app: &App,
    pin: &PlexPin,
    poll: Duration,
) -> Result<SecretString, PlexSignInError> {
    let deadline = pin
        .expires_at
        .and_then(|at| (at - chrono::Utc::now()).to_std().ok())
        .unwrap_or(DEFAULT_WAIT);
    let give_up = tokio::time::Instant::now() + deadline;
    loop {
        match app.plex.check_pin(pin.id).await {
            Ok(PinCheck::Approved(token)) => return Ok(token),
            Ok(PinCheck::Expired) => return Err(PlexSignInError::Expired),
            Ok(PinCheck::Waiting) => {}
            Err(err) if matches!(err.retry(), Retry::After(_)) => {
                tracing::warn!(error = %err, "polling the Plex sign-in failed for now");
            }
            Err(err) => return Err(err.into()),
        }
        if tokio::time::Instant::now() + poll > give_up {
            return Err(PlexSignInError::Expired);
        }
        tokio::time::sleep(poll).await;
    }
}
