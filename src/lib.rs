//! Usher: access management for Plex servers, Discord-first — plans, payments, invites, expiry
//! and recovery after a Plex ban. See DESIGN.md: doors (bot, web, scheduler) → services →
//! store/jobs → integrations.
// The disallowed types and methods (clippy.toml) are the wall around `commands/`; everywhere else
// may use them.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

pub mod app;
pub mod bot;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod domain;
#[cfg(feature = "fakes")]
pub mod fakes;
pub mod integrations;
pub mod jobs;
pub mod ops;
pub mod private_fs;
pub mod scheduler;
pub mod services;
pub mod store;
pub mod templates;
pub mod web;

// The Discord surface lives at the top level (`commands/`) so it reads as the product's UI; this is
// the crate's only `#[path]`.
#[path = "../commands/mod.rs"]
pub mod commands;

pub use app::App;
