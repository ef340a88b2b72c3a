//! Usher's integration tests: one crate, driven through the doors and the services, asserting
//! through the store and the fakes.
// Tests and benchmarks reach the store directly to set up and assert; the wall (clippy.toml)
// guards commands/ only.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod account_change;
mod backup;
mod ban_recovery;
mod browser;
mod cli;
mod cli_setup;
mod discord;
mod discord_door;
mod discord_permissions;
mod doctor;
mod email;
mod hand_tools;
mod helpers;
mod import;
mod import_csv;
mod joining;
mod lifecycle;
mod logs;
mod my_account;
mod notify;
mod payments_commands;
mod payments_flow;
mod payments_manual;
mod payments_oracle;
mod payments_order;
mod payments_paypal;
mod payments_paypal_events;
mod payments_plisio;
mod payments_rejected;
mod payments_routes;
mod payments_shapes;
mod payments_stripe;
mod payments_stripe_events;
mod payments_support;
mod plex_admin;
mod plex_client;
mod plex_jobs;
mod plex_pin;
mod queue;
mod readme;
mod reliability;
mod roles;
mod store;
mod trials;
mod unclaimed;
mod web;
