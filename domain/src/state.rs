//! The current state of the namespace, layer and tenant aggregates: what
//! the aggregates keep, what the read model stores and what the ports answer.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{EditionName, NamespaceName, TenantId};
use crate::json::schema_defaults;
use crate::policy::ApprovalPolicy;
use crate::resolve::LayerRef;
use crate::scope::Scope;

/// What a namespace's documents are: configuration, or feature flags in
/// flagd's format (`{"flags": {...}}`, checked by `crate::flags`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NamespaceKind {
    #[default]
    Config,
    Flags,
}

impl NamespaceKind {
    pub fn is_config(&self) -> bool {
        *self == NamespaceKind::Config
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            NamespaceKind::Config => "config",
            NamespaceKind::Flags => "flags",
        }
    }
}

/// The current state of a namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamespaceState {
    pub name: NamespaceName,
    /// Absent in events older than flags: those namespaces hold configuration.
    #[serde(default, skip_serializing_if = "NamespaceKind::is_config")]
    pub kind: NamespaceKind,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub schema: Option<Value>,
    /// Where writes need approval (`None`: nowhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalPolicy>,
    pub revision: u64,
}

impl NamespaceState {
    /// The schema's defaults, the base of every resolution.
    pub fn defaults(&self) -> serde_json::Map<String, Value> {
        self.schema
            .as_ref()
            .map(schema_defaults)
            .unwrap_or_default()
    }
}

/// A layer at one revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerState {
    pub namespace: NamespaceName,
    pub scope: Scope,
    pub values: Value,
    #[serde(default)]
    pub lock: Vec<String>,
    pub revision: u64,
}

impl LayerState {
    pub fn as_ref(&self) -> LayerRef<'_> {
        LayerRef {
            scope: &self.scope,
            values: &self.values,
            revision: self.revision,
            lock: &self.lock,
        }
    }
}

/// The current state of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantState {
    pub id: TenantId,
    #[serde(default)]
    pub name: Option<String>,
    pub edition: EditionName,
    pub revision: u64,
    /// The tenant's data was erased; it can no longer be used.
    #[serde(default)]
    pub erased: bool,
}
