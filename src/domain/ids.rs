//! Row id newtypes. Each entity's primary key gets its own type so a server id can never be passed
//! where a plan id is expected. They wrap the database's `BIGINT` keys and carry no other meaning.

macro_rules! id_type {
    ($($(#[$meta:meta])* $name:ident),* $(,)?) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(i64);

        impl $name {
            /// Wraps a key read from the database.
            pub const fn new(raw: i64) -> Self { Self(raw) }
            /// The key as stored.
            pub const fn get(self) -> i64 { self.0 }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { self.0.fmt(f) }
        }

        /// Reads an id as a person or a signed payload writes it: a positive decimal number.
        impl std::str::FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.trim().parse::<i64>().ok().filter(|id| *id > 0).map(Self).ok_or(ParseIdError)
            }
        }
    )*};
}

/// Text that is not a positive whole number, where an id was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an id (a positive whole number)")]
pub struct ParseIdError;

id_type!(
    /// A subscriber (one Discord user).
    SubscriberId,
    /// A Plex identity (email/username + plex.tv user id) ever linked to a subscriber.
    PlexIdentityId,
    /// An owner Plex account (the admin's login that owns servers).
    OwnerAccountId,
    /// A Plex Media Server.
    ServerId,
    /// A library on a server.
    LibraryId,
    /// A library group (Standard, 4K, ...).
    LibraryGroupId,
    /// A plan subscribers pay for.
    PlanId,
    /// A recorded payment (paid interval).
    PaymentId,
    /// A share of a server with a subscriber.
    ShareId,
    /// A request to prove a Plex account (code or sign-in).
    ProofId,
    /// A durable job.
    JobId,
);
