//! The rollout scheduler: on the holder of the `rollouts` lease, applies
//! each plan's due step as an ordinary layer write (docs/adr/0020).

use std::time::Duration;

use ecs_domain::audit::PlanAction;
use ecs_domain::flags::RolloutStatus;
use ecs_domain::layer::layer_id;
use ecs_domain::{Identity, Layer, LayerAction, LayerCommand, Role};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::audit::RequestIds;
use crate::auth::{Principal, Via};
use crate::extract::WriteContext;
use crate::rollout_audit::PlanChange;
use crate::rollouts::{StoreError, StoredPlan, step_command_id};
use crate::state::{AppState, Effect};

/// How often the scheduler looks for due steps.
const POLL: Duration = Duration::from_secs(1);

/// Applies due steps, on the one instance holding the `rollouts` lease.
pub struct RolloutScheduler {
    state: AppState,
}

impl RolloutScheduler {
    pub fn new(state: AppState) -> Self {
        RolloutScheduler { state }
    }
}

impl ecs_projections::lease::Singleton for RolloutScheduler {
    async fn run_held(&mut self, token: CancellationToken) -> anyhow::Result<()> {
        loop {
            if let Err(error) = tick(&self.state, OffsetDateTime::now_utc()).await {
                tracing::warn!(error = %error, "rollout scheduler: cannot read the plans");
            }
            tokio::select! {
                () = token.cancelled() => return Ok(()),
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }
}

/// Applies every step due at `now`.
async fn tick(state: &AppState, now: OffsetDateTime) -> Result<(), StoreError> {
    for stored in state.rollouts.list().await? {
        if let Some(step) = stored.plan.due(now) {
            let before = stored.clone();
            if let Err(error) = apply(state, stored, step).await {
                let error = format!("{error:#}");
                tracing::warn!(plan = %before.plan.id, step, error, "rollout step not applied; retrying");
                record_error(state, before, error).await;
            }
        }
    }
    Ok(())
}

/// Shows why a step is not applied in the plan, once per distinct reason.
async fn record_error(state: &AppState, stored: StoredPlan, error: String) {
    let StoredPlan { mut plan, revision } = stored;
    if plan.last_error.as_deref() == Some(error.as_str()) {
        return;
    }
    plan.last_error = Some(error);
    // A concurrent change of the plan wins; the next attempt records again.
    let _ = state.rollouts.update(&plan, revision).await;
}

/// Writes step `step` of a plan to its layer, then records it in the plan.
async fn apply(state: &AppState, stored: StoredPlan, step: usize) -> anyhow::Result<()> {
    let StoredPlan { mut plan, revision } = stored;
    let layer = state
        .read
        .layer(&plan.namespace, &plan.scope, None)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the layer has no revisions"))?;
    let values = plan
        .values_at_step(&layer.state.values, step)
        .ok_or_else(|| anyhow::anyhow!("the layer no longer defines flag {}", plan.flag))?;
    let percent = plan.steps[step].percent;
    let principal = Principal {
        name: format!("rollout:{}", plan.id),
        role: Role::Admin,
        via: Via::Bootstrap,
        identity: Identity::new(plan.created_by.clone()),
    };
    let write = WriteContext {
        principal: principal.clone(),
        expected_revision: Some(layer.state.revision),
        idempotency_id: Some(step_command_id(&plan.id, step)),
        request_id: None,
        correlation_id: None,
    };
    let command = LayerCommand {
        namespace: plan.namespace.clone(),
        scope: plan.scope.clone(),
        action: LayerAction::Replace { values, lock: None },
        message: format!(
            "rollout {} step {}: {} at {percent} %",
            plan.id,
            step + 1,
            plan.flag
        ),
        expected_revision: Some(layer.state.revision),
    };
    let id = layer_id(&plan.namespace, &plan.scope);
    let committed = state
        .try_write::<Layer>(
            &write,
            &id,
            command,
            &state.services,
            Effect::ReadYourWrites,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?
        .map_err(|refusal| anyhow::anyhow!("the layer refused the step: {refusal}"))?;
    let before = plan.status;
    plan.step_applied(step);
    let revision = state.rollouts.update(&plan, revision).await?;
    if plan.status == RolloutStatus::Completed {
        let change = PlanChange {
            principal: &principal,
            request: RequestIds::default(),
        };
        state
            .record_plan(&plan, revision, PlanAction::Completed, Some(before), change)
            .await;
    }
    tracing::info!(
        plan = %plan.id,
        step,
        percent,
        position = committed.position,
        duplicate = committed.duplicate,
        "rollout step applied"
    );
    Ok(())
}
