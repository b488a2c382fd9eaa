//! Resolution: schema defaults, then every applicable layer deep-merged in
//! precedence order, with locks and explain.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::LockViolation;
use crate::json::{child_pointer, is_at_or_below};
use crate::precedence::Precedence;
use crate::scope::Scope;

/// A request context: the dimensions a reader asks about. When it names a
/// tenant and no edition, the caller fills in the tenant's edition before
/// resolving (see [`Context::with_tenant_edition`]).
pub type Context = Scope;

impl Scope {
    /// The effective context: an explicit edition wins, else the tenant's.
    pub fn with_tenant_edition(mut self, tenant_edition: Option<crate::EditionName>) -> Self {
        if self.edition.is_none() {
            self.edition = tenant_edition;
        }
        self
    }
}

/// A layer as resolution sees it.
#[derive(Debug, Clone, Copy)]
pub struct LayerRef<'a> {
    pub scope: &'a Scope,
    pub values: &'a Value,
    pub revision: u64,
    pub lock: &'a [String],
}

/// Where a resolved value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "origin", rename_all = "kebab-case")]
pub enum Source {
    /// A `default` of the namespace's JSON Schema.
    SchemaDefault,
    /// A layer, at a revision.
    Layer { scope: Scope, revision: u64 },
}

/// A resolved document and, per leaf pointer, its source.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub values: Value,
    pub sources: BTreeMap<String, Source>,
}

/// A lock in force during resolution: the pointer and the scope that locked it.
type Lock = (String, Scope);

/// The lock that forbids writing `value` at `pointer`, if any: writing at or
/// below a locked pointer is forbidden, and so is replacing (or removing) an
/// ancestor of a locked pointer with anything but an object.
fn blocking_lock<'a>(pointer: &str, value: &Value, locks: &'a [Lock]) -> Option<&'a Lock> {
    locks.iter().find(|(locked, _)| {
        is_at_or_below(pointer, locked) || (!value.is_object() && is_at_or_below(locked, pointer))
    })
}

fn remove_sources_at_or_below(sources: &mut BTreeMap<String, Source>, pointer: &str) {
    sources.retain(|p, _| !is_at_or_below(p, pointer));
}

fn merge_layer(
    target: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    path: &str,
    source: &Source,
    locks: &[Lock],
    sources: &mut BTreeMap<String, Source>,
) {
    for (key, value) in patch {
        let pointer = child_pointer(path, key);
        if blocking_lock(&pointer, value, locks).is_some() {
            continue;
        }
        match value {
            Value::Null => {
                target.remove(key);
                remove_sources_at_or_below(sources, &pointer);
            }
            Value::Object(child_patch) => {
                let child = target
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !child.is_object() {
                    *child = Value::Object(Map::new());
                    remove_sources_at_or_below(sources, &pointer);
                }
                if let Value::Object(child) = child {
                    merge_layer(child, child_patch, &pointer, source, locks, sources);
                    if child.is_empty() {
                        sources.insert(pointer, source.clone());
                    } else {
                        sources.remove(&pointer);
                    }
                }
            }
            leaf => {
                target.insert(key.clone(), leaf.clone());
                remove_sources_at_or_below(sources, &pointer);
                sources.insert(pointer, source.clone());
            }
        }
    }
}

/// Resolves a namespace for an effective context: schema `defaults` first,
/// then each layer whose scope lies within `context`, weakest first. A layer's
/// locks bind every layer applied after it.
pub fn resolve(
    defaults: &Map<String, Value>,
    layers: &[LayerRef<'_>],
    context: &Context,
    precedence: &Precedence,
) -> Resolved {
    let mut applicable: Vec<&LayerRef<'_>> = layers
        .iter()
        .filter(|layer| layer.scope.is_within(context))
        .collect();
    applicable.sort_by_key(|layer| precedence.weight(layer.scope));

    let mut values = Map::new();
    let mut sources = BTreeMap::new();
    merge_layer(
        &mut values,
        defaults,
        "",
        &Source::SchemaDefault,
        &[],
        &mut sources,
    );
    let mut locks: Vec<Lock> = Vec::new();
    for layer in applicable {
        let source = Source::Layer {
            scope: layer.scope.clone(),
            revision: layer.revision,
        };
        if let Value::Object(patch) = layer.values {
            merge_layer(&mut values, patch, "", &source, &locks, &mut sources);
        }
        locks.extend(layer.lock.iter().map(|p| (p.clone(), layer.scope.clone())));
    }
    Resolved {
        values: Value::Object(values),
        sources,
    }
}

/// A lock that binds a layer: a value at `pointer` (or below it) that the
/// layer at `locked_by` locks, so the bound layer may not set it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingLock {
    pub pointer: String,
    pub locked_by: Scope,
}

/// The locks that bind a layer at `scope`: those held by other layers that
/// can apply together with it and weigh less. A write at `scope` that sets a
/// value they cover is refused ([`lock_violations`]).
pub fn binding_locks(
    scope: &Scope,
    others: &[LayerRef<'_>],
    precedence: &Precedence,
) -> Vec<BindingLock> {
    let weight = precedence.weight(scope);
    others
        .iter()
        .filter(|l| {
            l.scope != scope && l.scope.overlaps(scope) && precedence.weight(l.scope) < weight
        })
        .flat_map(|l| {
            l.lock.iter().map(|p| BindingLock {
                pointer: p.clone(),
                locked_by: l.scope.clone(),
            })
        })
        .collect()
}

/// The locks a write of `values` at `scope` would break: locks held by other
/// layers that can apply together with it and weigh less.
pub fn lock_violations(
    scope: &Scope,
    values: &Value,
    others: &[LayerRef<'_>],
    precedence: &Precedence,
) -> Vec<LockViolation> {
    let locks: Vec<Lock> = binding_locks(scope, others, precedence)
        .into_iter()
        .map(|l| (l.pointer, l.locked_by))
        .collect();
    let mut violations = Vec::new();
    if locks.is_empty() {
        return violations;
    }
    fn walk(path: &str, map: &Map<String, Value>, locks: &[Lock], out: &mut Vec<LockViolation>) {
        for (key, value) in map {
            let pointer = child_pointer(path, key);
            if let Some((locked, by)) = blocking_lock(&pointer, value, locks) {
                out.push(LockViolation {
                    pointer,
                    locked_pointer: locked.clone(),
                    locked_by: by.clone(),
                });
            } else if let Value::Object(child) = value {
                walk(&pointer, child, locks, out);
            }
        }
    }
    if let Value::Object(map) = values {
        walk("", map, &locks, &mut violations);
    }
    violations
}
