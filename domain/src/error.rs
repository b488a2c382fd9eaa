//! Why a command was refused.

use serde::{Deserialize, Serialize};

use crate::scope::Scope;

/// One place where a document fails the namespace's JSON Schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaViolation {
    /// JSON pointer of the failing value in the resolved document.
    pub pointer: String,
    pub message: String,
    /// The layer whose resolved document fails, when checking a schema change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<Scope>,
    /// The context whose resolved document fails, when checking a layer write:
    /// a write is checked in every context it can change (ADR 11), the
    /// tenant's edition filled in as a reader's request would.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Scope>,
}

/// A write that would override a locked value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockViolation {
    /// The pointer the write sets.
    pub pointer: String,
    /// The pointer the lock protects.
    pub locked_pointer: String,
    /// The scope of the layer holding the lock.
    pub locked_by: Scope,
}

/// A refused command. Each variant maps to one HTTP status at the edge.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DomainError {
    #[error("the change request does not exist")]
    ChangeRequestNotFound,
    #[error("the change request is already {0}")]
    ChangeRequestClosed(String),
    #[error(
        "the author of a change request may not approve it (nor another credential of the same identity)"
    )]
    SelfApproval,
    #[error("only the author may withdraw a change request")]
    NotAuthor,
    #[error("the token does not exist")]
    TokenNotFound,
    #[error("namespace {0} does not exist")]
    NamespaceNotFound(String),
    #[error("tenant {0} does not exist")]
    TenantNotFound(String),
    #[error("tenant {0} was erased")]
    TenantErased(String),
    #[error("the layer at {scope} of namespace {namespace} has no revisions")]
    LayerNotFound { namespace: String, scope: Scope },
    #[error("revision {revision} does not exist (the layer is at revision {current})")]
    RevisionNotFound { revision: u64, current: u64 },
    #[error("expected revision {expected}, but the current revision is {actual}")]
    StaleRevision { expected: u64, actual: u64 },
    #[error("the resolved document fails the namespace's JSON Schema")]
    SchemaViolations(Vec<SchemaViolation>),
    #[error("the write overrides a locked value")]
    LockViolations(Vec<LockViolation>),
    #[error("invalid JSON Schema: {0}")]
    InvalidSchema(String),
    #[error("{field}: {reason}")]
    InvalidInput { field: String, reason: String },
    #[error("the configuration store is unavailable: {0}")]
    Unavailable(String),
    /// The change's message would exceed what the store takes in one message.
    #[error("the change is too large to store: {0}")]
    TooLarge(String),
}

impl DomainError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        DomainError::InvalidInput {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
