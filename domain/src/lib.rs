//! The ECS configuration model. This crate does no I/O: identifiers, scopes,
//! the aggregates with their commands and events, JSON Schema checks and
//! resolution are pure functions shared by the server and the SDK, so
//! every reader resolves exactly as the server does.

pub mod audit;
pub mod change_request;
pub mod contexts;
pub mod dimension;
pub mod drift;
pub mod error;
pub mod feed;
pub mod flags;
pub mod identity;
pub mod ids;
pub mod json;
pub mod layer;
pub mod namespace;
pub mod policy;
pub mod ports;
pub mod precedence;
pub mod resolve;
pub mod revision;
pub mod role;
pub mod schema;
pub mod scope;
pub mod sealed;
pub mod secrets;
pub mod sensitive;
pub mod state;
pub mod tenant;
pub mod token;

pub use dimension::Dimension;
pub use error::{DomainError, LockViolation, SchemaViolation};
pub use identity::{Actor, Identity};
pub use ids::{
    ChangeRequestId, EditionName, EnvName, IdError, InstanceId, NamespaceName, ServiceName,
    TenantId, TokenId,
};
pub use layer::{Layer, LayerAction, LayerChange, LayerCommand, LayerEvent};
pub use namespace::{Namespace, NamespaceCommand, NamespaceEvent};
pub use policy::ApprovalPolicy;
pub use ports::{ConfigReader, Services};
pub use precedence::Precedence;
pub use resolve::{BindingLock, Context, LayerRef, Resolved, Source, binding_locks, resolve};
pub use role::{Decision, Role};
pub use scope::Scope;
pub use secrets::SecretRef;
pub use sensitive::{Reading, Sensitivity, mask_for, mask_schema_for};
pub use state::{LayerState, NamespaceKind, NamespaceState, TenantState};
pub use tenant::{Tenant, TenantCommand, TenantEvent};
pub use token::{Token, TokenCommand, TokenEvent, TokenState};
