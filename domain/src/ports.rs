//! What the aggregates ask of the outside world, as a port trait, and an
//! in-memory implementation of it.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::DomainError;
use crate::ids::{EditionName, NamespaceName, TenantId};
use crate::precedence::Precedence;
use crate::scope::Scope;
use crate::state::{LayerState, NamespaceState, TenantState};

/// Read access to the current configuration, for the rules that span
/// aggregates (schemas against layers, locks across layers).
#[async_trait]
pub trait ConfigReader: Send + Sync {
    async fn namespace(&self, name: &NamespaceName) -> Result<Option<NamespaceState>, DomainError>;
    async fn tenant(&self, id: &TenantId) -> Result<Option<TenantState>, DomainError>;
    /// Every layer of a namespace that has at least one revision.
    async fn layers(&self, namespace: &NamespaceName) -> Result<Vec<LayerState>, DomainError>;
    /// The layers of a namespace whose scope overlaps `scope` (the only ones
    /// that can apply together with a layer there) and the edition of each
    /// usable tenant they name: what a layer write needs to find every
    /// context it can change (ADR 11). A store should answer it in one query;
    /// this default filters [`ConfigReader::layers`] and asks for each tenant
    /// apart.
    async fn overlapping_layers(
        &self,
        namespace: &NamespaceName,
        scope: &Scope,
    ) -> Result<NamespaceLayers, DomainError> {
        let layers: Vec<LayerState> = self
            .layers(namespace)
            .await?
            .into_iter()
            .filter(|l| l.scope.overlaps(scope))
            .collect();
        let mut editions = BTreeMap::new();
        for tenant in layers.iter().filter_map(|l| l.scope.tenant.as_ref()) {
            if !editions.contains_key(tenant)
                && let Some(state) = self.tenant(tenant).await?
            {
                editions.insert(tenant.clone(), state.edition);
            }
        }
        Ok(NamespaceLayers { layers, editions })
    }
    /// One past revision of a layer.
    async fn layer_revision(
        &self,
        namespace: &NamespaceName,
        scope: &Scope,
        revision: u64,
    ) -> Result<Option<LayerState>, DomainError>;
}

/// Layers of a namespace with the editions of the tenants they name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NamespaceLayers {
    pub layers: Vec<LayerState>,
    /// The edition of each usable (known, not erased) tenant that has a layer
    /// in the namespace; a reader's context naming the tenant resolves with it.
    pub editions: BTreeMap<TenantId, EditionName>,
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
