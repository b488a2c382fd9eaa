//! Fault injection: the real `ecs` binary under concurrent, traceable writes
//! while the server, NATS or PostgreSQL is killed, then a checker that reads
//! everything back (see `docs/faults.md`).
//!
//! Needs the server binary: `cargo build -p ecs-api --bin ecs` first. Run with
//! `cargo test -p ecs-tests --test faults -- --nocapture` to see the reports.

#![allow(clippy::unwrap_used)]
// Each scenario prints what it did and what it found: that report is the point.
#![allow(clippy::print_stdout)]

mod edge;
mod harness;
mod pg;
mod scale;
mod scenarios;
mod traced;
