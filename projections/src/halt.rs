//! Stopping a projection loudly.
//!
//! A message a projection cannot read (malformed, or tenant data that the
//! keys do not open) is never skipped silently: the projection stops at its
//! position, `/readyz` answers 503 naming it, the gauge
//! `ecs_projection_stopped{projection}` is 1 (0 again once it resumes) and an
//! error is logged. It
//! resumes when the message becomes readable (a fixed version is deployed and
//! started) or when an operator records a skip of exactly that position
//! (`POST /v1/admin/projections/{name}/skip?position=N`), which every later
//! run, a rebuild included, honours (docs/operations.md, "Projections").

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The projections that follow a stream, each with its own position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProjectionName {
    /// The PostgreSQL tables, from the events stream.
    Config,
    /// Refused attempts into the audit log, from the audit stream.
    Audit,
    /// The public change feed, from the events stream.
    Feed,
}

impl ProjectionName {
    pub const ALL: [ProjectionName; 3] = [
        ProjectionName::Config,
        ProjectionName::Audit,
        ProjectionName::Feed,
    ];

    /// The name in URLs, metrics, `projection_offsets` and `projection_skips`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProjectionName::Config => "config",
            ProjectionName::Audit => "audit",
            ProjectionName::Feed => "feed",
        }
    }
}

impl FromStr for ProjectionName {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        ProjectionName::ALL
            .into_iter()
            .find(|p| p.as_str() == name)
            .ok_or_else(|| format!("no projection {name:?}; known: config, audit, feed"))
    }
}

/// Where and why a projection stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Halt {
    pub projection: ProjectionName,
    /// The stream position of the message it cannot read.
    pub position: u64,
    pub error: String,
}

/// The stopped projections, shared by the projections (which stop and
/// resume) and the API (which reports them and records skips).
#[derive(Clone)]
pub struct Halts {
    halted: Arc<watch::Sender<BTreeMap<ProjectionName, Halt>>>,
    /// Bumped when an operator asks the stopped projections to try again.
    resume: Arc<watch::Sender<u64>>,
}

impl Default for Halts {
    fn default() -> Self {
        Halts {
            halted: Arc::new(watch::channel(BTreeMap::new()).0),
            resume: Arc::new(watch::channel(0).0),
        }
    }
}

/// How long a stopped projection waits before reading its message again on
/// its own (a tenant key restored meanwhile, say).
const RETRY_STOPPED_AFTER: Duration = Duration::from_secs(60);

impl Halts {
    /// Every stopped projection, in a stable order.
    pub fn stopped(&self) -> Vec<Halt> {
        self.halted.borrow().values().cloned().collect()
    }

    pub fn get(&self, projection: ProjectionName) -> Option<Halt> {
        self.halted.borrow().get(&projection).cloned()
    }

    /// Records that `projection` stopped at `position`, loudly.
    pub fn stop(&self, projection: ProjectionName, position: u64, error: impl ToString) {
        let error = error.to_string();
        tracing::error!(
            projection = projection.as_str(),
            position,
            error,
            "projection stopped at a message it cannot read; see docs/operations.md (Projections)"
        );
        metrics::gauge!("ecs_projection_stopped", "projection" => projection.as_str()).set(1.0);
        self.halted.send_modify(|halted| {
            halted.insert(
                projection,
                Halt {
                    projection,
                    position,
                    error,
                },
            );
        });
    }

    /// Records that `projection` has applied `position`: a stop at or
    /// before it is over.
    pub fn passed(&self, projection: ProjectionName, position: u64) {
        let over = self
            .halted
            .borrow()
            .get(&projection)
            .is_some_and(|halt| halt.position <= position);
        if over {
            self.halted.send_modify(|halted| {
                halted.remove(&projection);
            });
            metrics::gauge!("ecs_projection_stopped", "projection" => projection.as_str()).set(0.0);
            tracing::info!(
                projection = projection.as_str(),
                position,
                "projection resumed"
            );
        }
    }

    /// Asks the stopped projections to read their message again.
    pub fn resume(&self) {
        self.resume.send_modify(|generation| *generation += 1);
    }

    /// Waits, after a stop, until an operator asks to resume, a while has
    /// passed, or `shutdown`. Answers false on shutdown.
    pub async fn wait_for_resume(&self, shutdown: &CancellationToken) -> bool {
        let mut resume = self.resume.subscribe();
        resume.mark_unchanged();
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = resume.changed() => true,
            _ = tokio::time::sleep(RETRY_STOPPED_AFTER) => true,
        }
    }
}

/// An operator's decision to skip one message of a projection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skip {
    pub projection: ProjectionName,
    pub position: u64,
    /// Why the projection could not read it.
    pub error: String,
    /// Who decided (the principal's name).
    pub skipped_by: String,
}

/// Whether an operator decided to skip the message of `projection` at
/// `position`.
pub async fn skip_recorded(
    pool: &PgPool,
    projection: ProjectionName,
    position: u64,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT skipped_by FROM projection_skips WHERE projection = $1 AND position = $2",
    )
    .bind(projection.as_str())
    .bind(position as i64)
    .fetch_optional(pool)
    .await
}
