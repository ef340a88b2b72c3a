//! Test harness: [`TestApp::spawn`] builds the real [`App`] on a temporary SQLite file or a fresh
//! PostgreSQL database, with a manual clock and the web door on a random port.
//!
//! PostgreSQL comes from `USHER_TEST_DATABASE_URL` (default: the local server,
//! `postgres://postgres@127.0.0.1:5432/postgres`). When it cannot be reached the test fails with
//! that message: tests never skip a backend.

pub mod bin;
pub mod load;
pub mod world;

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::Connection as _;
use tokio_util::sync::CancellationToken;
use usher::App;
use usher::clock::ManualClock;
use usher::config::Settings;
use usher::fakes::discord::FakeDiscord;
use usher::fakes::plex::FakePlex;
use usher::store::Db;

/// Generates one `#[tokio::test]` per backend for each listed `async fn name(backend: Backend)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Postgres).await;
                }
            )*
        }
    };
}

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A temporary SQLite file.
    Sqlite,
    /// A fresh database on the test PostgreSQL server.
    Postgres,
}

/// The moment every test starts at.
pub fn epoch() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
        .expect("constant")
        .to_utc()
}

/// A running Usher on a throwaway database.
pub struct TestApp {
    /// The application under test.
    pub app: App,
    /// Its clock; move it with [`ManualClock::advance`].
    pub clock: ManualClock,
    /// Where the web door listens.
    pub web_addr: SocketAddr,
    /// The fake plex.tv (and Plex Media Servers) the app talks to.
    pub plex: FakePlex,
    /// Keeps the temporary data folder alive as long as the app.
    _dir: tempfile::TempDir,
    shutdown: CancellationToken,
    pg_database: Option<String>,
}

impl TestApp {
    /// Starts an app with default test settings.
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    /// Starts an app after `tweak` adjusted the test settings.
    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let plex = FakePlex::start().await;
        let mut settings = Settings {
            data_dir: dir.path().join("data"),
            ..Settings::default()
        };
        settings.plex.base_url = plex.base_url();
        settings.jobs.poll_interval_ms = 50;
        settings.plex.requests_per_second = 1000.0;
        tweak(&mut settings);
        std::fs::create_dir_all(&settings.data_dir).expect("data dir");

        let (db, pg_database) = match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", settings.data_dir.join("usher.db").display());
                (Db::connect_url(&url, 8).await.expect("open SQLite"), None)
            }
            Backend::Postgres => {
                let (url, name) = fresh_postgres_database().await;
                (
                    Db::connect_url(&url, 8)
                        .await
                        .expect("connect to the test database"),
                    Some(name),
                )
            }
        };
        db.migrate().await.expect("migrations apply");
        let clock = ManualClock::new(epoch());
        let app = App::assemble(settings, Arc::new(clock.clone()), db)
            .await
            .expect("app assembles");

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let web_addr = listener.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        tokio::spawn(usher::web::serve(app.clone(), listener, shutdown.clone()));
        Self {
            app,
            clock,
            web_addr,
            plex,
            _dir: dir,
            shutdown,
            pg_database,
        }
    }

    /// The URL of its database, for the `usher` binary to run against the same one.
    pub fn database_url(&self) -> String {
        match &self.pg_database {
            Some(name) => {
                let mut url = url::Url::parse(&admin_url()).expect("admin URL parses");
                url.set_path(name);
                url.to_string()
            }
            None => format!(
                "sqlite://{}",
                self.app.settings.data_dir.join("usher.db").display()
            ),
        }
    }

    /// Base URL of the web door.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.web_addr)
    }

    /// Starts the real bot (serenity + poise) against `discord`, until the app is dropped.
    /// Readiness: [`FakeDiscord::wait_registered`].
    pub fn start_bot(&self) -> tokio::task::JoinHandle<anyhow::Result<()>> {
        let token = self
            .app
            .settings
            .discord
            .token
            .clone()
            .expect("start the app with TestApp::spawn_with_discord");
        tokio::spawn(usher::bot::run(
            self.app.clone(),
            token,
            self.shutdown.clone(),
        ))
    }

    /// Starts an app whose Discord (bot and DMs) is `discord`, after `tweak`.
    pub async fn spawn_with_discord(
        backend: Backend,
        discord: &FakeDiscord,
        tweak: impl FnOnce(&mut Settings),
    ) -> Self {
        let (token, base) = (discord.token(), discord.api_base());
        Self::spawn_with(backend, move |s| {
            s.discord.token = Some(token.into());
            s.discord.api_base_url = Some(base);
            tweak(s);
        })
        .await
    }

    /// Runs every job until none is queued, moving the clock to each next due time (a retry's
    /// backoff, a wait's Retry-After) as it goes; panics after `rounds` rounds.
    pub async fn drain_jobs(&self, rounds: usize) {
        let dispatch = usher::jobs::AppDispatch::new(self.app.clone());
        for _ in 0..rounds {
            self.app.queue.run_due(&dispatch).await.unwrap();
            let Some(due) = usher::store::jobs::find_next_due(&self.app.db)
                .await
                .unwrap()
            else {
                return;
            };
            let now = usher::clock::Clock::now(&self.clock);
            self.clock
                .advance((due - now).max(chrono::Duration::seconds(1)));
        }
        panic!("jobs still queued after {rounds} rounds");
    }

    /// Runs the job workers in the background until the app is dropped.
    pub fn start_workers(&self) {
        let dispatch: Arc<dyn usher::jobs::Dispatch> =
            Arc::new(usher::jobs::AppDispatch::new(self.app.clone()));
        let (queue, shutdown) = (self.app.queue.clone(), self.shutdown.clone());
        tokio::spawn(async move { queue.run_workers(dispatch, shutdown).await });
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(name) = self.pg_database.take() {
            drop_postgres_database(name);
        }
    }
}

/// Drops a test database made by [`fresh_postgres_database`]; callable from `Drop`.
pub fn drop_postgres_database(name: String) {
    // Drop runs outside any runtime guarantee: use a thread with its own small runtime.
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url()).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut conn)
                    .await;
            }
        });
    })
    .join();
}

/// The PostgreSQL server tests use.
pub fn admin_url() -> String {
    std::env::var("USHER_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// Creates an empty database for one test; returns its URL and name.
pub async fn fresh_postgres_database() -> (String, String) {
    let admin = admin_url();
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|err| {
        panic!(
            "PostgreSQL tests need a server at {admin} (set USHER_TEST_DATABASE_URL to use another): {err}"
        )
    });
    let name = format!("usher_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let mut url = url::Url::parse(&admin).expect("admin URL parses");
    url.set_path(&name);
    (url.to_string(), name)
}
