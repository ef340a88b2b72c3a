//! Local fakes of the external services (Discord, plex.tv and Plex servers, Stripe, PayPal,
//! Plisio, an SMTP relay), for the integration tests and benchmarks only.
//!
//! Owns in-process HTTP servers that speak the real wire formats, keep state and count calls.
//! Rule kept: a fake is never looser than the service it stands in for; compiled only with the
//! `fakes` feature, never in a release build.

pub mod discord;
pub mod paypal;
pub mod plex;
pub mod plisio;
pub mod smtp;
pub mod stripe;

mod ids;
