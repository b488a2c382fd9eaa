//! What the client knows: the latest feed message of every item it follows.

use std::collections::BTreeMap;

use ecs_domain::feed::{FeedItem, FeedMessage};
use ecs_domain::{
    LayerState, NamespaceName, NamespaceState, Precedence, Resolved, Scope, TenantId, TenantState,
    resolve,
};
use serde::{Deserialize, Serialize};

/// The configuration known to a client, keyed as the feed keys it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The latest feed message per feed key.
    items: BTreeMap<String, FeedMessage>,
    /// The highest position applied.
    pub position: u64,
    /// How many items were removed (they carry no position); with
    /// `position`, tells the cache writer that the state changed.
    #[serde(skip)]
    pub removed: u64,
}

impl State {
    /// Applies a feed message unless the item already holds this position or a
    /// newer one. Returns whether it changed anything.
    pub fn apply(&mut self, message: FeedMessage) -> bool {
        let key = message.item.key();
        if self
            .items
            .get(&key)
            .is_some_and(|m| m.position >= message.position)
        {
            return false;
        }
        self.position = self.position.max(message.position);
        self.items.insert(key, message);
        true
    }

    /// The highest position applied of the items that resolve `namespace`
    /// for `tenants` (every tenant when empty): its definition, its layers
    /// and the tenants' items, as the feed filters select them.
    pub fn applied_position_of(&self, namespace: &NamespaceName, tenants: &[TenantId]) -> u64 {
        let followed = |tenant: Option<&TenantId>| {
            tenants.is_empty() || tenant.is_none_or(|t| tenants.contains(t))
        };
        self.items
            .values()
            .filter(|m| match &m.item {
                FeedItem::Namespace { namespace: n, .. } => n == namespace,
                FeedItem::Layer {
                    namespace: n,
                    scope,
                    ..
                } => n == namespace && followed(scope.tenant.as_ref()),
                FeedItem::Tenant { tenant, .. } => followed(Some(tenant)),
            })
            .map(|m| m.position)
            .max()
            .unwrap_or(0)
    }

    /// Forgets the item under `key`, removed from the feed. Returns whether
    /// the client held it.
    pub fn remove(&mut self, key: &str) -> bool {
        let held = self.items.remove(key).is_some();
        if held {
            self.removed += 1;
        }
        held
    }

    /// Forgets an erased tenant: its item and every layer of its scope.
    pub fn remove_tenant(&mut self, tenant: &TenantId) {
        let before = self.items.len();
        self.items.retain(|_, message| match &message.item {
            FeedItem::Tenant { tenant: t, .. } => t != tenant,
            FeedItem::Layer { scope, .. } => scope.tenant.as_ref() != Some(tenant),
            FeedItem::Namespace { .. } => true,
        });
        self.removed += (before - self.items.len()) as u64;
    }

    pub fn namespace(&self, namespace: &NamespaceName) -> Option<NamespaceState> {
        match &self.items.get(&format!("namespace.{namespace}"))?.item {
            FeedItem::Namespace {
                namespace,
                revision,
                namespace_kind,
                description,
                schema,
            } => Some(NamespaceState {
                name: namespace.clone(),
                kind: *namespace_kind,
                description: description.clone(),
                schema: schema.clone(),
                approval: None,
                revision: *revision,
            }),
            _ => None,
        }
    }

    pub fn tenant(&self, tenant: &TenantId) -> Option<TenantState> {
        match &self.items.get(&format!("tenant.{tenant}"))?.item {
            FeedItem::Tenant {
                tenant,
                revision,
                edition,
                name,
            } => Some(TenantState {
                id: tenant.clone(),
                name: name.clone(),
                edition: edition.clone(),
                revision: *revision,
                erased: false,
            }),
            _ => None,
        }
    }

    /// Every layer of a namespace.
    pub fn layers(&self, namespace: &NamespaceName) -> Vec<LayerState> {
        let prefix = format!("layer.{namespace}.");
        self.items
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter_map(|(_, m)| match &m.item {
                FeedItem::Layer {
                    namespace,
                    scope,
                    revision,
                    values,
                    lock,
                } => Some(LayerState {
                    namespace: namespace.clone(),
                    scope: scope.clone(),
                    values: values.clone(),
                    lock: lock.clone(),
                    revision: *revision,
                }),
                _ => None,
            })
            .collect()
    }

    /// Resolves a namespace for a context exactly as the server does.
    pub fn resolve(
        &self,
        namespace: &NamespaceName,
        context: &Scope,
        precedence: &Precedence,
    ) -> Result<(Resolved, u64), crate::ClientError> {
        let ns = self
            .namespace(namespace)
            .ok_or_else(|| crate::ClientError::NamespaceNotFound(namespace.to_string()))?;
        let edition = match &context.tenant {
            None => None,
            Some(tenant) => Some(
                self.tenant(tenant)
                    .ok_or_else(|| crate::ClientError::TenantNotFound(tenant.to_string()))?
                    .edition,
            ),
        };
        let layers = self.layers(namespace);
        let refs: Vec<_> = layers.iter().map(LayerState::as_ref).collect();
        let resolved = resolve(
            &ns.defaults(),
            &refs,
            &context.clone().with_tenant_edition(edition),
            precedence,
        );
        Ok((resolved, self.position))
    }
}
