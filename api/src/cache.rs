//! Resolved reads from memory: the namespaces and tenant editions as of the
//! projections' applied position, loaded once per position and shared by
//! every read until the next change is applied; and the flags parsed (their
//! targeting compiled) for each context OFREP evaluates in, derived once per
//! position the same way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ecs_domain::flags::FlagSet;
use ecs_domain::{EditionName, NamespaceName, Scope, TenantId};
use ecs_projections::queries::NamespaceSnapshot;
use ecs_projections::{ProjectionHandle, ReadModel};

#[derive(Default)]
struct Generation {
    position: u64,
    namespaces: HashMap<NamespaceName, Option<Arc<NamespaceSnapshot>>>,
    editions: HashMap<TenantId, Option<EditionName>>,
    flag_sets: HashMap<FlagSetKey, Option<Arc<FlagSet>>>,
}

/// A flags namespace, the context evaluated in, and whether the caller sees
/// sensitive values unmasked.
pub type FlagSetKey = (NamespaceName, Scope, bool);

/// The contexts whose flags one generation keeps: contexts are as many as
/// callers name, so past this many the rest are derived on every request.
const FLAG_SETS_PER_GENERATION: usize = 10_000;

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

    /// The flags of `key`'s context (`None`: not a flags namespace) as of the
    /// current position, derived by `derive` once per position.
    pub async fn flag_set<E, Fut>(
        &self,
        key: FlagSetKey,
        derive: impl FnOnce() -> Fut,
    ) -> Result<Option<Arc<FlagSet>>, E>
    where
        Fut: std::future::Future<Output = Result<Option<FlagSet>, E>>,
    {
        let position = self.projections.status().applied;
        {
            let generation = self.lock();
            if generation.position == position
                && let Some(found) = generation.flag_sets.get(&key)
            {
                return Ok(found.clone());
            }
        }
        let derived = derive().await?.map(Arc::new);
        self.store(position, |g| {
            if g.flag_sets.len() < FLAG_SETS_PER_GENERATION {
                g.flag_sets.insert(key, derived.clone());
            }
        });
        Ok(derived)
    }

    /// Stores into the generation of `position` unless it moved on meanwhile.
    fn store(&self, position: u64, update: impl FnOnce(&mut Generation)) {
        let mut generation = self.lock();
        if generation.position == position {
            update(&mut generation);
        }
    }
}
