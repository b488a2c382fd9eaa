//! The read side of ECS: PostgreSQL projections of the events stream.
//!
//! A durable JetStream consumer feeds [`projector::Projector`], which applies
//! each message in one transaction together with the last applied stream
//! sequence, so every message takes effect exactly once. [`queries::ReadModel`]
//! answers reads, including reads of the past from the history tables.

pub mod apply;
pub mod audit;
mod batch;
pub mod change_requests;
mod detached;
pub mod drift;
pub mod feed;
pub mod feed_mirror;
pub mod feed_reads;
pub mod gdpr;
pub mod halt;
pub mod lease;
mod offsets;
pub mod projector;
pub mod queries;
pub mod rebuild;
mod retry;
pub mod status;

pub use halt::{Halt, Halts, ProjectionName};
pub use lease::{HolderId, Lease, LeaseBucket, LeaseName, LeaseStatus, Tenure};
pub use projector::{AppliedFollower, ProjectionHandle, Projector, ProjectorSettings};
pub use queries::{Layers, ReadModel};
pub use status::{ProjectionStatus, RebuildProgress};

/// The embedded migrations.
pub(crate) fn migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate!("./migrations")
}

/// Runs the embedded migrations.
pub async fn migrate(pool: &sqlx::PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    migrator().run(pool).await
}
