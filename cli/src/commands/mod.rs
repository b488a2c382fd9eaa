//! The subcommands' implementations, one module per group.

pub mod admin;
pub mod audit;
pub mod change_requests;
pub mod diff;
pub mod read_write;
pub mod tokens;
