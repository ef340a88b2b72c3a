//! Plex integration: a plex.tv account API client and a Plex Media Server client.
//!
//! Owns every HTTP call Usher makes to plex.tv and to Plex Media Servers, the wire shapes of those
//! calls and the classification of their failures for the job layer ([`PlexError::retry`]). Rule
//! kept: tokens are `SecretString`s from the caller to the `X-Plex-Token` header and appear in no
//! URL, log line, `Debug` output or error message.

mod error;
mod http;
mod model;
mod pms;
mod tv;

use std::time::Duration;

use url::Url;

pub use error::{PlexError, Retry};
pub use model::{
    Connection, Invite, OwnedServer, PinCheck, PlexAccount, PlexFriend, PlexPin, PlexPinId,
    PlexSection, PlexSectionId, PmsIdentity, PmsSection, SectionKey, ServerLibraries,
    ShareSettings, ShareState, ShareUpdate, SharedServer, SharedServerId, Validation,
};
pub use pms::PmsClient;
pub use tv::PlexTvClient;

/// How this Usher installation talks to plex.tv.
#[derive(Debug, Clone)]
pub struct PlexConfig {
    /// `https://plex.tv/` in production (`clients.plex.tv` serves the same routes).
    pub base_url: Url,
    /// A stable UUID per installation (`X-Plex-Client-Identifier`).
    pub client_identifier: String,
    /// `X-Plex-Product`.
    pub product: String,
    /// `X-Plex-Version`.
    pub version: String,
    /// Per-request timeout, connection included.
    pub timeout: Duration,
}
