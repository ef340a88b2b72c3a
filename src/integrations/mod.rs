//! Clients for the external services Usher talks to, one folder per service.
//!
//! Owns the wire contracts; nothing here knows about Usher's database or jobs. Rule kept: every
//! base URL is configurable so tests can point the clients at local fakes.

pub mod discord;
pub mod email;
pub mod payments;
pub mod plex;
