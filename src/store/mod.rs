//! All SQL lives here, one module per aggregate. Functions are `find_*`, `insert_*`, `update_*`;
//! they take a [`Tx`] (the caller commits) and return rows mapped to domain types.

pub mod audit;
pub mod bulk_flags;
mod db;
pub mod export;
pub mod imports;
pub mod jobs;
pub mod lifecycle;
pub mod notifications;
pub mod ops;
pub mod owner_accounts;
pub mod payments;
pub mod proofs;
pub mod recovery;
pub mod servers;
pub mod settings;
pub mod shares;
pub mod subscribers;
pub mod trials;
mod types;
pub mod web;

pub use db::{Db, Tx, is_unique_violation, migrate_configured, sqlite_options};
