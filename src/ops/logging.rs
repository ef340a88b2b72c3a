//! What the process logs and how: the level filter from `USHER_LOG`, lines to standard error as
//! text (colour only on a terminal, so log files and journald get no escape codes) or as one JSON
//! object per line (`log.format = "json"`).
//!
//! Rule it keeps: nothing here decides what is logged; every event already leaves secrets out,
//! and the spans (`request`, `job`) carry ids, never payloads.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The filter when `USHER_LOG` is unset: Usher at info, chatty dependencies at warn.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn,serenity=warn,tracing::span=warn";

/// Installs the global subscriber for `format`. Call once, at start.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_env("USHER_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}
