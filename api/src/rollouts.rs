//! Rollout plans: stored in the JetStream key-value bucket `ecs-rollouts`
//! (one key per plan, every change a compare-and-set on the key's revision,
//! the bucket's history keeping the plan's past states), and the scheduler
//! that applies due steps as ordinary layer writes (docs/adr/0020).

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use ecs_domain::flags::RolloutPlan;
use ecs_domain::layer::layer_id;
use ecs_domain::{Identity, Layer, LayerAction, LayerCommand, Role};
use futures::StreamExt;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::auth::{Principal, Via};
use crate::extract::WriteContext;
use crate::state::{AppState, Effect};

/// The bucket holding every plan (`KV_ecs-rollouts`).
pub const ROLLOUT_BUCKET: &str = "ecs-rollouts";

/// How many past states of each plan the bucket keeps.
const PLAN_HISTORY: i64 = 64;

/// How often the scheduler looks for due steps.
const POLL: Duration = Duration::from_secs(1);

/// Opens the plans bucket, creating it (with `replicas`) when absent.
pub async fn ensure_bucket(
    js: &jetstream::Context,
    replicas: usize,
) -> anyhow::Result<RolloutStore> {
    let kv = match js.get_key_value(ROLLOUT_BUCKET).await {
        Ok(store) => store,
        Err(_) => js
            .create_key_value(kv::Config {
                bucket: ROLLOUT_BUCKET.to_owned(),
                description: "ECS rollout plans (docs/flags.md)".to_owned(),
                history: PLAN_HISTORY,
                storage: jetstream::stream::StorageType::File,
                num_replicas: replicas,
                ..Default::default()
            })
            .await
            .map_err(|e| {
                anyhow::anyhow!("cannot create the rollout bucket {ROLLOUT_BUCKET}: {e}")
            })?,
    };
    Ok(RolloutStore { kv })
}

/// A plan as stored, with the key revision an update must expect.
#[derive(Debug, Clone)]
pub struct StoredPlan {
    pub plan: RolloutPlan,
    pub revision: u64,
}

/// Why a plan was not stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Someone changed the plan since it was read.
    #[error("the plan changed concurrently")]
    Conflict,
    #[error("the rollout bucket is unavailable: {0}")]
    Unavailable(String),
}

/// The plans bucket.
#[derive(Clone)]
pub struct RolloutStore {
    kv: kv::Store,
}

impl RolloutStore {
    pub async fn get(&self, id: &str) -> Result<Option<StoredPlan>, StoreError> {
        if !valid_key(id) {
            return Ok(None);
        }
        let entry = self
            .kv
            .entry(id)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let Some(entry) = entry.filter(|e| e.operation == kv::Operation::Put) else {
            return Ok(None);
        };
        let plan = serde_json::from_slice(&entry.value)
            .map_err(|e| StoreError::Unavailable(format!("plan {id} is unreadable: {e}")))?;
        Ok(Some(StoredPlan {
            plan,
            revision: entry.revision,
        }))
    }

    /// Stores a new plan; its id must be unused.
    pub async fn create(&self, plan: &RolloutPlan) -> Result<u64, StoreError> {
        let bytes = serde_json::to_vec(plan).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        self.kv
            .create(&plan.id, bytes.into())
            .await
            .map_err(|e| match e.kind() {
                kv::CreateErrorKind::AlreadyExists => StoreError::Conflict,
                _ => StoreError::Unavailable(e.to_string()),
            })
    }

    /// Stores `plan` expecting the key at `revision`.
    pub async fn update(&self, plan: &RolloutPlan, revision: u64) -> Result<u64, StoreError> {
        let bytes = serde_json::to_vec(plan).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        self.kv
            .update(&plan.id, bytes.into(), revision)
            .await
            .map_err(|e| match e.kind() {
                kv::UpdateErrorKind::WrongLastRevision => StoreError::Conflict,
                _ => StoreError::Unavailable(e.to_string()),
            })
    }

    /// Every plan, in id (creation) order.
    pub async fn list(&self) -> Result<Vec<StoredPlan>, StoreError> {
        let unavailable = |e: &dyn std::fmt::Display| StoreError::Unavailable(e.to_string());
        let mut keys = match self.kv.keys().await {
            Ok(keys) => keys.collect::<Vec<_>>().await,
            Err(e) => return Err(unavailable(&e)),
        };
        keys.sort_by(|a, b| match (a, b) {
            (Ok(a), Ok(b)) => a.cmp(b),
            _ => std::cmp::Ordering::Equal,
        });
        let mut plans = Vec::with_capacity(keys.len());
        for key in keys {
            let key = key.map_err(|e| unavailable(&e))?;
            if let Some(plan) = self.get(&key).await? {
                plans.push(plan);
            }
        }
        Ok(plans)
    }
}

/// Plan ids are UUIDs in simple form: safe as key-value keys.
fn valid_key(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The command id of a plan's step: a step is applied at most once, however
/// many times (and by however many instances) it is attempted.
pub fn step_command_id(plan: &str, step: usize) -> String {
    format!("rollout-{plan}-{step}")
}

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
    let write = WriteContext {
        principal: Principal {
            name: format!("rollout:{}", plan.id),
            role: Role::Admin,
            via: Via::Bootstrap,
            identity: Identity::new(plan.created_by.clone()),
        },
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
    plan.step_applied(step);
    state.rollouts.update(&plan, revision).await?;
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
