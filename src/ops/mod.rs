//! Running an installation from a terminal: setting it up before the bot runs ([`setup`]),
//! checking it against the world ([`doctor`]), backing it up and restoring it ([`backup`]), and
//! what the process logs ([`logging`]). The CLI (`src/main.rs`) parses; these render.
//!
//! Rule kept: like every door, these call services and integrations' read-only checks, never SQL
//! of their own (backups go through `store::ops`); secrets are read from files or standard input,
//! never from the command line, and never printed.

pub mod backup;
pub mod logging;
pub mod setup;
