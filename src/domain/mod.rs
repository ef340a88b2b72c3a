//! Domain types: parse, don't validate. No I/O.

pub mod ids;
