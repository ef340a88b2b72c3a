//! Running an installation from a terminal: setting it up before the bot runs ([`setup`]),
//! checking it against the world ([`doctor`]), backing it up and restoring it ([`backup`]), and
//! what the process logs ([`logging`]). The CLI (`src/main.rs`) parses; these render.
//!
//! Rule kept: like every door, these call services and integrations' read-only checks, never SQL
//! of their own (backups go through `store::ops`); secrets are read from files or standard input,
//! never from the command line, and never printed.

pub mod backup;
pub mod doctor;
pub mod import;
pub mod logging;
pub mod members;
pub mod setup;

/// Creates the data folder when it does not exist yet, private to the user that runs Usher (mode
/// 0700: it holds the database and the secret key). An existing folder is left as it is;
/// `usher doctor` says when it is open to others.
pub fn create_data_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    crate::private_fs::ensure_private_dir(dir)
        .map_err(|e| anyhow::anyhow!("creating the data folder {}: {e:#}", dir.display()))
}
