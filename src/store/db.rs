//! The database handle: typed pools for SQLite (embedded default) or PostgreSQL, chosen by the
//! URL scheme, and [`Tx`], the transaction every store function takes.
//!
//! Rule it keeps: SQL is written once where both backends accept it (`$1` placeholders,
//! `ON CONFLICT`, `RETURNING`), run through [`on_tx!`](crate::on_tx), and split only where they
//! differ. SQLite write transactions ([`Db::begin`]) start with `BEGIN IMMEDIATE`, so two writers queue on the busy
//! timeout instead of failing on a lock upgrade.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool, Transaction};

use crate::config::Settings;

/// A pool of connections to the one database of this installation.
#[derive(Debug, Clone)]
pub enum Db {
    /// SQLite pool.
    Sqlite(SqlitePool),
    /// PostgreSQL pool.
    Postgres(PgPool),
}

/// An open transaction. Dropping it without [`Tx::commit`] rolls it back.
#[derive(Debug)]
pub enum Tx {
    /// SQLite transaction (started with `BEGIN IMMEDIATE`).
    Sqlite(Transaction<'static, Sqlite>),
    /// PostgreSQL transaction.
    Postgres(Transaction<'static, Postgres>),
}

/// Runs one sqlx expression against the connection inside a [`Tx`], whichever backend it is.
/// The body is compiled once per backend, so it must be generic SQL.
#[macro_export]
macro_rules! on_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match $tx {
            $crate::store::Tx::Sqlite(t) => {
                let $conn = &mut **t;
                $body
            }
            $crate::store::Tx::Postgres(t) => {
                let $conn = &mut **t;
                $body
            }
        }
    };
}

/// Runs one statement in a [`Tx`]: `sql!(tx, query_as(SQL), a, b => fetch_optional)` builds
/// `sqlx::query_as(SQL).bind(a).bind(b)`, runs it with `fetch_optional` (or `fetch_one`,
/// `fetch_all`, or `execute`, which answers the number of rows changed) on the transaction's
/// connection, and awaits it. The one shape nearly every store function has, written once.
#[macro_export]
macro_rules! sql {
    ($tx:expr, $kind:ident($query:expr) $(, $arg:expr)* => execute) => {
        $crate::on_tx!($tx, |c| sqlx::$kind($query)$(.bind($arg))*
            .execute(c)
            .await
            .map(|done| done.rows_affected()))
    };
    ($tx:expr, $kind:ident($query:expr) $(, $arg:expr)* => $run:ident) => {
        $crate::on_tx!($tx, |c| sqlx::$kind($query)$(.bind($arg))*.$run(c).await)
    };
}

/// Runs one sqlx expression against a [`Db`]'s pool, whichever backend it is.
#[macro_export]
macro_rules! on_db {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite(p) => {
                let $pool = p;
                $body
            }
            $crate::store::Db::Postgres(p) => {
                let $pool = p;
                $body
            }
        }
    };
}

/// How long an SQLite writer waits for the lock before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

impl Db {
    /// Connects as configured: `database.url`, or the SQLite file `data_dir/usher.db`.
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        if let Some(url) = &settings.database.url {
            return Self::connect_url(url.expose_secret(), settings.database.max_connections).await;
        }
        crate::private_fs::ensure_private_dir(&settings.data_dir)?;
        let file = settings.data_dir.join("usher.db");
        // SQLite gives its -wal and -shm files the database file's permissions.
        crate::private_fs::ensure_private_file(&file, true)?;
        for side in ["usher.db-wal", "usher.db-shm"] {
            crate::private_fs::ensure_private_file(&settings.data_dir.join(side), false)?;
        }
        let options = sqlite_options(SqliteConnectOptions::new()).filename(file);
        Self::sqlite(options, settings.database.max_connections).await
    }

    /// Connects to the database a URL names (`sqlite:` or `postgres://`).
    pub async fn connect_url(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        if url.starts_with("sqlite:") {
            let options = sqlite_options(
                SqliteConnectOptions::from_str(url).context("parsing the SQLite database URL")?,
            );
            Self::sqlite(options, max_connections).await
        } else {
            let options =
                PgConnectOptions::from_str(url).context("parsing the PostgreSQL database URL")?;
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .context("connecting to PostgreSQL")?;
            Ok(Self::Postgres(pool))
        }
    }

    async fn sqlite(options: SqliteConnectOptions, max_connections: u32) -> anyhow::Result<Self> {
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .context("opening the SQLite database")?;
        Ok(Self::Sqlite(pool))
    }

    /// Applies the migrations of this backend that have not run yet.
    ///
    /// SQLite changes a table's constraints by rebuilding the table, which its foreign keys
    /// would refuse (or cascade!) mid-way; so, as SQLite's documented procedure for schema
    /// changes says, its migrations run on one connection with foreign keys off, every reference
    /// is checked afterwards (a broken one fails here, naming the table), and they are on again.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self {
            Self::Sqlite(pool) => {
                let mut conn = pool
                    .acquire()
                    .await
                    .context("opening the SQLite database")?;
                sqlx::query("PRAGMA foreign_keys = OFF")
                    .execute(&mut *conn)
                    .await?;
                let ran = sqlx::migrate!("migrations/sqlite")
                    .run(&mut *conn)
                    .await
                    .context("applying database migrations");
                let broken: Vec<(String,)> = sqlx::query_as("PRAGMA foreign_key_check")
                    .fetch_all(&mut *conn)
                    .await?;
                sqlx::query("PRAGMA foreign_keys = ON")
                    .execute(&mut *conn)
                    .await?;
                ran?;
                if let Some((table,)) = broken.first() {
                    anyhow::bail!(
                        "applying database migrations: {} rows break a foreign key, e.g. in table `{table}`",
                        broken.len()
                    );
                }
                Ok(())
            }
            Self::Postgres(pool) => sqlx::migrate!("migrations/postgres")
                .run(pool)
                .await
                .context("applying database migrations"),
        }
    }

    /// Starts a transaction.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Self::Sqlite(pool) => Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Self::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Starts a read-only transaction. On SQLite it is deferred, so it never takes the writer lock
    /// and never waits for (or blocks) writers; it must not write.
    pub async fn read(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Self::Sqlite(pool) => Tx::Sqlite(pool.begin().await?),
            Self::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        on_db!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(|_| ()))
    }

    /// Closes every pooled connection.
    pub async fn close(&self) {
        on_db!(self, |pool| pool.close().await);
    }
}

/// Connects as configured, applies pending migrations and closes the connection again
/// (`usher migrate`).
pub async fn migrate_configured(settings: &Settings) -> anyhow::Result<()> {
    let db = Db::connect(settings).await?;
    let result = db.migrate().await;
    db.close().await;
    result
}

/// The durability and integrity settings every SQLite connection gets: WAL journal, `NORMAL`
/// sync (durable at checkpoints, safe against corruption), foreign keys on, a busy timeout.
pub fn sqlite_options(options: SqliteConnectOptions) -> SqliteConnectOptions {
    options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
}

impl Tx {
    /// Makes every change in the transaction durable.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlite(t) => t.commit().await,
            Self::Postgres(t) => t.commit().await,
        }
    }

    /// Undoes every change in the transaction.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlite(t) => t.rollback().await,
            Self::Postgres(t) => t.rollback().await,
        }
    }
}

/// True when the error is a unique-constraint violation (a lost race or a replay).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(sqlx::error::DatabaseError::is_unique_violation)
}
