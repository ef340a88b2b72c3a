//! The values the Plex clients hand back and take in.
//!
//! Owns the typed view of plex.tv accounts, servers, library sections and shares. Rule kept: a
//! plex.tv-global library section id ([`PlexSectionId`], what every share call takes) and a
//! server-local section key ([`SectionKey`], what a Plex Media Server lists) are different types,
//! so one can never be sent where the other belongs. Server tokens are `SecretString`s.

use std::fmt;

use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize};
use url::Url;

/// The plex.tv-global id of a library section: the only id share calls accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PlexSectionId(pub u64);

impl fmt::Display for PlexSectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The server-local key of a library section (`key` on a Plex Media Server). Never sent to plex.tv.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SectionKey(pub String);

impl fmt::Display for SectionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The id of a share (plex.tv's `shared_server` id), used to update or delete it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SharedServerId(pub u64);

impl fmt::Display for SharedServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The id of a plex.tv sign-in PIN: what [`PlexTvClient::check_pin`](super::PlexTvClient::check_pin)
/// polls. Only the installation that created the PIN (its client identifier) can read it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PlexPinId(pub u64);

impl fmt::Display for PlexPinId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A sign-in PIN plex.tv issued: the person opens
/// [`PlexTvClient::sign_in_url`](super::PlexTvClient::sign_in_url), signs in to Plex and approves
/// it, and the next [`check_pin`](super::PlexTvClient::check_pin) yields their token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlexPin {
    /// The id to poll.
    pub id: PlexPinId,
    /// The code the sign-in page approves (it travels in the link; not a credential by itself).
    pub code: String,
    /// When plex.tv forgets the PIN (`expiresAt`), when it said.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Where a sign-in PIN stands.
#[derive(Debug, Clone)]
pub enum PinCheck {
    /// Not approved yet: ask again in a moment.
    Waiting,
    /// Approved: the account's token (test it with
    /// [`PlexTvClient::account`](super::PlexTvClient::account) to learn whose it is).
    Approved(SecretString),
    /// plex.tv no longer knows the PIN (it expired): start over with a new one.
    Expired,
}

/// The plex.tv account a token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlexAccount {
    /// The plex.tv account id.
    pub id: u64,
    /// The account's uuid.
    pub uuid: String,
    /// The account's username.
    pub username: String,
    /// The account's email.
    pub email: String,
    /// Whether a Plex Pass subscription is active.
    pub plex_pass: bool,
}

/// The answer to "is this email or username a plex.tv account?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    /// plex.tv knows the account.
    Valid,
    /// plex.tv says there is no such account.
    NotAnAccount,
    /// plex.tv retired the check (410): attempt the share and read its outcome instead.
    ValidationUnavailable,
}

/// A Plex Media Server the owner account owns.
#[derive(Debug, Clone)]
pub struct OwnedServer {
    /// The server's machine identifier (`clientIdentifier` on plex.tv).
    pub machine_identifier: String,
    /// The server's name.
    pub name: String,
    /// The server's own token, for calls to the server itself.
    pub access_token: Option<SecretString>,
    /// Ways to reach the server.
    pub connections: Vec<Connection>,
}

/// One way to reach a Plex Media Server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// The base URL to call.
    pub uri: Url,
    /// Whether the address is on the server's LAN.
    pub local: bool,
    /// Whether the connection goes through Plex's relay.
    pub relay: bool,
}

/// A server as plex.tv knows it, with its library sections' global ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLibraries {
    /// The server's machine identifier.
    pub machine_identifier: String,
    /// The server's name.
    pub name: String,
    /// Its library sections.
    pub sections: Vec<PlexSection>,
}

/// One library section as plex.tv lists it: both ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlexSection {
    /// The plex.tv-global id, for share calls.
    pub id: PlexSectionId,
    /// The server-local key.
    pub key: SectionKey,
    /// The section's title.
    pub title: String,
    /// `movie`, `show`, `artist` or `photo`.
    pub kind: String,
}

/// What a shared user may do besides watching; sent in full on every invite and update.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[allow(clippy::struct_excessive_bools)] // the wire object is a set of independent flags
pub struct ShareSettings {
    /// Downloads (sync) allowed.
    #[serde(deserialize_with = "lenient_bool")]
    pub allow_sync: bool,
    /// Channels allowed.
    #[serde(deserialize_with = "lenient_bool")]
    pub allow_channels: bool,
    /// Camera upload allowed.
    #[serde(deserialize_with = "lenient_bool")]
    pub allow_camera_upload: bool,
    /// Subtitle management allowed.
    #[serde(deserialize_with = "lenient_bool")]
    pub allow_subtitle_admin: bool,
    /// Live TV tuner access level (0 = none).
    #[serde(deserialize_with = "lenient_int")]
    pub allow_tuners: u8,
    /// Movie filter expression.
    #[serde(deserialize_with = "null_as_empty")]
    pub filter_movies: String,
    /// Television filter expression.
    #[serde(deserialize_with = "null_as_empty")]
    pub filter_television: String,
    /// Music filter expression.
    #[serde(deserialize_with = "null_as_empty")]
    pub filter_music: String,
    /// Photo filter expression (`null` when unset).
    pub filter_photos: Option<String>,
    /// Filter over everything (`null` when unset).
    pub filter_all: Option<String>,
}

/// Whether the invited user has accepted a share yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareState {
    /// Invited, not yet accepted.
    Pending,
    /// Accepted: the user sees the server.
    Accepted,
}

/// Someone the owner account holds a seat for, as `GET /api/users` lists them: a friend (with or
/// without a share) or a Plex Home member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlexFriend {
    /// The plex.tv account id.
    pub id: u64,
    /// The username (a managed user's is its title).
    pub username: String,
    /// The email, when the account has one (managed users have none).
    pub email: Option<String>,
    /// A member of the owner's Plex Home.
    pub home: bool,
    /// A managed (restricted) user.
    pub restricted: bool,
}

/// A share of one server with one user, pending or accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedServer {
    /// The share's id, for updates and deletes.
    pub id: SharedServerId,
    /// The shared server's machine identifier.
    pub machine_identifier: String,
    /// The invited plex.tv account id, when plex.tv reports it.
    pub invited_id: Option<u64>,
    /// The email the invite went to, when plex.tv reports it.
    pub invited_email: Option<String>,
    /// The invited account's username, when plex.tv reports it.
    pub invited_username: Option<String>,
    /// Pending or accepted.
    pub state: ShareState,
    /// The shared sections' global ids.
    pub library_ids: Vec<PlexSectionId>,
    /// Whether every library (including future ones) is shared.
    pub all_libraries: bool,
    /// The share's current settings, to carry over on update.
    pub settings: ShareSettings,
    /// plex.tv still lists it, but the user left (`leftAt`) or it was deleted (`deletedAt`): it
    /// gives no access and holds no seat.
    pub left: bool,
}

/// A new share to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    /// The server to share.
    pub machine_identifier: String,
    /// The invitee's email or plex.tv username.
    pub invited: String,
    /// The sections to share, as plex.tv-global ids.
    pub library_ids: Vec<PlexSectionId>,
    /// The invitee's settings.
    pub settings: ShareSettings,
}

/// The new library list and settings of an existing share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareUpdate {
    /// The sections to share from now on, as plex.tv-global ids.
    pub library_ids: Vec<PlexSectionId>,
    /// The full settings (carry over the current ones from the listing).
    pub settings: ShareSettings,
}

/// A Plex Media Server's identity (`GET /identity`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PmsIdentity {
    /// The server's machine identifier.
    pub machine_identifier: String,
    /// The server's version string.
    pub version: String,
}

/// A library section as the server itself lists it (`GET /library/sections`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PmsSection {
    /// The server-local key.
    pub key: SectionKey,
    /// The section's title.
    pub title: String,
    /// `movie`, `show`, `artist` or `photo`.
    pub kind: String,
    /// The section's uuid.
    pub uuid: String,
}

fn lenient_bool<'de, D: Deserializer<'de>>(de: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Int(i64),
        Text(String),
    }
    Ok(match Option::<Flag>::deserialize(de)? {
        None => false,
        Some(Flag::Bool(b)) => b,
        Some(Flag::Int(i)) => i != 0,
        Some(Flag::Text(s)) => matches!(s.as_str(), "1" | "true"),
    })
}

fn lenient_int<'de, D: Deserializer<'de>>(de: D) -> Result<u8, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Level {
        Int(u8),
        Bool(bool),
        Text(String),
    }
    Ok(match Option::<Level>::deserialize(de)? {
        None => 0,
        Some(Level::Int(i)) => i,
        Some(Level::Bool(b)) => u8::from(b),
        Some(Level::Text(s)) => s.trim().parse().map_err(serde::de::Error::custom)?,
    })
}

fn null_as_empty<'de, D: Deserializer<'de>>(de: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(de)?.unwrap_or_default())
}
