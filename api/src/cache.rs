//! Resolved reads from memory: the namespaces and tenant editions as of the
//! projections' applied position, loaded once per position and shared by
//! every read until the next change is applied.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ecs_domain::{EditionName, NamespaceName, TenantId};
use ecs_projections::queries::NamespaceSnapshot;
use ecs_projections::{ProjectionHandle, ReadModel};

#[derive(Default)]
struct Generation {
    position: u64,
    namespaces: HashMap<NamespaceName, Option<Arc<NamespaceSnapshot>>>,
    editions: HashMap<TenantId, Option<EditionName>>,
}

/// The snapshot cache of current reads.
pub struct SnapshotCache {
    read: ReadModel,
    projections: ProjectionHandle,
    generation: Mutex<Generation>,
}

/// What a current read resolves from.
pub struct Current {
    pub snapshot: Option<Arc<NamespaceSnapshot>>,
    /// The edition of the context's tenant (`None`: unknown or erased).
    pub edition: Option<EditionName>,
}

impl SnapshotCache {
    pub fn new(read: ReadModel, projections: ProjectionHandle) -> Self {
        SnapshotCache {
            read,
            projections,
            generation: Mutex::new(Generation::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generation> {
        self.generation.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The namespace (`None`: unknown) and the tenants' editions as of the
    /// applied position. A write answers only once applied, so a read after
    /// it always sees a newer position and reloads.
    pub async fn current(
        &self,
        ns: &NamespaceName,
        tenant: Option<&TenantId>,
    ) -> sqlx::Result<Current> {
        // A rebuild switches in tables equal to the current ones at the same
        // position, so what is cached per position stays true across it.
        let position = self.projections.status().applied;
        let (snapshot, editions) = {
            let mut generation = self.lock();
            if generation.position != position {
                *generation = Generation {
                    position,
                    ..Generation::default()
                };
            }
            let edition = tenant.and_then(|t| generation.editions.get(t).cloned());
            (generation.namespaces.get(ns).cloned(), edition)
        };
        let snapshot = match snapshot {
            Some(snapshot) => snapshot,
            None => {
                let loaded = self
                    .read
                    .snapshot(ns, None, ecs_projections::Layers::All, Some(position))
                    .await?
                    .map(|(s, _)| Arc::new(s));
                self.store(position, |g| {
                    g.namespaces.insert(ns.clone(), loaded.clone());
                });
                loaded
            }
        };
        let edition = match (tenant, editions) {
            (None, _) => None,
            (Some(_), Some(edition)) => edition,
            (Some(tenant), None) => {
                let loaded = self.read.edition_at(tenant, position).await?;
                self.store(position, |g| {
                    g.editions.insert(tenant.clone(), loaded.clone());
                });
                loaded
            }
        };
        Ok(Current { snapshot, edition })
    }

    /// Stores into the generation of `position` unless it moved on meanwhile.
    fn store(&self, position: u64, update: impl FnOnce(&mut Generation)) {
        let mut generation = self.lock();
        if generation.position == position {
            update(&mut generation);
        }
    }
}
