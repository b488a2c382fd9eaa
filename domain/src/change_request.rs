//! The change request aggregate: a layer write held for approval.
//!
//! A namespace (or a scope within it) can require approval. A write there
//! opens a change request instead of changing the layer; it applies only when
//! a different principal allowed to write the layer approves it, and fails
//! cleanly when the layer changed since the request was opened.

use async_trait::async_trait;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::ids::NamespaceName;
use crate::layer::LayerAction;
use crate::scope::Scope;

/// Where a namespace requires approval: writes to a layer whose scope lies
/// within (or equals) one of `scopes`; an empty list means every layer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalPolicy {
    #[serde(default)]
    pub scopes: Vec<Scope>,
}

impl ApprovalPolicy {
    /// Whether a write to a layer at `scope` needs approval.
    pub fn covers(&self, scope: &Scope) -> bool {
        self.scopes.is_empty() || self.scopes.iter().any(|p| p.is_within(scope))
    }
}

/// The lifecycle of a change request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Open,
    Approved,
    Rejected,
    Withdrawn,
    /// Approved, but the layer had changed since it was opened (or the change
    /// no longer passes the schema or a lock): nothing was applied.
    Failed,
}

/// A stored layer action, serializable for the request's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ProposedChange {
    Replace {
        values: serde_json::Value,
        lock: Option<Vec<String>>,
    },
    Patch {
        patch: serde_json::Value,
    },
    Clear,
    RollBack {
        revision: u64,
    },
}

impl From<LayerAction> for ProposedChange {
    fn from(action: LayerAction) -> Self {
        match action {
            LayerAction::Replace { values, lock } => ProposedChange::Replace { values, lock },
            LayerAction::Patch { patch } => ProposedChange::Patch { patch },
            LayerAction::Clear => ProposedChange::Clear,
            LayerAction::RollBack { revision } => ProposedChange::RollBack { revision },
        }
    }
}

impl From<ProposedChange> for LayerAction {
    fn from(change: ProposedChange) -> Self {
        match change {
            ProposedChange::Replace { values, lock } => LayerAction::Replace { values, lock },
            ProposedChange::Patch { patch } => LayerAction::Patch { patch },
            ProposedChange::Clear => LayerAction::Clear,
            ProposedChange::RollBack { revision } => LayerAction::RollBack { revision },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeRequestState {
    pub id: String,
    pub namespace: NamespaceName,
    pub scope: Scope,
    pub change: ProposedChange,
    pub message: String,
    /// The layer's revision when the request was opened; approval applies the
    /// change only if the layer is still there.
    pub base_revision: u64,
    pub author: String,
    pub status: Status,
    #[serde(default)]
    pub decided_by: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

// Commands and events are short-lived values; boxing would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub enum ChangeRequestCommand {
    Open {
        id: String,
        namespace: NamespaceName,
        scope: Scope,
        change: ProposedChange,
        message: String,
        base_revision: u64,
        author: String,
    },
    /// Records the approval; the caller has applied the change.
    Approve {
        by: String,
    },
    /// Records an approval whose change could not be applied.
    Fail {
        by: String,
        reason: String,
    },
    Reject {
        by: String,
        reason: String,
    },
    Withdraw {
        by: String,
    },
}

#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ChangeRequestEvent {
    ChangeRequestOpened(ChangeRequestState),
    ChangeRequestApproved { by: String },
    ChangeRequestFailed { by: String, reason: String },
    ChangeRequestRejected { by: String, reason: String },
    ChangeRequestWithdrawn { by: String },
}

impl DomainEvent for ChangeRequestEvent {
    fn event_type(&self) -> String {
        match self {
            ChangeRequestEvent::ChangeRequestOpened(_) => "ChangeRequestOpened",
            ChangeRequestEvent::ChangeRequestApproved { .. } => "ChangeRequestApproved",
            ChangeRequestEvent::ChangeRequestFailed { .. } => "ChangeRequestFailed",
            ChangeRequestEvent::ChangeRequestRejected { .. } => "ChangeRequestRejected",
            ChangeRequestEvent::ChangeRequestWithdrawn { .. } => "ChangeRequestWithdrawn",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

/// The change request aggregate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChangeRequest {
    pub state: Option<ChangeRequestState>,
}

impl ChangeRequest {
    fn open_state(&self) -> Result<&ChangeRequestState, DomainError> {
        let state = self
            .state
            .as_ref()
            .ok_or(DomainError::ChangeRequestNotFound)?;
        if state.status == Status::Open {
            Ok(state)
        } else {
            Err(DomainError::ChangeRequestClosed(
                format!("{:?}", state.status).to_lowercase(),
            ))
        }
    }
}

#[async_trait]
impl Aggregate for ChangeRequest {
    type Command = ChangeRequestCommand;
    type Event = ChangeRequestEvent;
    type Error = DomainError;
    type Services = ();

    fn aggregate_type() -> String {
        "change-request".to_owned()
    }

    async fn handle(
        &self,
        command: ChangeRequestCommand,
        _: &(),
    ) -> Result<Vec<ChangeRequestEvent>, DomainError> {
        use ChangeRequestEvent as E;
        match command {
            ChangeRequestCommand::Open {
                id,
                namespace,
                scope,
                change,
                message,
                base_revision,
                author,
            } => {
                if self.state.is_some() {
                    return Err(DomainError::invalid(
                        "id",
                        "a change request with this id exists",
                    ));
                }
                Ok(vec![E::ChangeRequestOpened(ChangeRequestState {
                    id,
                    namespace,
                    scope,
                    change,
                    message,
                    base_revision,
                    author,
                    status: Status::Open,
                    decided_by: None,
                    reason: None,
                })])
            }
            ChangeRequestCommand::Approve { by } | ChangeRequestCommand::Fail { by, .. }
                if self.open_state()?.author == by =>
            {
                Err(DomainError::SelfApproval)
            }
            ChangeRequestCommand::Approve { by } => {
                self.open_state()?;
                Ok(vec![E::ChangeRequestApproved { by }])
            }
            ChangeRequestCommand::Fail { by, reason } => {
                self.open_state()?;
                Ok(vec![E::ChangeRequestFailed { by, reason }])
            }
            ChangeRequestCommand::Reject { by, reason } => {
                self.open_state()?;
                Ok(vec![E::ChangeRequestRejected { by, reason }])
            }
            ChangeRequestCommand::Withdraw { by } => {
                let state = self.open_state()?;
                if state.author != by {
                    return Err(DomainError::invalid(
                        "author",
                        "only the author may withdraw a change request",
                    ));
                }
                Ok(vec![E::ChangeRequestWithdrawn { by }])
            }
        }
    }

    fn apply(&mut self, event: ChangeRequestEvent) {
        use ChangeRequestEvent as E;
        let close =
            |state: &mut Option<ChangeRequestState>, status, by: String, reason: Option<String>| {
                if let Some(state) = state {
                    state.status = status;
                    state.decided_by = Some(by);
                    state.reason = reason;
                }
            };
        match event {
            E::ChangeRequestOpened(state) => self.state = Some(state),
            E::ChangeRequestApproved { by } => close(&mut self.state, Status::Approved, by, None),
            E::ChangeRequestFailed { by, reason } => {
                close(&mut self.state, Status::Failed, by, Some(reason))
            }
            E::ChangeRequestRejected { by, reason } => {
                close(&mut self.state, Status::Rejected, by, Some(reason))
            }
            E::ChangeRequestWithdrawn { by } => close(&mut self.state, Status::Withdrawn, by, None),
        }
    }
}
