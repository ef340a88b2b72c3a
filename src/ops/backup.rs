//! `usher backup FILE` and `usher restore FILE --data-dir DIR`: one gzip-compressed tar archive
//! holding a manifest, a consistent copy of the SQLite database and the secret key.
//!
//! Rules it keeps: the copy is taken while Usher runs, in one read transaction (`VACUUM INTO`), so
//! it holds whole transactions only; with PostgreSQL the database is `pg_dump`'s job and the
//! archive holds the key alone; an archive is written under a temporary name with mode 0600 and
//! renamed when complete (it holds the key); restore writes only into a new or empty folder,
//! checks every file against the manifest's SHA-256, and leaves the folder empty when anything
//! is wrong.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::config::Settings;
use crate::store::{Db, ops};

/// The manifest's `format`: bumped when the archive's layout changes.
pub const FORMAT: &str = "usher-backup/1";
/// The manifest's name in the archive (always its first entry).
pub const MANIFEST: &str = "manifest.json";
/// The SQLite database's name, in the archive and in the data folder.
pub const DATABASE: &str = "usher.db";
/// The secret key's name, in the archive and in the data folder.
pub const KEY: &str = "secret.key";

/// What an archive holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The Usher version that wrote it.
    pub usher_version: String,
    /// When the copy was taken (RFC 3339).
    pub created_at: String,
    /// `sqlite` or `postgres` (then the database is not in the archive).
    pub database: String,
    /// The migrations the database had.
    pub migrations: Vec<i64>,
    /// The files after the manifest, in order.
    pub files: Vec<ManifestFile>,
}

/// One file of an archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Its name, in the archive and in the data folder.
    pub name: String,
    /// Its size.
    pub bytes: u64,
    /// Lower-case hex SHA-256 of its content.
    pub sha256: String,
}

/// Backs the installation `settings` describe up into `file` (which must not exist). Returns
/// what to tell the owner.
pub async fn backup(settings: &Settings, file: &Path) -> anyhow::Result<String> {
    anyhow::ensure!(
        !file.exists(),
        "{} exists already: choose a new name (nothing was written)",
        file.display()
    );
    let key = secret_key_text(settings)?;
    let db = Db::connect(settings).await?;
    let result = write_archive(&db, &key, file).await;
    db.close().await;
    let manifest = result?;
    Ok(if manifest.database == "sqlite" {
        let size = manifest
            .files
            .iter()
            .find(|f| f.name == DATABASE)
            .map_or(0, |f| f.bytes);
        format!(
            "Backed up the SQLite database ({size} bytes, {} migrations) and the secret key to {}. Keep it private: it holds the key that opens the stored Plex tokens.\n",
            manifest.migrations.len(),
            file.display()
        )
    } else {
        format!(
            "The database is PostgreSQL: back it up with pg_dump (e.g. `pg_dump --format=custom --file usher.dump <database>`), which Usher leaves to PostgreSQL's own tools. Saved the secret key alone to {}: keep it with the dump, the stored Plex tokens cannot be read without it.\n",
            file.display()
        )
    })
}

/// The key as its file holds it: the configured `secret_key`, or `data_dir/secret.key`.
fn secret_key_text(settings: &Settings) -> anyhow::Result<String> {
    if let Some(key) = &settings.secret_key {
        return Ok(format!("{}\n", key.expose_secret().trim()));
    }
    let path = settings.data_dir.join(KEY);
    std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading the secret key {} (start Usher once to create it, or set secret_key)",
            path.display()
        )
    })
}

async fn write_archive(db: &Db, key: &str, file: &Path) -> anyhow::Result<Manifest> {
    let partial = sibling(file, "partial");
    let snapshot = sibling(file, "db-partial");
    let result = async {
        let mut contents: Vec<(String, Source)> = Vec::new();
        if matches!(db, Db::Sqlite(_)) {
            ops::sqlite_snapshot(db, &snapshot).await?;
            contents.push((DATABASE.into(), Source::File(snapshot.clone())));
        }
        contents.push((KEY.into(), Source::Bytes(key.as_bytes().to_vec())));
        let manifest = Manifest {
            format: FORMAT.into(),
            usher_version: env!("CARGO_PKG_VERSION").into(),
            created_at: chrono::Utc::now().to_rfc3339(),
            database: ops::backend_name(db).into(),
            migrations: ops::applied_migrations(db).await?,
            files: contents
                .iter()
                .map(|(name, source)| source.describe(name))
                .collect::<anyhow::Result<_>>()?,
        };
        let out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .with_context(|| format!("creating {}", partial.display()))?;
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
            out,
            flate2::Compression::default(),
        ));
        append(&mut tar, MANIFEST, &serde_json::to_vec_pretty(&manifest)?)?;
        for (name, source) in &contents {
            match source {
                Source::Bytes(bytes) => append(&mut tar, name, bytes)?,
                Source::File(path) => {
                    let mut header = header(std::fs::metadata(path)?.len());
                    tar.append_data(&mut header, name, File::open(path)?)?;
                }
            }
        }
        let out = tar.into_inner()?.finish()?;
        out.sync_all()?;
        std::fs::rename(&partial, file)
            .with_context(|| format!("naming the archive {}", file.display()))?;
        Ok(manifest)
    }
    .await;
    let _ = std::fs::remove_file(&snapshot);
    let _ = std::fs::remove_file(&partial);
    result
}

/// A file to put in the archive: in memory, or on disk.
enum Source {
    Bytes(Vec<u8>),
    File(PathBuf),
}

impl Source {
    fn describe(&self, name: &str) -> anyhow::Result<ManifestFile> {
        let (bytes, sha256) = match self {
            Self::Bytes(bytes) => (bytes.len() as u64, hex::encode(Sha256::digest(bytes))),
            Self::File(path) => hash_file(path)?,
        };
        Ok(ManifestFile {
            name: name.into(),
            bytes,
            sha256,
        })
    }
}

fn hash_file(path: &Path) -> anyhow::Result<(u64, String)> {
    let mut file = File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut hasher = Sha256::new();
    let bytes = std::io::copy(&mut file, &mut hasher)?;
    Ok((bytes, hex::encode(hasher.finalize())))
}

fn header(size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o600);
    header.set_mtime(u64::try_from(chrono::Utc::now().timestamp()).unwrap_or_default());
    header.set_cksum();
    header
}

fn append<W: Write>(tar: &mut tar::Builder<W>, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let mut header = header(bytes.len() as u64);
    tar.append_data(&mut header, name, bytes)?;
    Ok(())
}

fn sibling(file: &Path, suffix: &str) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{suffix}"));
    file.with_file_name(name)
}

/// Restores the archive `file` into `data_dir`, which must not exist or be empty. Returns what to
/// tell the owner.
pub fn restore(file: &Path, data_dir: &Path) -> anyhow::Result<String> {
    if data_dir.exists() {
        let mut entries = std::fs::read_dir(data_dir)
            .with_context(|| format!("reading {}", data_dir.display()))?;
        anyhow::ensure!(
            entries.next().is_none(),
            "{} is not empty: restore into a new or empty folder (nothing was changed)",
            data_dir.display()
        );
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))?;
    let result = unpack(file, data_dir);
    if result.is_err() {
        for name in [DATABASE, KEY] {
            let _ = std::fs::remove_file(data_dir.join(name));
        }
    }
    let manifest = result?;
    let start = format!(
        "start Usher with data_dir = \"{}\" (or USHER_DATA_DIR)",
        data_dir.display()
    );
    Ok(if manifest.database == "sqlite" {
        format!(
            "Restored the SQLite database and the secret key of {} into {}: {start}, without database.url.\n",
            manifest.created_at,
            data_dir.display()
        )
    } else {
        format!(
            "Restored the secret key of {} into {}. The database was PostgreSQL: restore your pg_dump into it (pg_restore), then {start} and database.url pointing at it.\n",
            manifest.created_at,
            data_dir.display()
        )
    })
}

fn unpack(file: &Path, data_dir: &Path) -> anyhow::Result<Manifest> {
    let archive = File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    let mut entries = tar
        .entries()
        .with_context(|| format!("{} is not an Usher backup", file.display()))?;
    let not_a_backup = || anyhow::anyhow!("{} is not an Usher backup", file.display());
    let mut first = entries
        .next()
        .and_then(Result::ok)
        .ok_or_else(not_a_backup)?;
    anyhow::ensure!(
        first.path().is_ok_and(|p| p.as_os_str() == MANIFEST),
        not_a_backup()
    );
    let mut text = Vec::new();
    first.read_to_end(&mut text).map_err(|_| not_a_backup())?;
    let manifest: Manifest = serde_json::from_slice(&text).map_err(|_| not_a_backup())?;
    anyhow::ensure!(
        manifest.format == FORMAT,
        "{} is a backup in the format {}, which this version of Usher does not read",
        file.display(),
        manifest.format
    );
    let mut restored = Vec::new();
    for entry in entries {
        let mut entry = entry?;
        let name = entry.path()?.to_string_lossy().into_owned();
        let expected = manifest
            .files
            .iter()
            .find(|f| f.name == name && !restored.contains(&name))
            .with_context(|| {
                format!("the archive holds `{name}`, which its manifest does not list")
            })?;
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(data_dir.join(&expected.name))?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0; 64 * 1024];
        let mut bytes = 0u64;
        loop {
            let n = entry.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            out.write_all(&buffer[..n])?;
            bytes += n as u64;
        }
        out.sync_all()?;
        anyhow::ensure!(
            bytes == expected.bytes && hex::encode(hasher.finalize()) == expected.sha256,
            "`{name}` in the archive is damaged (its size or SHA-256 differs from the manifest)"
        );
        restored.push(name);
    }
    for wanted in &manifest.files {
        anyhow::ensure!(
            restored.contains(&wanted.name),
            "the archive lacks `{}`, which its manifest lists",
            wanted.name
        );
    }
    Ok(manifest)
}
