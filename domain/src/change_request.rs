//! The change request aggregate: a layer write held for approval.
//!
//! A namespace (or a scope within it) can require approval. A write there
//! opens a change request instead of changing the layer; it applies only when
//! a principal of another identity allowed to write the layer approves it,
//! and fails cleanly when the layer changed since the request was opened.
//!
//! Approving takes two steps, because the layer is another aggregate: the
//! request first records the decision (`applying`), so a concurrent reject or
//! withdraw is refused from then on, then the layer write's outcome concludes
//! it (`approved` or `failed`). A request left `applying` (a crash between the
//! steps) is concluded by approving it again.

use async_trait::async_trait;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::identity::{Actor, Identity};
use crate::ids::NamespaceName;
use crate::layer::LayerAction;
use crate::scope::Scope;

/// The aggregate id of the change request `id` opened at `scope`:
/// `<tenant or _>.<id>`, so its subject carries the tenant.
pub fn aggregate_id(id: &str, scope: &Scope) -> String {
    format!("{}.{id}", scope.tenant.as_ref().map_or("_", |t| t.as_str()))
}

/// The tenant token (`_` for none) of an [`aggregate_id`].
pub fn aggregate_id_tenant(aggregate_id: &str) -> &str {
    aggregate_id.split('.').next().unwrap_or("_")
}

/// The lifecycle of a change request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Open,
    /// Approved; the change is being applied to the layer. Nothing but
    /// concluding (approving again resumes it) is accepted any more.
    Applying,
    Approved,
    Rejected,
    Withdrawn,
    /// Approved, but the layer had changed since it was opened (or the change
    /// no longer passes the schema or a lock): nothing was applied.
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Applying => "applying",
            Status::Approved => "approved",
            Status::Rejected => "rejected",
            Status::Withdrawn => "withdrawn",
            Status::Failed => "failed",
        }
    }

    /// The status the API names `name`.
    pub fn parse(name: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Every status, as the API names them.
    pub const ALL: [Status; 6] = [
        Status::Open,
        Status::Applying,
        Status::Approved,
        Status::Rejected,
        Status::Withdrawn,
        Status::Failed,
    ];
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
    /// Who stands behind the author's credential; absent in requests opened
    /// before identities were recorded, where the author's name stands in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_identity: Option<Identity>,
    pub status: Status,
    #[serde(default)]
    pub decided_by: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

impl ChangeRequestState {
    /// The identity behind the author.
    pub fn author_identity(&self) -> Identity {
        self.author_identity
            .clone()
            .unwrap_or_else(|| Identity::new(self.author.clone()))
    }

    fn decided(&self, status: Status, by: &Actor, reason: Option<String>) -> Self {
        ChangeRequestState {
            status,
            decided_by: Some(by.name.clone()),
            reason,
            ..self.clone()
        }
    }
}

/// What applying an approved change to its layer came to.
#[derive(Debug, Clone, PartialEq)]
pub enum LayerOutcome {
    /// The layer took the change.
    Applied,
    /// The layer aggregate refused it.
    Refused(DomainError),
}

/// Why a change the layer refused cannot apply, as recorded on the request;
/// `None` when the refusal is transient (nothing is recorded, the request
/// stays `applying` and approving it again retries).
pub fn failure_reason(refusal: &DomainError) -> Option<String> {
    match refusal {
        DomainError::Unavailable(_) => None,
        DomainError::StaleRevision { .. } => {
            Some("the layer changed since the request was opened".to_owned())
        }
        DomainError::SchemaViolations(_) | DomainError::LockViolations(_) => {
            Some("the change no longer passes the schema or a lock".to_owned())
        }
        other => Some(other.to_string()),
    }
}

// Commands and events are short-lived values; boxing would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeRequestCommand {
    /// Opens the request. Opening the same request again (a retried write)
    /// changes nothing.
    Open {
        id: String,
        namespace: NamespaceName,
        scope: Scope,
        change: ProposedChange,
        message: String,
        base_revision: u64,
        author: Actor,
    },
    /// Decides to apply the change (`applying`); on a request left
    /// `applying`, changes nothing so the caller resumes applying it.
    Approve {
        by: Actor,
    },
    /// Records what applying the change came to.
    Conclude {
        by: Actor,
        outcome: LayerOutcome,
    },
    Reject {
        by: Actor,
        reason: String,
    },
    Withdraw {
        by: Actor,
    },
}

/// What a closing event holds: the request's complete state after it, or, in
/// messages written before every event carried the complete state, only who
/// decided and why.
// An event is a short-lived value; boxing the state would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Decided {
    Complete(ChangeRequestState),
    ByOnly(DecidedBy),
}

/// The older form of a closing event. It takes no other field, so a complete
/// state that fails to decode is an error, not this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecidedBy {
    pub by: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// Every event carries the request's complete state, so the request loads
/// from its last event alone.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ChangeRequestEvent {
    ChangeRequestOpened(ChangeRequestState),
    ChangeRequestApproving(ChangeRequestState),
    ChangeRequestApproved(Decided),
    ChangeRequestFailed(Decided),
    ChangeRequestRejected(Decided),
    ChangeRequestWithdrawn(Decided),
}

impl ChangeRequestEvent {
    /// The status the event moves the request to.
    pub fn status(&self) -> Status {
        use ChangeRequestEvent as E;
        match self {
            E::ChangeRequestOpened(_) => Status::Open,
            E::ChangeRequestApproving(_) => Status::Applying,
            E::ChangeRequestApproved(_) => Status::Approved,
            E::ChangeRequestFailed(_) => Status::Failed,
            E::ChangeRequestRejected(_) => Status::Rejected,
            E::ChangeRequestWithdrawn(_) => Status::Withdrawn,
        }
    }

    /// The request's complete state after this event, when the event holds
    /// it (every event written by this version does).
    pub fn state(&self) -> Option<&ChangeRequestState> {
        use ChangeRequestEvent as E;
        match self {
            E::ChangeRequestOpened(state)
            | E::ChangeRequestApproving(state)
            | E::ChangeRequestApproved(Decided::Complete(state))
            | E::ChangeRequestFailed(Decided::Complete(state))
            | E::ChangeRequestRejected(Decided::Complete(state))
            | E::ChangeRequestWithdrawn(Decided::Complete(state)) => Some(state),
            _ => None,
        }
    }

    /// Who decided and why, for a closing event.
    pub fn decision(&self) -> Option<(&str, Option<&str>)> {
        use ChangeRequestEvent as E;
        match self {
            E::ChangeRequestOpened(_) => None,
            E::ChangeRequestApproving(state)
            | E::ChangeRequestApproved(Decided::Complete(state))
            | E::ChangeRequestFailed(Decided::Complete(state))
            | E::ChangeRequestRejected(Decided::Complete(state))
            | E::ChangeRequestWithdrawn(Decided::Complete(state)) => Some((
                state.decided_by.as_deref().unwrap_or_default(),
                state.reason.as_deref(),
            )),
            E::ChangeRequestApproved(Decided::ByOnly(d))
            | E::ChangeRequestFailed(Decided::ByOnly(d))
            | E::ChangeRequestRejected(Decided::ByOnly(d))
            | E::ChangeRequestWithdrawn(Decided::ByOnly(d)) => {
                Some((d.by.as_str(), d.reason.as_deref()))
            }
        }
    }
}

impl DomainEvent for ChangeRequestEvent {
    fn event_type(&self) -> String {
        match self {
            ChangeRequestEvent::ChangeRequestOpened(_) => "ChangeRequestOpened",
            ChangeRequestEvent::ChangeRequestApproving(_) => "ChangeRequestApproving",
            ChangeRequestEvent::ChangeRequestApproved(_) => "ChangeRequestApproved",
            ChangeRequestEvent::ChangeRequestFailed(_) => "ChangeRequestFailed",
            ChangeRequestEvent::ChangeRequestRejected(_) => "ChangeRequestRejected",
            ChangeRequestEvent::ChangeRequestWithdrawn(_) => "ChangeRequestWithdrawn",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "2".to_owned()
    }
}

/// The change request aggregate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChangeRequest {
    pub state: Option<ChangeRequestState>,
}

/// The refusal of a command on a request that is no longer open.
fn closed(status: Status) -> DomainError {
    DomainError::ChangeRequestClosed(match status {
        Status::Applying => "being applied".to_owned(),
        other => other.as_str().to_owned(),
    })
}

impl ChangeRequest {
    fn existing(&self) -> Result<&ChangeRequestState, DomainError> {
        self.state
            .as_ref()
            .ok_or(DomainError::ChangeRequestNotFound)
    }

    fn open_state(&self) -> Result<&ChangeRequestState, DomainError> {
        let state = self.existing()?;
        if state.status == Status::Open {
            Ok(state)
        } else {
            Err(closed(state.status))
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
                let opened = ChangeRequestState {
                    id,
                    namespace,
                    scope,
                    change,
                    message,
                    base_revision,
                    author: author.name,
                    author_identity: Some(author.identity),
                    status: Status::Open,
                    decided_by: None,
                    reason: None,
                };
                match &self.state {
                    None => Ok(vec![E::ChangeRequestOpened(opened)]),
                    // A retried write opens the request it opened before.
                    Some(state)
                        if state.id == opened.id
                            && state.author_identity() == opened.author_identity()
                            && state.namespace == opened.namespace
                            && state.scope == opened.scope
                            && state.change == opened.change =>
                    {
                        Ok(vec![])
                    }
                    Some(_) => Err(DomainError::invalid(
                        "id",
                        "a change request with this id exists",
                    )),
                }
            }
            ChangeRequestCommand::Approve { by } => {
                let state = self.existing()?;
                if state.author_identity() == by.identity {
                    return Err(DomainError::SelfApproval);
                }
                match state.status {
                    Status::Open => Ok(vec![E::ChangeRequestApproving(state.decided(
                        Status::Applying,
                        &by,
                        None,
                    ))]),
                    Status::Applying => Ok(vec![]),
                    other => Err(closed(other)),
                }
            }
            ChangeRequestCommand::Conclude { by, outcome } => {
                let state = self.existing()?;
                if state.status != Status::Applying {
                    return Err(closed(state.status));
                }
                match outcome {
                    LayerOutcome::Applied => Ok(vec![E::ChangeRequestApproved(Decided::Complete(
                        state.decided(Status::Approved, &by, None),
                    ))]),
                    LayerOutcome::Refused(refusal) => match failure_reason(&refusal) {
                        None => Err(refusal),
                        Some(reason) => Ok(vec![E::ChangeRequestFailed(Decided::Complete(
                            state.decided(Status::Failed, &by, Some(reason)),
                        ))]),
                    },
                }
            }
            ChangeRequestCommand::Reject { by, reason } => {
                let state = self.open_state()?;
                Ok(vec![E::ChangeRequestRejected(Decided::Complete(
                    state.decided(Status::Rejected, &by, Some(reason)),
                ))])
            }
            ChangeRequestCommand::Withdraw { by } => {
                if self.existing()?.author_identity() != by.identity {
                    return Err(DomainError::NotAuthor);
                }
                let state = self.open_state()?;
                Ok(vec![E::ChangeRequestWithdrawn(Decided::Complete(
                    state.decided(Status::Withdrawn, &by, None),
                ))])
            }
        }
    }

    fn apply(&mut self, event: ChangeRequestEvent) {
        let status = event.status();
        if let Some(state) = event.state() {
            self.state = Some(state.clone());
        } else if let (Some(state), Some((by, reason))) = (&mut self.state, event.decision()) {
            // An older closing event: it names only who decided and why.
            state.status = status;
            state.decided_by = Some(by.to_owned());
            state.reason = reason.map(str::to_owned);
        }
    }
}
