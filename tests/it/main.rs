//! Usher's integration tests: one crate, driven through the doors and the services, asserting
//! through the store and the fakes.

mod cli;
mod helpers;
mod queue;
