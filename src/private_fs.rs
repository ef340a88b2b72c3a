//! Files at rest that only the user running Usher may read: the data folder (0700) and what it
//! holds — the database, the secret key, the mail outbox and its messages (0600). They hold
//! emails, sealed tokens and codes in mails.
//!
//! Rule kept: a folder or file found open to others is tightened (and the log says so); where
//! that is not allowed (not our file), the log warns and Usher goes on.

use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::Path;

use anyhow::Context as _;
use std::os::unix::fs::OpenOptionsExt as _;

/// Creates `dir` (and its parents) private to the user, or tightens an existing one.
pub fn ensure_private_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating the folder {}", dir.display()))?;
    }
    tighten(dir, 0o700);
    Ok(())
}

/// Makes an existing file private to the user (or creates it empty and private, with `create`).
pub fn ensure_private_file(file: &Path, create: bool) -> anyhow::Result<()> {
    if !file.exists() {
        if !create {
            return Ok(());
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(file)
            .with_context(|| format!("creating {}", file.display()))?;
    }
    tighten(file, 0o600);
    Ok(())
}

/// Takes group and other permissions away from `path` when it has any.
fn tighten(path: &Path, mode: u32) {
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    let current = meta.permissions().mode() & 0o777;
    if current.trailing_zeros() >= 6 {
        return;
    }
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
        Ok(()) => tracing::warn!(
            path = %path.display(),
            was = format!("{current:o}"),
            now = format!("{mode:o}"),
            "tightened the permissions of a data file others could read"
        ),
        Err(err) => tracing::warn!(
            path = %path.display(),
            mode = format!("{current:o}"),
            error = %err,
            "a data file is open to other users and could not be tightened; fix its permissions"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn new_folders_and_files_are_private_and_open_ones_are_tightened() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data/nested");
        ensure_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let db = dir.join("usher.db");
        ensure_private_file(&db, true).unwrap();
        assert_eq!(mode(&db), 0o600);

        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        ensure_private_dir(&dir).unwrap();
        ensure_private_file(&db, false).unwrap();
        assert_eq!((mode(&dir), mode(&db)), (0o700, 0o600));

        let absent = dir.join("absent");
        ensure_private_file(&absent, false).unwrap();
        assert!(!absent.exists(), "nothing is created unless asked");
    }
}
