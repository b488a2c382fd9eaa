//! The contexts a layer write can change, and the write's schema check in
//! every one of them (ADR 11).
//!
//! A layer applies in every context its scope lies within, so a write to a
//! weak layer (global, an env) changes the resolved document of every context
//! that combines it with stronger layers: a tenant's, an edition's, an env and
//! a tenant together. The contexts worth checking are the combinations (joins)
//! of the namespace's layer scopes: any other context resolves from the same
//! layers as one of them, so its document is one of theirs. A context naming a
//! tenant carries the tenant's edition, as a reader's request does.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::ControlFlow;

use serde_json::{Map, Value};

use crate::dimension::Dimension;
use crate::error::SchemaViolation;
use crate::ids::{EditionName, TenantId};
use crate::precedence::Precedence;
use crate::resolve::{LayerRef, Partial, resolve};
use crate::schema::CompiledSchema;
use crate::scope::Scope;
use crate::state::NamespaceKind;

/// The most violations one refusal lists: enough to repair the first
/// contexts, without an answer that grows with the number of tenants.
pub const MAX_REPORTED_VIOLATIONS: usize = 100;

/// The context in which a reader naming `scope` resolves: the tenant's
/// edition filled in unless the scope fixes one.
pub fn effective(scope: &Scope, editions: &BTreeMap<TenantId, EditionName>) -> Scope {
    match (&scope.tenant, &scope.edition) {
        (Some(tenant), None) => scope
            .clone()
            .with_tenant_edition(editions.get(tenant).cloned()),
        _ => scope.clone(),
    }
}

/// The smallest context within which both scopes lie (they must overlap).
fn join(a: &Scope, b: &Scope) -> Scope {
    Scope {
        env: a.env.clone().or_else(|| b.env.clone()),
        service: a.service.clone().or_else(|| b.service.clone()),
        tenant: a.tenant.clone().or_else(|| b.tenant.clone()),
        edition: a.edition.clone().or_else(|| b.edition.clone()),
    }
}

/// Closes `contexts` under joins with `bases`: after it, every join of a
/// context with any overlapping subset of the bases is in the set. Each base
/// joins every context present when its turn comes, including the joins of
/// the bases before it, so one pass suffices.
fn close(contexts: &mut BTreeSet<Scope>, bases: &BTreeSet<Scope>) {
    for base in bases {
        let joined: Vec<Scope> = contexts
            .iter()
            .filter(|context| base.overlaps(context))
            .map(|context| join(context, base))
            .collect();
        contexts.extend(joined);
    }
}

/// Every context whose resolved document a write at `written` can change, the
/// written scope's own context first: the joins of the written scope with the
/// overlapping scopes among `scopes` (the namespace's other layers).
///
/// Layers of different tenants never combine, so the closure is computed
/// once over the layers that name no tenant and then once per tenant over
/// that tenant's few layers: linear in the number of tenants, not quadratic.
pub fn affected_contexts<'a>(
    written: &Scope,
    scopes: impl IntoIterator<Item = &'a Scope>,
    editions: &BTreeMap<TenantId, EditionName>,
) -> Vec<Scope> {
    let own = effective(written, editions);
    let mut shared = BTreeSet::new();
    let mut per_tenant: BTreeMap<TenantId, BTreeSet<Scope>> = BTreeMap::new();
    for scope in scopes {
        let base = effective(scope, editions);
        // A base within the written scope adds nothing to a join with it;
        // one that does not overlap it never applies together with it.
        if base.is_within(&own) || !base.overlaps(&own) {
            continue;
        }
        match &base.tenant {
            None => {
                shared.insert(base);
            }
            Some(tenant) => {
                per_tenant.entry(tenant.clone()).or_default().insert(base);
            }
        }
    }
    let mut common = BTreeSet::from([own.clone()]);
    close(&mut common, &shared);
    let mut all = common.clone();
    for bases in per_tenant.values() {
        let mut with_tenant = common.clone();
        close(&mut with_tenant, bases);
        all.extend(with_tenant);
    }
    all.remove(&own);
    std::iter::once(own).chain(all).collect()
}

/// Resolves every context in `contexts` from `layers` and hands each document
/// to `visit`, in an order that shares work: contexts are sorted by the
/// sequence of layers that apply to them (weakest first), and the partial
/// document after a common prefix of layers is merged once, then cloned for
/// each context that continues from it. The documents equal those of
/// [`resolve`]; `visit` may stop the walk early.
pub fn resolve_each(
    defaults: &Map<String, Value>,
    layers: &[LayerRef<'_>],
    contexts: &[Scope],
    precedence: &Precedence,
    mut visit: impl FnMut(&Scope, &Value) -> ControlFlow<()>,
) {
    let index: HashMap<&Scope, usize> = layers
        .iter()
        .enumerate()
        .map(|(i, layer)| (layer.scope, i))
        .collect();
    let mut sequences: Vec<(Vec<usize>, &Scope)> = contexts
        .iter()
        .map(|context| {
            let mut sequence: Vec<usize> = sub_scopes(context)
                .iter()
                .filter_map(|scope| index.get(scope).copied())
                .collect();
            sequence.sort_by_key(|&i| precedence.weight(layers[i].scope));
            (sequence, context)
        })
        .collect();
    sequences.sort();

    let base = Partial::new(defaults);
    // The partial documents after each layer of the current sequence.
    let mut stack: Vec<(usize, Partial)> = Vec::new();
    for (sequence, context) in &sequences {
        let shared = stack
            .iter()
            .zip(sequence)
            .take_while(|((done, _), next)| done == *next)
            .count();
        stack.truncate(shared);
        for &next in &sequence[shared..] {
            let mut partial = stack
                .last()
                .map_or_else(|| base.clone(), |(_, p)| p.clone());
            partial.apply(&layers[next]);
            stack.push((next, partial));
        }
        let document = stack.last().map_or(&base, |(_, p)| p).values();
        if visit(context, document).is_break() {
            return;
        }
    }
}

/// Every scope within `context`: the subsets of the dimensions it fixes. A
/// layer applies to the context exactly when its scope is one of them.
fn sub_scopes(context: &Scope) -> Vec<Scope> {
    let fixed: Vec<Dimension> = Dimension::ALL
        .into_iter()
        .filter(|d| context.fixes(*d))
        .collect();
    (0..1u8 << fixed.len())
        .map(|mask| {
            let keep = |d: Dimension| {
                fixed
                    .iter()
                    .position(|f| *f == d)
                    .is_some_and(|i| mask & (1 << i) != 0)
            };
            Scope {
                env: context.env.clone().filter(|_| keep(Dimension::Env)),
                service: context.service.clone().filter(|_| keep(Dimension::Service)),
                tenant: context.tenant.clone().filter(|_| keep(Dimension::Tenant)),
                edition: context.edition.clone().filter(|_| keep(Dimension::Edition)),
            }
        })
        .collect()
}

/// The namespace's schema, compiled, its defaults and its kind: what every
/// context's check needs.
pub struct SchemaCheck<'a> {
    /// The schema and its compiled form, when the namespace has one.
    pub schema: Option<(&'a Value, &'a CompiledSchema)>,
    /// A flags namespace's documents must also be valid flags.
    pub kind: NamespaceKind,
    pub defaults: &'a Map<String, Value>,
    pub precedence: &'a Precedence,
}

/// A layer write as the check sees it: the layer's revision before (absent
/// for a new layer) and after the write.
pub struct LayerWrite<'a> {
    pub before: Option<LayerRef<'a>>,
    pub after: LayerRef<'a>,
}

impl SchemaCheck<'_> {
    fn violations(&self, document: &Value) -> Vec<SchemaViolation> {
        let mut found = match self.schema {
            Some((schema, compiled)) => {
                crate::secrets::schema_violations(compiled, schema, document)
            }
            None => Vec::new(),
        };
        if self.kind == NamespaceKind::Flags
            && let Err(flags) = crate::flags::parse_flag_set(document)
        {
            found.extend(flags);
        }
        found
    }

    /// The schema violations a write causes, each naming its context (at most
    /// [`MAX_REPORTED_VIOLATIONS`]). In the written scope's own context every
    /// violation counts, as the writer sets that document directly; in any
    /// other context only those the write introduces, so that a context
    /// already failing (through a schema or layers older than this check)
    /// does not block writes that do not make it worse.
    pub fn write_violations(
        &self,
        write: &LayerWrite<'_>,
        others: &[LayerRef<'_>],
        editions: &BTreeMap<TenantId, EditionName>,
    ) -> Vec<SchemaViolation> {
        let written = write.after.scope;
        let contexts = affected_contexts(written, others.iter().map(|l| l.scope), editions);
        let own = &contexts[0];
        let mut after: Vec<LayerRef<'_>> = others.to_vec();
        after.push(write.after);
        let mut before: Vec<LayerRef<'_>> = others.to_vec();
        before.extend(write.before);

        let mut found = Vec::new();
        resolve_each(
            self.defaults,
            &after,
            &contexts,
            self.precedence,
            |context, document| {
                let mut violations = self.violations(document);
                if !violations.is_empty() && context != own {
                    let earlier = self.violations(
                        &resolve(self.defaults, &before, context, self.precedence).values,
                    );
                    violations.retain(|v| {
                        !earlier
                            .iter()
                            .any(|e| e.pointer == v.pointer && e.message == v.message)
                    });
                }
                found.extend(violations.into_iter().map(|v| SchemaViolation {
                    context: Some(context.clone()),
                    ..v
                }));
                if found.len() >= MAX_REPORTED_VIOLATIONS {
                    found.truncate(MAX_REPORTED_VIOLATIONS);
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        );
        // The own context's violations first, then the others by context
        // (the walk's order depends on the order the layers were read in).
        found.sort_by(|a, b| {
            (a.context.as_ref() != Some(own), &a.context)
                .cmp(&(b.context.as_ref() != Some(own), &b.context))
        });
        found
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ids::{EnvName, ServiceName};

    fn scope(pairs: &[(&str, &str)]) -> Scope {
        Scope::from_pairs(pairs.iter().copied()).unwrap_or_default()
    }

    fn editions() -> BTreeMap<TenantId, EditionName> {
        [("acme", "pro"), ("bob", "free")]
            .into_iter()
            .filter_map(|(t, e)| Some((TenantId::parse(t).ok()?, EditionName::parse(e).ok()?)))
            .collect()
    }

    #[test]
    fn a_global_write_reaches_every_combination_of_layers() {
        let scopes = [
            scope(&[("env", "prod")]),
            scope(&[("env", "dev")]),
            scope(&[("tenant", "acme")]),
            scope(&[("edition", "pro")]),
            scope(&[("service", "api"), ("tenant", "bob")]),
        ];
        let contexts = affected_contexts(&Scope::global(), &scopes, &editions());
        let expected: BTreeSet<Scope> = [
            scope(&[]),
            scope(&[("env", "prod")]),
            scope(&[("env", "dev")]),
            scope(&[("edition", "pro")]),
            scope(&[("env", "prod"), ("edition", "pro")]),
            scope(&[("env", "dev"), ("edition", "pro")]),
            scope(&[("tenant", "acme"), ("edition", "pro")]),
            scope(&[("env", "prod"), ("tenant", "acme"), ("edition", "pro")]),
            scope(&[("env", "dev"), ("tenant", "acme"), ("edition", "pro")]),
            scope(&[("service", "api"), ("tenant", "bob"), ("edition", "free")]),
            scope(&[
                ("env", "prod"),
                ("service", "api"),
                ("tenant", "bob"),
                ("edition", "free"),
            ]),
            scope(&[
                ("env", "dev"),
                ("service", "api"),
                ("tenant", "bob"),
                ("edition", "free"),
            ]),
        ]
        .into_iter()
        .collect();
        assert_eq!(contexts[0], Scope::global());
        assert_eq!(contexts.len(), expected.len(), "{contexts:?}");
        assert_eq!(contexts.into_iter().collect::<BTreeSet<_>>(), expected);
    }

    #[test]
    fn a_write_reaches_only_contexts_it_lies_within() {
        let scopes = [
            scope(&[("env", "dev")]),
            scope(&[("tenant", "acme")]),
            scope(&[("tenant", "bob")]),
            scope(&[("edition", "free")]),
        ];
        let contexts = affected_contexts(&scope(&[("tenant", "acme")]), &scopes, &editions());
        // Acme is on pro: the free edition's layer never applies with it.
        assert_eq!(
            contexts,
            [
                scope(&[("tenant", "acme"), ("edition", "pro")]),
                scope(&[("env", "dev"), ("tenant", "acme"), ("edition", "pro")]),
            ]
        );
    }

    #[test]
    fn shared_prefixes_resolve_as_resolve_does() {
        let prod = scope(&[("env", "prod")]);
        let acme = scope(&[("tenant", "acme")]);
        let prod_acme = scope(&[("env", "prod"), ("tenant", "acme")]);
        let api = Scope {
            service: ServiceName::parse("api").ok(),
            ..Scope::global()
        };
        let global = Scope::global();
        let values = [
            json!({"a": 1, "db": {"host": "g", "port": 1}}),
            json!({"a": 2, "db": {"host": "p"}}),
            json!({"db": null, "b": [1]}),
            json!({"db": {"port": 3}, "a": null}),
            json!({"c": {"d": true}}),
        ];
        let locks = [
            vec!["/db/host".to_owned()],
            vec!["/a".to_owned()],
            vec![],
            vec![],
            vec![],
        ];
        let scopes = [&global, &prod, &acme, &prod_acme, &api];
        let layers: Vec<LayerRef<'_>> = scopes
            .iter()
            .zip(&values)
            .zip(&locks)
            .map(|((scope, values), lock)| LayerRef {
                scope,
                values,
                revision: 1,
                lock,
            })
            .collect();
        let defaults = json!({"a": 0, "z": "default"});
        let defaults = defaults.as_object().cloned().unwrap_or_default();
        let contexts = affected_contexts(&global, scopes, &BTreeMap::new());
        assert_eq!(contexts.len(), 8, "{contexts:?}");
        let precedence = Precedence::default();
        let mut seen = 0;
        resolve_each(
            &defaults,
            &layers,
            &contexts,
            &precedence,
            |context, document| {
                let expected = resolve(&defaults, &layers, context, &precedence).values;
                assert_eq!(document, &expected, "{context}");
                seen += 1;
                ControlFlow::Continue(())
            },
        );
        assert_eq!(seen, contexts.len());
        // An env the layers never name adds no context.
        assert!(!contexts.iter().any(|c| c.env == EnvName::parse("dev").ok()));
    }
}
