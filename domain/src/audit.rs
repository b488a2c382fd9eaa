//! The audit record: who did or tried what, when, where and with what outcome.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::scope::Scope;

/// The audit stream's subjects: `ecs.audit.<tenant or _>.<outcome>`.
pub const AUDIT_SUBJECTS: &str = "ecs.audit.>";

/// Whether the attempt took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Accepted,
    Refused,
}

/// One audit record (format version 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Unique per record; the de-duplication id in the audit stream.
    pub id: String,
    /// RFC 3339.
    pub at: String,
    pub outcome: Outcome,
    /// What was attempted, such as `layer.replace` or `http:PUT /v1/namespaces/{ns}/layer`.
    pub action: String,
    #[serde(default)]
    pub actor: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub request_id: Option<String>,
    #[serde(default)]
    pub correlation_id: Option<String>,
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub scope: Option<Scope>,
    /// For refusals: the kind (`authentication`, `authorization`,
    /// `validation`) and why.
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub before: Option<Value>,
    #[serde(default)]
    pub after: Option<Value>,
    #[serde(default)]
    pub message: Option<String>,
    /// For accepted changes: the change's position in the events stream.
    #[serde(default)]
    pub position: Option<u64>,
    /// The tenant data of the record (reason, request and correlation ids,
    /// message, before and after), sealed with the key of the tenant it
    /// belongs to; those fields are then empty until a reader opens it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<crate::sealed::Sealed>,
}

/// A rollout plan's lifecycle, the accepted changes the audit stream records
/// beside refused attempts: plans live in the `ecs-rollouts` bucket, not in
/// the events stream, so nothing else would audit them. A record's `action`
/// is [`PlanAction::as_str`]; the audit projector reads it back with
/// [`PlanAction::parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlanAction {
    Created,
    Paused,
    Resumed,
    Cancelled,
    /// The scheduler applied the plan's last step.
    Completed,
}

impl PlanAction {
    pub const ALL: [PlanAction; 5] = [
        PlanAction::Created,
        PlanAction::Paused,
        PlanAction::Resumed,
        PlanAction::Cancelled,
        PlanAction::Completed,
    ];

    /// The record's `action`, such as `rollout.paused`.
    pub fn as_str(self) -> &'static str {
        match self {
            PlanAction::Created => "rollout.created",
            PlanAction::Paused => "rollout.paused",
            PlanAction::Resumed => "rollout.resumed",
            PlanAction::Cancelled => "rollout.cancelled",
            PlanAction::Completed => "rollout.completed",
        }
    }

    /// The plan action an audit record's `action` names, if it names one.
    pub fn parse(action: &str) -> Option<PlanAction> {
        PlanAction::ALL.into_iter().find(|a| a.as_str() == action)
    }
}

/// Where an audit entry's `before` and `after` hold configuration values,
/// by its action: what masking sensitive values must look into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditValues {
    /// `layer.*`: before and after are the layer's values.
    Layer,
    /// `change-request.opened`: `after.change` is the proposed change, whose
    /// `values` (a replacement) or `patch` are values.
    ChangeRequest,
    /// `namespace.defined`: before and after hold the namespace's `schema`,
    /// whose `default`s and examples are values.
    Namespace,
    /// Everything else (tenants, tokens, decisions on change requests,
    /// rollout plans, refusals): no values.
    None,
}

impl AuditValues {
    pub fn of(action: &str) -> AuditValues {
        if action.starts_with("layer.") {
            AuditValues::Layer
        } else if action == "change-request.opened" {
            AuditValues::ChangeRequest
        } else if action == "namespace.defined" {
            AuditValues::Namespace
        } else {
            AuditValues::None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_plan_action_reads_back_from_its_name() {
        for action in PlanAction::ALL {
            assert_eq!(PlanAction::parse(action.as_str()), Some(action));
            assert_eq!(AuditValues::of(action.as_str()), AuditValues::None);
        }
        assert_eq!(PlanAction::parse("layer.replaced"), None);
        assert_eq!(PlanAction::parse("rollout."), None);
    }
}
