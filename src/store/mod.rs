//! All SQL lives here, one module per aggregate. Functions are `find_*`, `insert_*`, `update_*`;
//! they take a [`Tx`] (the caller commits) and return rows mapped to domain types.

mod db;
pub mod jobs;
pub mod settings;

pub use db::{Backend, Db, Tx, is_unique_violation, sqlite_options};
