//! SQL for running an installation: which migrations the database has, and a consistent copy of
//! an SQLite database taken while Usher writes to it.
//!
//! Rule it keeps: nothing here changes the installation's data; a snapshot is one read
//! transaction (`VACUUM INTO`), so it holds every transaction committed before it and none after.

use std::path::Path;

use anyhow::Context as _;

use crate::store::Db;

/// The database's kind, as a backup manifest names it.
pub fn backend_name(db: &Db) -> &'static str {
    match db {
        Db::Sqlite(_) => "sqlite",
        Db::Postgres(_) => "postgres",
    }
}

/// The migration versions this build of Usher ships for the database's kind.
pub fn known_migrations(db: &Db) -> Vec<i64> {
    let migrator = match db {
        Db::Sqlite(_) => sqlx::migrate!("migrations/sqlite"),
        Db::Postgres(_) => sqlx::migrate!("migrations/postgres"),
    };
    migrator.iter().map(|m| m.version).collect()
}

/// The migration versions applied to the database (none when it was never migrated).
pub async fn applied_migrations(db: &Db) -> Result<Vec<i64>, sqlx::Error> {
    let exists_sql = match db {
        Db::Sqlite(_) => {
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
        }
        Db::Postgres(_) => {
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = '_sqlx_migrations' AND table_schema = current_schema()"
        }
    };
    let exists: i64 = crate::on_db!(db, |pool| sqlx::query_scalar(exists_sql)
        .fetch_one(pool)
        .await)?;
    if exists == 0 {
        return Ok(Vec::new());
    }
    crate::on_db!(db, |pool| sqlx::query_scalar(
        "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version"
    )
    .fetch_all(pool)
    .await)
}

/// Writes a consistent copy of the SQLite database to `to` (which must not exist) while others
/// keep writing. Fails on PostgreSQL, whose backups are `pg_dump`'s job.
pub async fn sqlite_snapshot(db: &Db, to: &Path) -> anyhow::Result<()> {
    let Db::Sqlite(pool) = db else {
        anyhow::bail!("only an SQLite database can be copied by Usher; use pg_dump for PostgreSQL");
    };
    let target = to
        .to_str()
        .context("the backup's temporary path is not valid UTF-8")?;
    sqlx::query("VACUUM INTO $1")
        .bind(target)
        .execute(pool)
        .await
        .with_context(|| format!("copying the database into {}", to.display()))?;
    Ok(())
}
