//! Use cases: one function per thing a person does. They take a transaction (the caller commits),
//! return typed results and typed errors that each door renders its own way.

pub mod access;
pub mod account;
pub mod account_change;
pub mod catalog;
pub mod checkout;
pub mod export;
pub mod health;
pub mod lifecycle;
pub mod notify;
pub mod payments;
pub mod placement;
pub mod plex_admin;
pub mod plex_sign_in;
pub mod recovery;
pub mod settings;
pub mod shares;
pub mod sign_in;
