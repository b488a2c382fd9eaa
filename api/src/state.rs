//! Shared state of the request handlers, and the write path they share.

use std::sync::Arc;
use std::time::Duration;

use ecs_commands::store::meta;
use ecs_commands::{Addressed, CommandBus, CommandError, CommandMeta, Committed};
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
    /// The rollout plans (`crate::rollouts`).
    pub rollouts: crate::rollouts::RolloutStore,
    pub read: ReadModel,
    pub services: Services,
    pub projections: ProjectionHandle,
    pub nats: async_nats::Client,
    pub js: async_nats::jetstream::Context,
    /// This instance's identity (the holder named in a lease).
    pub instance: ecs_projections::HolderId,
    /// What this instance knows of each lease it competes for.
    pub leases: Vec<(
        ecs_projections::LeaseName,
        tokio::sync::watch::Receiver<ecs_projections::LeaseStatus>,
    )>,
    /// The projections stopped at a message they cannot read.
    pub halts: ecs_projections::Halts,
    /// The last events-stream position the feed publisher has published.
    pub feed_published: tokio::sync::watch::Receiver<u64>,
    pub metrics: PrometheusHandle,
    pub write_wait: Duration,
    pub auth: Arc<crate::auth::Authenticator>,
    pub settings: Arc<crate::settings::Settings>,
    /// Whether the server is draining, and the requests still running.
    pub drain: crate::shutdown::Drain,
    /// Rate limits, the request timeout and open streams per principal.
    pub limits: Arc<crate::limits::Limits>,
    /// Failed authentications of the current window, recorded per window.
    pub failed_auth: crate::failed_auth::FailedAuthentications,
}

/// How a write answers when the projections do not apply it within
/// `ECS_WRITE_WAIT_MS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Answer anyway: the write is stored, reads catch up shortly.
    ReadYourWrites,
    /// The write takes access away (a revocation, an erasure, an approval
    /// policy): it answers success only once it is in effect, else 503
    /// saying it is not yet.
    Immediate,
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
        self.try_write::<A>(
            context,
            aggregate_id,
            command,
            services,
            Effect::ReadYourWrites,
        )
        .await?
        .map_err(ApiError::from)
    }

    /// Like [`write`](Self::write) for a write that takes access away: it
    /// answers only once the projections applied it (the credential cache and
    /// every read then see it), or 503 saying it is not in effect yet.
    pub async fn write_in_effect<A>(
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
        self.try_write::<A>(context, aggregate_id, command, services, Effect::Immediate)
            .await?
            .map_err(ApiError::from)
    }

    /// Runs a command: the outer error is the service failing (unavailable,
    /// contended, not in effect in time), the inner one the aggregate refusing
    /// the command, for callers that decide on the refusal.
    pub async fn try_write<A>(
        &self,
        context: &WriteContext,
        aggregate_id: &str,
        command: A::Command,
        services: &A::Services,
        effect: Effect,
    ) -> Result<Result<Committed, DomainError>, ApiError>
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
            // Found in the projections: applied, so in effect.
            return Ok(Ok(Committed {
                position: done.position,
                revision: done.revision,
                duplicate: true,
                unchanged: false,
            }));
        }
        let meta = CommandMeta {
            command_id: context
                .idempotency_id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
            actor: context.principal.name.clone(),
            metadata: [
                (meta::ROLE, Some(context.principal.role.name().to_owned())),
                (meta::REQUEST_ID, context.request_id.clone()),
                (meta::CORRELATION_ID, context.correlation_id.clone()),
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
            Err(CommandError::Rejected(_)) => "rejected",
            Err(CommandError::Contended) => "conflict",
            Err(CommandError::Unavailable(_)) => "unavailable",
            Err(CommandError::TooLarge(_)) => "too-large",
        };
        metrics::counter!("ecs_commands_total", "aggregate" => kind, "outcome" => outcome)
            .increment(1);
        let committed = match result {
            Ok(committed) => committed,
            Err(CommandError::Rejected(refusal)) => return Ok(Err(refusal)),
            // Deterministic, like a refusal: the same change never fits.
            Err(CommandError::TooLarge(too_large)) => return Ok(Err(too_large.into())),
            Err(other) => return Err(other.into()),
        };
        if !self
            .projections
            .wait_for(committed.position, self.write_wait)
            .await
        {
            match effect {
                Effect::ReadYourWrites => tracing::warn!(
                    position = committed.position,
                    "the projections did not apply the write in time; reads may lag behind it"
                ),
                Effect::Immediate => {
                    tracing::warn!(
                        position = committed.position,
                        "the projections did not apply a write that takes access away in time"
                    );
                    metrics::counter!("ecs_writes_not_in_effect_total", "aggregate" => A::aggregate_type())
                        .increment(1);
                    return Err(ApiError::NotInEffect {
                        position: committed.position,
                    });
                }
            }
        }
        Ok(Ok(committed))
    }
}
