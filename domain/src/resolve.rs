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

/// Where a merge records the source of every leaf: explain needs them, the
/// write-time checks of many contexts do not and skip the bookkeeping.
type Sources<'a> = Option<&'a mut BTreeMap<String, Source>>;

fn merge_layer(
    target: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    path: &str,
    source: &Source,
    locks: &[Lock],
    mut sources: Sources<'_>,
) {
    // Pointers are only needed for locks and sources; a merge without either
    // (the common write-time case) builds none.
    let needs_pointers = !locks.is_empty() || sources.is_some();
    for (key, value) in patch {
        let pointer = if needs_pointers {
            child_pointer(path, key)
        } else {
            String::new()
        };
        if blocking_lock(&pointer, value, locks).is_some() {
            continue;
        }
        match value {
            Value::Null => {
                target.remove(key);
                if let Some(sources) = sources.as_deref_mut() {
                    remove_sources_at_or_below(sources, &pointer);
                }
            }
            Value::Object(child_patch) => {
                let child = target
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !child.is_object() {
                    *child = Value::Object(Map::new());
                    if let Some(sources) = sources.as_deref_mut() {
                        remove_sources_at_or_below(sources, &pointer);
                    }
                }
                if let Value::Object(child) = child {
                    merge_layer(
                        child,
                        child_patch,
                        &pointer,
                        source,
                        locks,
                        sources.as_deref_mut(),
                    );
                    if let Some(sources) = sources.as_deref_mut() {
                        if child.is_empty() {
                            sources.insert(pointer, source.clone());
                        } else {
                            sources.remove(&pointer);
                        }
                    }
                }
            }
            leaf => {
                target.insert(key.clone(), leaf.clone());
                if let Some(sources) = sources.as_deref_mut() {
                    remove_sources_at_or_below(sources, &pointer);
                    sources.insert(pointer, source.clone());
                }
            }
        }
    }
}

/// A resolution in progress without explain: the document merged so far and
/// the locks in force. Contexts that share their weakest layers clone the
/// partial document after those layers instead of merging them again
/// (`crate::contexts`); applying every applicable layer in ascending weight
/// gives exactly the values of [`resolve`].
#[derive(Debug, Clone)]
pub struct Partial {
    /// Always an object; held as a `Value` so that it validates without a copy.
    values: Value,
    locks: Vec<Lock>,
}

impl Partial {
    /// The schema defaults, before any layer.
    pub fn new(defaults: &Map<String, Value>) -> Self {
        let mut values = Map::new();
        merge_layer(&mut values, defaults, "", &Source::SchemaDefault, &[], None);
        Partial {
            values: Value::Object(values),
            locks: Vec::new(),
        }
    }

    /// Merges the next layer, weakest first; its locks bind the layers after it.
    pub fn apply(&mut self, layer: &LayerRef<'_>) {
        if let (Value::Object(values), Value::Object(patch)) = (&mut self.values, layer.values) {
            // Sources are not recorded, so the source given is never read.
            merge_layer(values, patch, "", &Source::SchemaDefault, &self.locks, None);
        }
        self.locks
            .extend(layer.lock.iter().map(|p| (p.clone(), layer.scope.clone())));
    }

    /// The document resolved so far.
    pub fn values(&self) -> &Value {
        &self.values
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
        Some(&mut sources),
    );
    let mut locks: Vec<Lock> = Vec::new();
    for layer in applicable {
        let source = Source::Layer {
            scope: layer.scope.clone(),
            revision: layer.revision,
        };
        if let Value::Object(patch) = layer.values {
            merge_layer(&mut values, patch, "", &source, &locks, Some(&mut sources));
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
