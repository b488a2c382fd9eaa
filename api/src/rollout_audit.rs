//! A rollout plan's lifecycle in the audit log: creating, pausing, resuming
//! and cancelling a plan, and its completion by the scheduler, each become an
//! accepted record of the audit stream (`ECS_AUDIT`), which the audit
//! projector writes into `audit` as it does refused attempts. Plans live in
//! the `ecs-rollouts` bucket, not in the events stream, so this is their only
//! audit trail; the steps themselves are audited as the layer revisions they
//! write (docs/flags.md, docs/adr/0023).

use axum::http::HeaderMap;
use ecs_domain::audit::{AuditRecord, Outcome, PlanAction};
use ecs_domain::flags::{RolloutPlan, RolloutStatus};
use serde_json::json;

use crate::audit::{RequestIds, publish_record, rfc3339};
use crate::auth::Principal;
use crate::state::AppState;

/// Who changed a plan, and the request that did it.
pub struct PlanChange<'a> {
    pub principal: &'a Principal,
    /// The request's ids; none for the scheduler.
    pub request: RequestIds,
}

impl<'a> PlanChange<'a> {
    /// A change made by `principal` through a request with these `headers`.
    pub fn by(principal: &'a Principal, headers: &HeaderMap) -> Self {
        PlanChange {
            principal,
            request: RequestIds::of(headers),
        }
    }
}

/// The record of `action` on `plan`, now stored at the bucket's `revision`;
/// `before` is the plan's status before the change (none for a new plan).
/// The id is the plan's id with that revision, so publishing it again (a
/// retry) records it once.
pub fn plan_record(
    plan: &RolloutPlan,
    revision: u64,
    action: PlanAction,
    before: Option<RolloutStatus>,
    change: &PlanChange<'_>,
) -> AuditRecord {
    let status = |s: RolloutStatus| json!(s);
    AuditRecord {
        id: format!("{}-{revision}", plan.id),
        at: rfc3339(time::OffsetDateTime::now_utc()),
        outcome: Outcome::Accepted,
        action: action.as_str().to_owned(),
        actor: Some(change.principal.name.clone()),
        role: Some(change.principal.role.name().to_owned()),
        request_id: change.request.request_id.clone(),
        correlation_id: change.request.correlation_id.clone(),
        tenant: plan.scope.tenant.as_ref().map(ToString::to_string),
        namespace: Some(plan.namespace.to_string()),
        scope: Some(plan.scope.clone()),
        reason: None,
        before: before.map(|s| json!({ "id": plan.id, "status": status(s) })),
        after: Some(json!({
            "id": plan.id,
            "flag": plan.flag,
            "variant": plan.variant,
            "otherwise": plan.otherwise,
            "status": status(plan.status),
            "applied": plan.applied,
            "steps": plan.steps,
        })),
        message: Some(format!(
            "rollout plan {} of flag {} {}",
            plan.id,
            plan.flag,
            action.as_str().trim_start_matches("rollout.")
        )),
        position: None,
        sealed: None,
    }
}

impl AppState {
    /// Records a plan's change in the audit stream, sealed with the key of
    /// the plan's tenant. The change is made already: a failure to record it
    /// is logged, never turned into a different answer.
    pub async fn record_plan(
        &self,
        plan: &RolloutPlan,
        revision: u64,
        action: PlanAction,
        before: Option<RolloutStatus>,
        change: PlanChange<'_>,
    ) {
        let record = plan_record(plan, revision, action, before, &change);
        let record = self
            .seal_record_for(record, plan.scope.tenant.as_ref())
            .await;
        if let Err(error) = publish_record(&self.nats, &record).await {
            tracing::error!(
                plan = %plan.id,
                action = action.as_str(),
                error = format!("{error:#}"),
                "a rollout plan's change is not recorded in the audit log"
            );
        }
    }
}
