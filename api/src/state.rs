//! Shared state of the request handlers, and the write path they share.

use std::sync::Arc;
use std::time::Duration;

use ecs_commands::{Addressed, CommandBus, CommandMeta, Committed};
use ecs_domain::{DomainError, Services};
use ecs_projections::{ProjectionHandle, ReadModel};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::extract::WriteContext;
use crate::problem::ApiError;

/// The handlers' state. Axum clones it for every extractor and middleware of
/// every request, so it is one `Arc`: a clone is a reference-count increment,
/// not a copy of the NATS clients and handles inside.
#[derive(Clone)]
pub struct AppState(Arc<AppInner>);

impl AppState {
    pub fn new(inner: AppInner) -> Self {
        Self(Arc::new(inner))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppInner;

    fn deref(&self) -> &AppInner {
        &self.0
    }
}

/// What the handlers share: settings, clients and handles.
pub struct AppInner {
    pub cache: Arc<crate::cache::SnapshotCache>,
    pub keyring: Arc<ecs_commands::keyring::Keyring>,
    pub bus: CommandBus,
    pub read: ReadModel,
    pub services: Services,
    pub projections: ProjectionHandle,
    pub nats: async_nats::Client,
    pub js: async_nats::jetstream::Context,
    /// The projections stopped at a message they cannot read.
    pub halts: ecs_projections::Halts,
    /// The last events-stream position the feed publisher has published.
    pub feed_published: tokio::sync::watch::Receiver<u64>,
    pub metrics: PrometheusHandle,
    pub write_wait: Duration,
    pub auth: Arc<crate::auth::Authenticator>,
    pub settings: Arc<crate::settings::Settings>,
}

impl AppState {
    /// Runs a command and waits until the projections have applied it, so a
    /// read made after the response sees the write.
    ///
    /// A retried request (same `Idempotency-Key`) whose command is already
    /// projected answers with the original outcome without running again.
    pub async fn write<A>(
        &self,
        context: &WriteContext,
        aggregate_id: &str,
        command: A::Command,
        services: &A::Services,
    ) -> Result<Committed, ApiError>
    where
        A: Addressed<Error = DomainError>,
        A::Command: Clone,
    {
        let kind = A::aggregate_type();
        if let Some(id) = &context.idempotency_id
            && let Some(done) = self.read.command(id).await?
            && done.aggregate_id == aggregate_id
            && done.aggregate_type == kind
        {
            metrics::counter!("ecs_commands_total", "aggregate" => kind, "outcome" => "duplicate")
                .increment(1);
            return Ok(Committed {
                position: done.position,
                revision: done.revision,
                duplicate: true,
                unchanged: false,
            });
        }
        let meta = CommandMeta {
            command_id: context
                .idempotency_id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
            actor: context.principal.name.clone(),
            metadata: [
                ("role", Some(context.principal.role.name().to_owned())),
                ("request_id", context.request_id.clone()),
                ("correlation_id", context.correlation_id.clone()),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
            .collect(),
        };
        let result = self
            .bus
            .execute::<A>(aggregate_id, command, services, &meta)
            .await;
        let outcome = match &result {
            Ok(c) if c.duplicate => "duplicate",
            Ok(c) if c.unchanged => "unchanged",
            Ok(_) => "accepted",
            Err(ecs_commands::CommandError::Rejected(_)) => "rejected",
            Err(ecs_commands::CommandError::Contended) => "conflict",
            Err(ecs_commands::CommandError::Unavailable(_)) => "unavailable",
        };
        metrics::counter!("ecs_commands_total", "aggregate" => kind, "outcome" => outcome)
            .increment(1);
        let committed = result?;
        if !self
            .projections
            .wait_for(committed.position, self.write_wait)
            .await
        {
            tracing::warn!(
                position = committed.position,
                "the projections did not apply the write in time; reads may lag behind it"
            );
        }
        Ok(committed)
    }
}
