//! The read side of ECS: PostgreSQL projections of the events stream.
//!
//! A durable JetStream consumer feeds [`projector::Projector`], which applies
//! each message in one transaction together with the last applied stream
//! sequence, so every message takes effect exactly once. [`queries::ReadModel`]
//! answers reads, including reads of the past from the history tables.

pub mod apply;
pub mod audit;
pub mod change_requests;
pub mod feed;
pub mod feed_reads;
pub mod gdpr;
pub mod projector;
pub mod queries;

pub use projector::{ProjectionHandle, ProjectionStatus, Projector, ProjectorSettings};
pub use queries::{Layers, ReadModel};

/// Runs the embedded migrations.
pub async fn migrate(pool: &sqlx::PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    sqlx::migrate!("./migrations").run(pool).await
}
