//! The integration suite against real NATS and PostgreSQL, as one test binary
//! (one link, shared start-up). Each module is one area; run one with
//! `cargo test -p ecs-tests --test it -- <module>::`. The fuzzer
//! (`tests/fuzz.rs`), the fault injection (`faults/`) and the trace test
//! (`tests/observability.rs`, which installs a process-wide subscriber) run
//! as binaries of their own.

mod api;
mod approvals;
mod audit;
mod cli;
mod consistency;
mod drift;
mod edge;
mod flags;
mod flow;
mod gdpr;
mod governance;
mod harness;
mod imports;
mod integrity_writes;
mod masking;
mod projection_integrity;
mod rollouts;
mod scale;
mod sdk;
mod sealing;
mod secrets;
mod sse;
mod studio;
mod transport;
mod validation_contexts;
