//! [`App`]: everything a door, job or scheduler needs, built once from [`Settings`] and cloned
//! cheaply. There is no global state: tests build as many apps as they like, each on its own
//! database, clock and fakes.

use std::sync::Arc;

use anyhow::Context as _;

use crate::clock::SharedClock;
use crate::config::Settings;
use crate::jobs::Queue;
use crate::store::Db;

/// The running installation.
#[derive(Clone, Debug)]
pub struct App {
    /// Configuration, checked at load.
    pub settings: Arc<Settings>,
    /// The database.
    pub db: Db,
    /// The clock every service reads.
    pub clock: SharedClock,
    /// The durable job queue.
    pub queue: Queue,
}

impl App {
    /// Connects to the database, applies migrations and assembles the services.
    pub async fn build(settings: Settings, clock: SharedClock) -> anyhow::Result<Self> {
        let db = Db::connect(&settings).await?;
        db.migrate().await?;
        Self::assemble(settings, clock, db).context("assembling the application")
    }

    /// Assembles an app over a database that is already migrated.
    pub fn assemble(settings: Settings, clock: SharedClock, db: Db) -> anyhow::Result<Self> {
        let queue = Queue::new(
            db.clone(),
            Arc::clone(&clock),
            settings.jobs.clone(),
            settings.plex.requests_per_second,
        );
        Ok(Self { settings: Arc::new(settings), db, clock, queue })
    }
}
