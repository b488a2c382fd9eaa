//! Property tests of resolution: precedence order, deep merge, `null` removal
//! and locks.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use ecs_domain::*;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn arb_scope() -> impl Strategy<Value = Scope> {
    (
        proptest::option::of(prop_oneof![Just("prod"), Just("dev")]),
        proptest::option::of(prop_oneof![Just("api"), Just("web")]),
        proptest::option::of(prop_oneof![Just("acme"), Just("globex")]),
        proptest::option::of(prop_oneof![Just("pro"), Just("free")]),
    )
        .prop_map(|(env, service, tenant, edition)| Scope {
            env: env.map(|v| EnvName::parse(v).unwrap()),
            service: service.map(|v| ServiceName::parse(v).unwrap()),
            tenant: tenant.map(|v| TenantId::parse(v).unwrap()),
            edition: edition.map(|v| EditionName::parse(v).unwrap()),
        })
}

fn arb_precedence() -> impl Strategy<Value = Precedence> {
    Just(Dimension::ALL.to_vec())
        .prop_shuffle()
        .prop_map(|v| Precedence::new([v[0], v[1], v[2], v[3]]).unwrap())
}

/// Distinct scopes, each with a small value document.
fn arb_layers() -> impl Strategy<Value = Vec<(Scope, Value)>> {
    proptest::collection::btree_map(
        arb_scope(),
        proptest::collection::btree_map(
            prop_oneof![Just("a"), Just("b"), Just("c")],
            prop_oneof![
                Just(Value::Null),
                (0..5i64).prop_map(Value::from),
                (0..5i64).prop_map(|n| json!({"x": n})),
                (0..5i64).prop_map(|n| json!({"y": n})),
            ],
            0..3,
        ),
        0..8,
    )
    .prop_map(|m: BTreeMap<Scope, BTreeMap<&str, Value>>| {
        m.into_iter()
            .map(|(s, vals)| {
                (
                    s,
                    Value::Object(vals.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()),
                )
            })
            .collect()
    })
}

/// The brief's pairwise rule: of two layers, look at the latest dimension in
/// the chain that one fixes and the other does not; the one that fixes it wins.
fn wins_over(a: &Scope, b: &Scope, precedence: &Precedence) -> bool {
    precedence
        .order()
        .into_iter()
        .rev()
        .find(|d| a.fixes(*d) != b.fixes(*d))
        .is_some_and(|d| a.fixes(d))
}

/// A straightforward reference: apply each applicable layer, in the pairwise
/// order, as an RFC 7386 merge patch.
fn reference(layers: &[(Scope, Value)], context: &Scope, precedence: &Precedence) -> Value {
    let mut applicable: Vec<&(Scope, Value)> = layers
        .iter()
        .filter(|(s, _)| s.is_within(context))
        .collect();
    applicable.sort_by(|(a, _), (b, _)| {
        if wins_over(a, b, precedence) {
            std::cmp::Ordering::Greater
        } else if wins_over(b, a, precedence) {
            std::cmp::Ordering::Less
        } else {
            std::cmp::Ordering::Equal
        }
    });
    let mut doc = json!({});
    for (_, values) in applicable {
        ecs_domain::json::merge_patch(&mut doc, values);
    }
    doc
}

fn refs(layers: &[(Scope, Value)], locks: &[Vec<String>]) -> Vec<(Scope, Value, Vec<String>)> {
    layers
        .iter()
        .zip(locks.iter().chain(std::iter::repeat(&Vec::new())))
        .map(|((s, v), l)| (s.clone(), v.clone(), l.clone()))
        .collect()
}

fn run(
    layers: &[(Scope, Value, Vec<String>)],
    context: &Scope,
    precedence: &Precedence,
) -> Resolved {
    let refs: Vec<LayerRef<'_>> = layers
        .iter()
        .enumerate()
        .map(|(i, (scope, values, lock))| LayerRef {
            scope,
            values,
            revision: i as u64 + 1,
            lock,
        })
        .collect();
    resolve(&Map::new(), &refs, context, precedence)
}

proptest! {
    #[test]
    fn weights_order_layers_as_the_pairwise_rule_does(a in arb_scope(), b in arb_scope(), p in arb_precedence()) {
        prop_assume!(a != b);
        if wins_over(&a, &b, &p) {
            prop_assert!(p.weight(&a) > p.weight(&b));
        }
        if p.weight(&a) > p.weight(&b) {
            prop_assert!(wins_over(&a, &b, &p));
        }
    }

    #[test]
    fn resolution_is_merge_patch_in_precedence_order(
        layers in arb_layers(), context in arb_scope(), p in arb_precedence()
    ) {
        let resolved = run(&refs(&layers, &[]), &context, &p);
        prop_assert_eq!(resolved.values, reference(&layers, &context, &p));
    }

    #[test]
    fn every_leaf_is_explained_by_a_layer_that_set_it(
        layers in arb_layers(), context in arb_scope(), p in arb_precedence()
    ) {
        let resolved = run(&refs(&layers, &[]), &context, &p);
        let leaves = ecs_domain::json::leaves(&resolved.values);
        prop_assert_eq!(leaves.len(), resolved.sources.len());
        for (pointer, value) in leaves {
            let Some(Source::Layer { scope, .. }) = resolved.sources.get(&pointer) else {
                return Err(TestCaseError::fail(format!("{pointer} unexplained")));
            };
            let layer = layers.iter().find(|(s, _)| s == scope).map(|(_, v)| v).unwrap();
            prop_assert_eq!(layer.pointer(&pointer), Some(value));
        }
    }

    #[test]
    fn null_in_a_stronger_layer_removes_the_key(
        layers in arb_layers(), context in arb_scope(), p in arb_precedence()
    ) {
        let mut layers = layers;
        let strongest = context.clone();
        layers.retain(|(s, _)| s != &strongest);
        layers.push((strongest, json!({"a": null})));
        let resolved = run(&refs(&layers, &[]), &context, &p);
        prop_assert!(resolved.values.get("a").is_none());
    }

    #[test]
    fn a_locked_value_keeps_the_locking_layers_value(
        layers in arb_layers(), context in arb_scope(), p in arb_precedence()
    ) {
        // The global layer sets and locks /a; nothing stronger can change it.
        let mut layers = layers;
        layers.retain(|(s, _)| !s.is_global());
        layers.insert(0, (Scope::global(), json!({"a": 42})));
        let locks = vec![vec!["/a".to_owned()]];
        let resolved = run(&refs(&layers, &locks), &context, &p);
        prop_assert_eq!(resolved.values.get("a"), Some(&json!(42)));
        prop_assert_eq!(
            resolved.sources.get("/a"),
            Some(&Source::Layer { scope: Scope::global(), revision: 1 })
        );
        // And the write-time check refuses every stronger layer that sets /a.
        let global = &layers[0];
        let others = [LayerRef { scope: &global.0, values: &global.1, revision: 1, lock: &locks[0] }];
        for (scope, values) in &layers[1..] {
            let touches_a = values.get("a").is_some();
            let violations = ecs_domain::resolve::lock_violations(scope, values, &others, &p);
            prop_assert_eq!(touches_a, !violations.is_empty());
            // Every stronger layer is told the lock binds it, before any write.
            let binding = ecs_domain::binding_locks(scope, &others, &p);
            prop_assert_eq!(
                binding,
                vec![BindingLock { pointer: "/a".to_owned(), locked_by: Scope::global() }]
            );
        }
    }
}

#[test]
fn schema_defaults_come_first_and_are_explained() {
    let defaults: Map<String, Value> = json!({"a": 1, "b": {"c": 2}}).as_object().unwrap().clone();
    let global = Scope::global();
    let values = json!({"b": {"d": 3}});
    let layers = [LayerRef {
        scope: &global,
        values: &values,
        revision: 7,
        lock: &[],
    }];
    let resolved = resolve(&defaults, &layers, &global, &Precedence::default());
    assert_eq!(resolved.values, json!({"a": 1, "b": {"c": 2, "d": 3}}));
    assert_eq!(resolved.sources["/a"], Source::SchemaDefault);
    assert_eq!(
        resolved.sources["/b/d"],
        Source::Layer {
            scope: global,
            revision: 7
        }
    );
}
