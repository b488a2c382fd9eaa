//! Refused attempts, recorded durably in the audit stream: each one of an
//! authenticated caller, and failed authentications as one record per
//! source, reason and window.

use std::time::Duration;

use ecs_domain::audit::{AuditRecord, Outcome};
use tokio_util::sync::CancellationToken;

use crate::audit::{RequestFacts, publish_record, rfc3339};
use crate::auth::Principal;
use crate::state::AppState;

impl AppState {
    /// Records a refused attempt durably in the audit stream. Failures to
    /// record are logged, never turned into a different answer.
    pub async fn record_refusal(
        &self,
        facts: RequestFacts,
        principal: Option<&Principal>,
        kind: &str,
        reason: &str,
    ) {
        let record = AuditRecord {
            id: uuid::Uuid::now_v7().to_string(),
            at: rfc3339(time::OffsetDateTime::now_utc()),
            outcome: Outcome::Refused,
            action: facts.action,
            actor: principal.map(|p| p.name.clone()),
            role: principal.map(|p| p.role.name().to_owned()),
            request_id: facts.request_id,
            correlation_id: facts.correlation_id,
            tenant: facts.tenant.clone(),
            namespace: facts.namespace,
            scope: None,
            reason: Some(format!(
                "{kind}: {}",
                reason.chars().take(1000).collect::<String>()
            )),
            before: None,
            after: None,
            message: None,
            position: None,
            sealed: None,
        };
        let record = self.seal_refusal(record, principal).await;
        if let Err(error) = publish_record(&self.nats, &record).await {
            tracing::error!(error = format!("{error:#}"), "a refusal is not recorded");
        }
        metrics::counter!("ecs_audit_refusals_total", "kind" => kind.to_owned()).increment(1);
    }
}

impl AppState {
    /// Records the window's tallies, one audit record each.
    pub async fn flush_failed_authentications(&self) {
        for tally in self.failed_auth.take() {
            let reason = format!(
                "{} ({} attempt{} from {} between {} and {})",
                tally.detail,
                tally.count,
                if tally.count == 1 { "" } else { "s" },
                tally.source,
                rfc3339(tally.since),
                rfc3339(tally.until),
            );
            self.record_refusal(tally.first, None, "authentication", &reason)
                .await;
        }
    }
}

/// Records the tallies at the end of every window until `shutdown`, then once
/// more, so that nothing counted is left out.
pub async fn run(state: AppState, window: Duration, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(window);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticks.tick() => state.flush_failed_authentications().await,
        }
    }
    state.flush_failed_authentications().await;
}
