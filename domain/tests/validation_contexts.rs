//! Given/when/then tests of the rule that a layer write is validated in every
//! context it can change, not only at its own scope (ADR 11).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use cqrs_es::test::TestFramework;
use ecs_domain::contexts::MAX_REPORTED_VIOLATIONS;
use ecs_domain::ports::MemoryConfig;
use ecs_domain::*;
use serde_json::{Value, json};

fn ns() -> NamespaceName {
    NamespaceName::parse("checkout").unwrap()
}

fn scope(pairs: &[(&str, &str)]) -> Scope {
    Scope::from_pairs(pairs.iter().copied()).unwrap()
}

/// `discount` requires `coupon`; `mode` is `card` (with `card` settings) or
/// `invoice`; `limits` must have `max`.
fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "discount": {"type": "integer"},
            "coupon": {"type": "string"},
            "mode": {"enum": ["card", "invoice"]},
            "card": {"type": "object"},
            "limits": {"type": "object", "required": ["max"], "properties": {"max": {"type": "integer"}}}
        },
        "dependentRequired": {"discount": ["coupon"]},
        "if": {"properties": {"mode": {"const": "card"}}, "required": ["mode"]},
        "then": {"required": ["card"]}
    })
}

fn state(scope: Scope, values: Value, lock: &[&str]) -> LayerState {
    LayerState {
        namespace: ns(),
        scope,
        values,
        lock: lock.iter().map(|s| s.to_string()).collect(),
        revision: 1,
    }
}

/// The `checkout` namespace, tenants acme (edition pro) and bob (free), and
/// the given layers at revision 1.
fn world(layers: Vec<LayerState>) -> Services {
    let mut config = MemoryConfig::default();
    config.put_namespace(NamespaceState {
        name: ns(),
        kind: NamespaceKind::Config,
        description: String::new(),
        schema: Some(schema()),
        approval: None,
        revision: 1,
    });
    for (id, edition) in [("acme", "pro"), ("bob", "free")] {
        config.put_tenant(TenantState {
            id: TenantId::parse(id).unwrap(),
            name: None,
            edition: EditionName::parse(edition).unwrap(),
            revision: 1,
            erased: false,
        });
    }
    for layer in layers {
        config.put_layer(layer);
    }
    Services {
        reader: Arc::new(config),
        precedence: Precedence::default(),
    }
}

fn write(scope: Scope, values: Value, lock: Option<&[&str]>) -> LayerCommand {
    LayerCommand {
        namespace: ns(),
        scope,
        action: LayerAction::Replace {
            values,
            lock: lock.map(|l| l.iter().map(|s| s.to_string()).collect()),
        },
        message: "m".into(),
        expected_revision: None,
    }
}

fn changed(scope: Scope, revision: u64, values: Value, lock: &[&str]) -> LayerEvent {
    LayerEvent::LayerChanged {
        namespace: ns(),
        scope,
        revision,
        values,
        lock: lock.iter().map(|s| s.to_string()).collect(),
        message: "m".into(),
        change: LayerChange::Replaced,
    }
}

/// The violations of a refused write as `(context, pointer)` pairs.
async fn refusal(
    services: Services,
    given: Vec<LayerEvent>,
    command: LayerCommand,
) -> Vec<(Option<Scope>, String)> {
    let result = TestFramework::<Layer>::with(services)
        .given(given)
        .when_async(command)
        .await
        .inspect_result();
    let Err(DomainError::SchemaViolations(violations)) = result else {
        panic!("expected schema violations, got {result:?}");
    };
    violations
        .into_iter()
        .map(|v| (v.context, v.pointer))
        .collect()
}

fn acme() -> Scope {
    scope(&[("tenant", "acme"), ("edition", "pro")])
}

#[tokio::test]
async fn a_global_write_that_breaks_a_tenants_document_is_refused_naming_the_tenant() {
    // Given acme sets a discount and the global layer its coupon,
    let global = state(Scope::global(), json!({"coupon": "X"}), &[]);
    let acme_layer = state(scope(&[("tenant", "acme")]), json!({"discount": 5}), &[]);
    // when the global layer drops the coupon (valid at the global scope alone),
    let violations = refusal(
        world(vec![global, acme_layer]),
        vec![changed(Scope::global(), 1, json!({"coupon": "X"}), &[])],
        write(Scope::global(), json!({}), None),
    )
    .await;
    // then the write is refused, naming acme's context (with its edition).
    assert_eq!(violations, [(Some(acme()), String::new())]);
}

#[tokio::test]
async fn a_global_write_that_breaks_nothing_is_accepted() {
    let global = state(Scope::global(), json!({"coupon": "X"}), &[]);
    let acme_layer = state(scope(&[("tenant", "acme")]), json!({"discount": 5}), &[]);
    TestFramework::<Layer>::with(world(vec![global, acme_layer]))
        .given(vec![changed(
            Scope::global(),
            1,
            json!({"coupon": "X"}),
            &[],
        )])
        .when_async(write(Scope::global(), json!({"coupon": "Y"}), None))
        .await
        .then_expect_events(vec![changed(
            Scope::global(),
            2,
            json!({"coupon": "Y"}),
            &[],
        )]);
}

#[tokio::test]
async fn an_edition_write_is_checked_in_its_tenants_contexts() {
    // Given acme (on pro) chooses card payment, and the pro edition supplies
    // the card settings,
    let pro = scope(&[("edition", "pro")]);
    let pro_layer = state(pro.clone(), json!({"card": {"brand": "visa"}}), &[]);
    let acme_layer = state(scope(&[("tenant", "acme")]), json!({"mode": "card"}), &[]);
    // when the pro edition removes them, acme's document fails the if/then;
    let violations = refusal(
        world(vec![pro_layer, acme_layer]),
        vec![changed(
            pro.clone(),
            1,
            json!({"card": {"brand": "visa"}}),
            &[],
        )],
        write(pro, json!({"card": null}), None),
    )
    .await;
    // the edition's own document is valid, so only acme is named.
    assert_eq!(violations, [(Some(acme()), String::new())]);
}

#[tokio::test]
async fn a_layer_of_another_edition_never_applies_to_the_tenant() {
    // Bob is on free: the pro edition's layer never combines with bob's.
    let pro = scope(&[("edition", "pro")]);
    let pro_layer = state(pro.clone(), json!({"card": {}}), &[]);
    let bob_layer = state(scope(&[("tenant", "bob")]), json!({"mode": "invoice"}), &[]);
    TestFramework::<Layer>::with(world(vec![pro_layer, bob_layer]))
        .given(vec![changed(pro.clone(), 1, json!({"card": {}}), &[])])
        .when_async(write(
            pro.clone(),
            json!({"mode": "card", "card": {}}),
            None,
        ))
        .await
        .then_expect_events(vec![changed(
            pro,
            2,
            json!({"mode": "card", "card": {}}),
            &[],
        )]);
}

#[tokio::test]
async fn an_env_write_is_checked_where_the_env_and_a_tenant_combine() {
    // Given acme supplies `limits.max`,
    let acme_layer = state(
        scope(&[("tenant", "acme")]),
        json!({"limits": {"max": 3}}),
        &[],
    );
    let prod = scope(&[("env", "prod")]);
    // when prod sets `limits` without `max`, prod's own document fails while
    // prod combined with acme does not.
    let violations = refusal(
        world(vec![acme_layer.clone()]),
        vec![],
        write(prod.clone(), json!({"limits": {"min": 1}}), None),
    )
    .await;
    assert_eq!(violations, [(Some(prod.clone()), "/limits".to_owned())]);

    // A discount at prod needs a coupon in every context prod reaches: acme
    // supplies one, bob does not.
    let with_coupon = state(scope(&[("tenant", "acme")]), json!({"coupon": "A"}), &[]);
    let bob_layer = state(scope(&[("tenant", "bob")]), json!({"mode": "invoice"}), &[]);
    let violations = refusal(
        world(vec![with_coupon, bob_layer]),
        vec![],
        write(prod.clone(), json!({"discount": 1}), None),
    )
    .await;
    // The own context and bob's combination with prod fail; acme's does not.
    let bob_prod = scope(&[("env", "prod"), ("tenant", "bob"), ("edition", "free")]);
    assert_eq!(
        violations,
        [(Some(prod), String::new()), (Some(bob_prod), String::new())]
    );
}

#[tokio::test]
async fn a_global_lock_that_blocks_a_tenants_value_is_checked_as_resolution_applies_it() {
    // Given the global layer sets a coupon and acme a discount and its own
    // limits,
    let global = state(
        Scope::global(),
        json!({"coupon": "X", "limits": {"max": 1}}),
        &[],
    );
    let acme_layer = state(
        scope(&[("tenant", "acme")]),
        json!({"discount": 5, "limits": {"max": 9}}),
        &[],
    );
    let given = vec![changed(
        Scope::global(),
        1,
        json!({"coupon": "X", "limits": {"max": 1}}),
        &[],
    )];
    // locking `/limits` at global with a valid value is fine for acme: the
    // lock makes acme's limits no longer apply, and the global ones are valid;
    TestFramework::<Layer>::with(world(vec![global.clone(), acme_layer.clone()]))
        .given(given.clone())
        .when_async(write(
            Scope::global(),
            json!({"coupon": "X", "limits": {"max": 1}}),
            Some(&["/limits"]),
        ))
        .await
        .then_expect_events(vec![changed(
            Scope::global(),
            2,
            json!({"coupon": "X", "limits": {"max": 1}}),
            &["/limits"],
        )]);
    // but a lock on `/coupon` at global, where the global layer sets none,
    // makes acme's own coupon no longer apply: acme's discount is left
    // without one, so the write is refused for acme's context,
    let acme_coupon = state(
        scope(&[("tenant", "acme")]),
        json!({"discount": 5, "coupon": "A"}),
        &[],
    );
    let violations = refusal(
        world(vec![global.clone(), acme_coupon.clone()]),
        given.clone(),
        write(
            Scope::global(),
            json!({"limits": {"max": 1}}),
            Some(&["/coupon"]),
        ),
    )
    .await;
    assert_eq!(violations, [(Some(acme()), String::new())]);
    // while the same values without the lock leave acme's coupon in force.
    TestFramework::<Layer>::with(world(vec![global, acme_coupon]))
        .given(given)
        .when_async(write(
            Scope::global(),
            json!({"limits": {"max": 1}}),
            Some(&[]),
        ))
        .await
        .then_expect_events(vec![changed(
            Scope::global(),
            2,
            json!({"limits": {"max": 1}}),
            &[],
        )]);
}

#[tokio::test]
async fn a_context_that_already_failed_does_not_block_an_unrelated_write() {
    // Acme's document fails already (a discount with no coupon: written
    // before this check existed); a global write that does not make it worse
    // is accepted, one that adds a failure is refused.
    let acme_layer = state(scope(&[("tenant", "acme")]), json!({"discount": 5}), &[]);
    TestFramework::<Layer>::with(world(vec![acme_layer.clone()]))
        .given_no_previous_events()
        .when_async(write(Scope::global(), json!({"mode": "invoice"}), None))
        .await
        .then_expect_events(vec![changed(
            Scope::global(),
            1,
            json!({"mode": "invoice"}),
            &[],
        )]);
    let violations = refusal(
        world(vec![acme_layer]),
        vec![],
        write(Scope::global(), json!({"limits": {}}), None),
    )
    .await;
    assert_eq!(
        violations,
        [
            (Some(Scope::global()), "/limits".to_owned()),
            (Some(acme()), "/limits".to_owned())
        ]
    );
}

#[tokio::test]
async fn a_refusal_lists_a_bounded_number_of_violations() {
    let mut layers = vec![state(Scope::global(), json!({"coupon": "X"}), &[])];
    for i in 0..(MAX_REPORTED_VIOLATIONS + 20) {
        let tenant = format!("t{i}");
        layers.push(state(
            scope(&[("tenant", tenant.as_str())]),
            json!({"discount": 1}),
            &[],
        ));
    }
    // The tenants are unknown to the reader (no editions): their contexts
    // are their layers' scopes.
    let violations = refusal(
        world(layers),
        vec![changed(Scope::global(), 1, json!({"coupon": "X"}), &[])],
        write(Scope::global(), json!({}), None),
    )
    .await;
    assert_eq!(violations.len(), MAX_REPORTED_VIOLATIONS);
}

mod properties {
    use std::collections::{BTreeMap, BTreeSet};
    use std::ops::ControlFlow;

    use ecs_domain::contexts::{affected_contexts, effective, resolve_each};
    use ecs_domain::*;
    use proptest::prelude::*;
    use serde_json::{Map, Value, json};

    const ENVS: [Option<&str>; 3] = [None, Some("prod"), Some("dev")];
    const SERVICES: [Option<&str>; 3] = [None, Some("api"), Some("web")];
    const TENANTS: [Option<&str>; 4] = [None, Some("acme"), Some("globex"), Some("solo")];
    const EDITIONS: [Option<&str>; 3] = [None, Some("pro"), Some("free")];

    fn make(
        env: Option<&str>,
        service: Option<&str>,
        tenant: Option<&str>,
        edition: Option<&str>,
    ) -> Scope {
        Scope {
            env: env.map(|v| EnvName::parse(v).unwrap()),
            service: service.map(|v| ServiceName::parse(v).unwrap()),
            tenant: tenant.map(|v| TenantId::parse(v).unwrap()),
            edition: edition.map(|v| EditionName::parse(v).unwrap()),
        }
    }

    fn arb_scope() -> impl Strategy<Value = Scope> {
        (0..3usize, 0..3usize, 0..4usize, 0..3usize)
            .prop_map(|(e, s, t, d)| make(ENVS[e], SERVICES[s], TENANTS[t], EDITIONS[d]))
    }

    /// Acme is on pro, globex on free; solo is unknown (no edition).
    fn editions() -> BTreeMap<TenantId, EditionName> {
        [("acme", "pro"), ("globex", "free")]
            .into_iter()
            .map(|(t, e)| (TenantId::parse(t).unwrap(), EditionName::parse(e).unwrap()))
            .collect()
    }

    fn arb_values() -> impl Strategy<Value = Value> {
        proptest::collection::btree_map(
            prop_oneof![Just("a"), Just("b")],
            prop_oneof![
                Just(Value::Null),
                (0..3i64).prop_map(Value::from),
                (0..3i64).prop_map(|n| json!({"x": n})),
            ],
            0..3,
        )
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
    }

    fn arb_lock() -> impl Strategy<Value = Vec<String>> {
        proptest::collection::vec(
            prop_oneof![Just("/a".to_owned()), Just("/b/x".to_owned())],
            0..2,
        )
    }

    /// Every context a reader's services resolve: all combinations, a known
    /// tenant with its own edition (an explicit other edition is a what-if
    /// question, not a context anything is served in).
    fn every_context() -> Vec<Scope> {
        let editions = editions();
        let mut all = BTreeSet::new();
        for e in ENVS {
            for s in SERVICES {
                for t in TENANTS {
                    for d in EDITIONS {
                        let context = make(e, s, t, d);
                        let own_edition = context.tenant.as_ref().and_then(|t| editions.get(t));
                        if own_edition.is_none_or(|own| context.edition.as_ref() == Some(own)) {
                            all.insert(context);
                        }
                    }
                }
            }
        }
        all.into_iter().collect()
    }

    fn applicable(scopes: &[Scope], context: &Scope) -> BTreeSet<Scope> {
        scopes
            .iter()
            .filter(|s| s.is_within(context))
            .cloned()
            .collect()
    }

    proptest! {
        /// The affected contexts cover every context a reader can name that
        /// the written layer applies to (each resolves from the same layers
        /// as one of them), and resolving them with shared prefixes gives
        /// exactly what `resolve` gives.
        #[test]
        fn affected_contexts_cover_every_changed_context_and_resolve_exactly(
            layers in proptest::collection::btree_map(arb_scope(), (arb_values(), arb_lock()), 1..8),
            written_index in 0..8usize,
        ) {
            let layers: Vec<(Scope, (Value, Vec<String>))> = layers.into_iter().collect();
            let written = layers[written_index % layers.len()].0.clone();
            let scopes: Vec<Scope> = layers.iter().map(|(s, _)| s.clone()).collect();
            let others = scopes.iter().filter(|s| **s != written);
            let contexts = affected_contexts(&written, others, &editions());
            prop_assert_eq!(&contexts[0], &effective(&written, &editions()));
            for context in &contexts {
                prop_assert!(written.is_within(context), "{} does not contain {}", context, written);
            }
            let covered: BTreeSet<BTreeSet<Scope>> =
                contexts.iter().map(|c| applicable(&scopes, c)).collect();
            for context in every_context() {
                if written.is_within(&context) {
                    prop_assert!(
                        covered.contains(&applicable(&scopes, &context)),
                        "context {} is not covered by {:?}", context, contexts
                    );
                }
            }

            let refs: Vec<LayerRef<'_>> = layers
                .iter()
                .map(|(scope, (values, lock))| LayerRef { scope, values, revision: 1, lock })
                .collect();
            let defaults: Map<String, Value> = json!({"a": 0, "b": {"x": 0}})
                .as_object()
                .cloned()
                .unwrap();
            let precedence = Precedence::default();
            let mut seen = 0;
            let mut mismatch = None;
            resolve_each(&defaults, &refs, &contexts, &precedence, |context, document| {
                let expected = resolve(&defaults, &refs, context, &precedence).values;
                if document != &expected && mismatch.is_none() {
                    mismatch = Some((context.clone(), document.clone(), expected));
                }
                seen += 1;
                ControlFlow::Continue(())
            });
            prop_assert_eq!(mismatch, None);
            prop_assert_eq!(seen, contexts.len());
        }
    }
}
