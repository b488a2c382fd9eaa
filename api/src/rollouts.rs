//! Rollout plans: stored in the JetStream key-value bucket `ecs-rollouts`
//! (one key per plan, every change a compare-and-set on the key's revision,
//! the bucket's history keeping the plan's past states), and the scheduler
//! that applies due steps (`crate::rollout_scheduler`) (docs/adr/0020).

use async_nats::jetstream::{self, kv};
use ecs_domain::flags::RolloutPlan;
use futures::StreamExt;

/// The bucket holding every plan (`KV_ecs-rollouts`).
pub const ROLLOUT_BUCKET: &str = "ecs-rollouts";

/// How many past states of each plan the bucket keeps.
const PLAN_HISTORY: i64 = 64;

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
