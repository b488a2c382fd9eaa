//! What the aggregates ask of the outside world, as a port trait, and an
//! in-memory implementation of it.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::DomainError;
use crate::ids::{NamespaceName, TenantId};
use crate::layer::LayerState;
use crate::namespace::NamespaceState;
use crate::precedence::Precedence;
use crate::scope::Scope;
use crate::tenant::TenantState;

/// Read access to the current configuration, for the rules that span
/// aggregates (schemas against layers, locks across layers).
#[async_trait]
pub trait ConfigReader: Send + Sync {
    async fn namespace(&self, name: &NamespaceName) -> Result<Option<NamespaceState>, DomainError>;
    async fn tenant(&self, id: &TenantId) -> Result<Option<TenantState>, DomainError>;
    /// Every layer of a namespace that has at least one revision.
    async fn layers(&self, namespace: &NamespaceName) -> Result<Vec<LayerState>, DomainError>;
    /// One past revision of a layer.
    async fn layer_revision(
        &self,
        namespace: &NamespaceName,
        scope: &Scope,
        revision: u64,
    ) -> Result<Option<LayerState>, DomainError>;
}

/// The services handed to the namespace and layer aggregates.
#[derive(Clone)]
pub struct Services {
    pub reader: Arc<dyn ConfigReader>,
    pub precedence: Precedence,
}

/// Configuration held in memory: what a replay of events builds. Used by the
/// aggregate tests and by readers that rebuild state from the stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemoryConfig {
    pub namespaces: BTreeMap<NamespaceName, NamespaceState>,
    pub tenants: BTreeMap<TenantId, TenantState>,
    pub layers: BTreeMap<(NamespaceName, Scope), LayerState>,
    pub history: BTreeMap<(NamespaceName, Scope), Vec<LayerState>>,
}

impl MemoryConfig {
    pub fn put_namespace(&mut self, state: NamespaceState) {
        self.namespaces.insert(state.name.clone(), state);
    }

    pub fn put_tenant(&mut self, state: TenantState) {
        self.tenants.insert(state.id.clone(), state);
    }

    pub fn put_layer(&mut self, state: LayerState) {
        let key = (state.namespace.clone(), state.scope.clone());
        self.history
            .entry(key.clone())
            .or_default()
            .push(state.clone());
        self.layers.insert(key, state);
    }
}

#[async_trait]
impl ConfigReader for MemoryConfig {
    async fn namespace(&self, name: &NamespaceName) -> Result<Option<NamespaceState>, DomainError> {
        Ok(self.namespaces.get(name).cloned())
    }

    async fn tenant(&self, id: &TenantId) -> Result<Option<TenantState>, DomainError> {
        Ok(self.tenants.get(id).cloned())
    }

    async fn layers(&self, namespace: &NamespaceName) -> Result<Vec<LayerState>, DomainError> {
        Ok(self
            .layers
            .values()
            .filter(|l| &l.namespace == namespace)
            .cloned()
            .collect())
    }

    async fn layer_revision(
        &self,
        namespace: &NamespaceName,
        scope: &Scope,
        revision: u64,
    ) -> Result<Option<LayerState>, DomainError> {
        Ok(self
            .history
            .get(&(namespace.clone(), scope.clone()))
            .and_then(|h| h.iter().find(|l| l.revision == revision))
            .cloned())
    }
}
