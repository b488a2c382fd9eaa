//! Given/when/then tests of every command rule, including each refusal.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use cqrs_es::test::TestFramework;
use ecs_domain::ports::MemoryConfig;
use ecs_domain::*;
use serde_json::{Value, json};

fn ns() -> NamespaceName {
    NamespaceName::parse("checkout").unwrap()
}

fn scope(pairs: &[(&str, &str)]) -> Scope {
    let mut s = Scope::global();
    for (k, v) in pairs {
        match *k {
            "env" => s.env = Some(EnvName::parse(*v).unwrap()),
            "service" => s.service = Some(ServiceName::parse(*v).unwrap()),
            "tenant" => s.tenant = Some(TenantId::parse(*v).unwrap()),
            "edition" => s.edition = Some(EditionName::parse(*v).unwrap()),
            _ => unreachable!(),
        }
    }
    s
}

fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "max_items": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10},
            "currency": {"type": "string"},
            "payment": {"type": "object", "properties": {"provider": {"type": "string"}}}
        }
    })
}

/// A world with the `checkout` namespace, tenant `acme` and the given layers.
fn world(layers: Vec<LayerState>) -> Services {
    let mut config = MemoryConfig::default();
    config.put_namespace(NamespaceState {
        name: ns(),
        kind: NamespaceKind::Config,
        description: "Checkout".into(),
        schema: Some(schema()),
        approval: None,
        revision: 1,
    });
    config.put_tenant(TenantState {
        id: TenantId::parse("acme").unwrap(),
        name: None,
        edition: EditionName::parse("pro").unwrap(),
        revision: 1,
        erased: false,
    });
    for layer in layers {
        config.put_layer(layer);
    }
    Services {
        reader: Arc::new(config),
        precedence: Precedence::default(),
    }
}

fn state(scope: Scope, values: Value, lock: &[&str], revision: u64) -> LayerState {
    LayerState {
        namespace: ns(),
        scope,
        values,
        lock: lock.iter().map(|s| s.to_string()).collect(),
        revision,
    }
}

fn changed(
    scope: Scope,
    revision: u64,
    values: Value,
    lock: &[&str],
    change: LayerChange,
) -> LayerEvent {
    LayerEvent::LayerChanged {
        namespace: ns(),
        scope,
        revision,
        values,
        lock: lock.iter().map(|s| s.to_string()).collect(),
        message: "m".into(),
        change,
    }
}

fn command(scope: Scope, action: LayerAction, expected_revision: Option<u64>) -> LayerCommand {
    LayerCommand {
        namespace: ns(),
        scope,
        action,
        message: "m".into(),
        expected_revision,
    }
}

fn replace(values: Value) -> LayerAction {
    LayerAction::Replace { values, lock: None }
}

// ---- namespaces ----

fn define_ns(schema: Option<Value>, expected_revision: Option<u64>) -> NamespaceCommand {
    NamespaceCommand::DefineNamespace {
        name: ns(),
        kind: NamespaceKind::Config,
        description: "Checkout".into(),
        schema,
        approval: None,
        expected_revision,
    }
}

fn ns_defined(revision: u64, schema: Option<Value>) -> NamespaceEvent {
    NamespaceEvent::NamespaceDefined {
        name: ns(),
        revision,
        kind: NamespaceKind::Config,
        description: "Checkout".into(),
        schema,
        approval: None,
    }
}

#[tokio::test]
async fn a_new_namespace_is_defined_at_revision_one() {
    TestFramework::<Namespace>::with(world(vec![]))
        .given_no_previous_events()
        .when_async(define_ns(Some(schema()), None))
        .await
        .then_expect_events(vec![ns_defined(1, Some(schema()))]);
}

#[tokio::test]
async fn redefining_a_namespace_unchanged_records_nothing() {
    TestFramework::<Namespace>::with(world(vec![]))
        .given(vec![ns_defined(1, Some(schema()))])
        .when_async(define_ns(Some(schema()), None))
        .await
        .then_expect_events(vec![]);
}

#[tokio::test]
async fn a_namespace_change_with_a_stale_revision_is_refused() {
    TestFramework::<Namespace>::with(world(vec![]))
        .given(vec![ns_defined(1, None), ns_defined(2, Some(schema()))])
        .when_async(define_ns(None, Some(1)))
        .await
        .then_expect_error(DomainError::StaleRevision {
            expected: 1,
            actual: 2,
        });
}

#[tokio::test]
async fn an_invalid_json_schema_is_refused() {
    let result = TestFramework::<Namespace>::with(world(vec![]))
        .given_no_previous_events()
        .when_async(define_ns(Some(json!({"type": 12})), None))
        .await
        .inspect_result();
    assert!(
        matches!(result, Err(DomainError::InvalidSchema(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_schema_that_an_existing_layer_fails_is_refused_naming_the_layer() {
    let layers = vec![state(
        scope(&[("env", "prod")]),
        json!({"currency": "EUR"}),
        &[],
        1,
    )];
    let stricter = json!({"type": "object", "properties": {"currency": {"enum": ["USD"]}}});
    let result = TestFramework::<Namespace>::with(world(layers))
        .given(vec![ns_defined(1, Some(schema()))])
        .when_async(define_ns(Some(stricter), None))
        .await
        .inspect_result();
    let Err(DomainError::SchemaViolations(violations)) = result else {
        panic!("expected schema violations, got {result:?}");
    };
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].pointer, "/currency");
    assert_eq!(violations[0].layer, Some(scope(&[("env", "prod")])));
}

#[tokio::test]
async fn a_schema_change_that_every_layer_passes_is_accepted() {
    let layers = vec![state(Scope::global(), json!({"currency": "EUR"}), &[], 1)];
    let wider = json!({"type": "object", "properties": {"currency": {"type": "string"}}});
    TestFramework::<Namespace>::with(world(layers))
        .given(vec![ns_defined(1, Some(schema()))])
        .when_async(define_ns(Some(wider.clone()), Some(1)))
        .await
        .then_expect_events(vec![ns_defined(2, Some(wider))]);
}

// ---- tenants ----

fn define_tenant(
    edition: &str,
    name: Option<&str>,
    expected_revision: Option<u64>,
) -> TenantCommand {
    TenantCommand::DefineTenant {
        id: TenantId::parse("acme").unwrap(),
        name: name.map(str::to_owned),
        edition: EditionName::parse(edition).unwrap(),
        expected_revision,
    }
}

fn tenant_defined(revision: u64, edition: &str) -> TenantEvent {
    TenantEvent::TenantDefined {
        id: TenantId::parse("acme").unwrap(),
        revision,
        name: Some("Acme".into()),
        edition: EditionName::parse(edition).unwrap(),
    }
}

#[tokio::test]
async fn a_tenant_is_defined_and_can_change_edition() {
    TestFramework::<Tenant>::with(())
        .given_no_previous_events()
        .when_async(define_tenant("pro", Some("Acme"), None))
        .await
        .then_expect_events(vec![tenant_defined(1, "pro")]);
    TestFramework::<Tenant>::with(())
        .given(vec![tenant_defined(1, "pro")])
        .when_async(define_tenant("enterprise", Some("Acme"), Some(1)))
        .await
        .then_expect_events(vec![tenant_defined(2, "enterprise")]);
}

#[tokio::test]
async fn redefining_a_tenant_unchanged_records_nothing() {
    TestFramework::<Tenant>::with(())
        .given(vec![tenant_defined(1, "pro")])
        .when_async(define_tenant("pro", Some("Acme"), None))
        .await
        .then_expect_events(vec![]);
}

#[tokio::test]
async fn a_tenant_change_with_a_stale_revision_is_refused() {
    TestFramework::<Tenant>::with(())
        .given(vec![tenant_defined(1, "pro")])
        .when_async(define_tenant("enterprise", None, Some(0)))
        .await
        .then_expect_error(DomainError::StaleRevision {
            expected: 0,
            actual: 1,
        });
}

#[tokio::test]
async fn an_overlong_tenant_name_is_refused() {
    let long = "x".repeat(201);
    TestFramework::<Tenant>::with(())
        .given_no_previous_events()
        .when_async(define_tenant("pro", Some(&long), None))
        .await
        .then_expect_error(DomainError::invalid(
            "name",
            "must be at most 200 characters",
        ));
}

// ---- layers ----

#[tokio::test]
async fn replacing_a_layer_records_a_new_revision() {
    TestFramework::<Layer>::with(world(vec![]))
        .given_no_previous_events()
        .when_async(command(
            Scope::global(),
            LayerAction::Replace {
                values: json!({"currency": "EUR"}),
                lock: Some(vec!["/currency".into()]),
            },
            Some(0),
        ))
        .await
        .then_expect_events(vec![changed(
            Scope::global(),
            1,
            json!({"currency": "EUR"}),
            &["/currency"],
            LayerChange::Replaced,
        )]);
}

#[tokio::test]
async fn replacing_without_lock_keeps_the_current_locks() {
    let g = Scope::global();
    TestFramework::<Layer>::with(world(vec![]))
        .given(vec![changed(
            g.clone(),
            1,
            json!({"currency": "EUR"}),
            &["/currency"],
            LayerChange::Replaced,
        )])
        .when_async(command(
            g.clone(),
            replace(json!({"currency": "USD"})),
            None,
        ))
        .await
        .then_expect_events(vec![changed(
            g,
            2,
            json!({"currency": "USD"}),
            &["/currency"],
            LayerChange::Replaced,
        )]);
}

#[tokio::test]
async fn a_layer_of_an_unknown_namespace_is_refused() {
    let mut cmd = command(Scope::global(), replace(json!({})), None);
    cmd.namespace = NamespaceName::parse("nope").unwrap();
    TestFramework::<Layer>::with(world(vec![]))
        .given_no_previous_events()
        .when_async(cmd)
        .await
        .then_expect_error(DomainError::NamespaceNotFound("nope".into()));
}

#[tokio::test]
async fn a_layer_of_an_unknown_tenant_is_refused() {
    TestFramework::<Layer>::with(world(vec![]))
        .given_no_previous_events()
        .when_async(command(
            scope(&[("tenant", "initech")]),
            replace(json!({})),
            None,
        ))
        .await
        .then_expect_error(DomainError::TenantNotFound("initech".into()));
}

#[tokio::test]
async fn values_that_are_not_an_object_are_refused() {
    TestFramework::<Layer>::with(world(vec![]))
        .given_no_previous_events()
        .when_async(command(Scope::global(), replace(json!([1, 2])), None))
        .await
        .then_expect_error(DomainError::invalid("values", "must be a JSON object"));
}

#[tokio::test]
async fn a_lock_that_is_not_a_json_pointer_is_refused() {
    let result = TestFramework::<Layer>::with(world(vec![]))
        .given_no_previous_events()
        .when_async(command(
            Scope::global(),
            LayerAction::Replace {
                values: json!({}),
                lock: Some(vec!["currency".into()]),
            },
            None,
        ))
        .await
        .inspect_result();
    assert!(
        matches!(result, Err(DomainError::InvalidInput { ref field, .. }) if field == "lock"),
        "{result:?}"
    );
}

#[tokio::test]
async fn an_overlong_message_is_refused() {
    let mut cmd = command(Scope::global(), replace(json!({})), None);
    cmd.message = "x".repeat(1001);
    TestFramework::<Layer>::with(world(vec![]))
        .given_no_previous_events()
        .when_async(cmd)
        .await
        .then_expect_error(DomainError::invalid(
            "message",
            "must be at most 1000 characters",
        ));
}

#[tokio::test]
async fn a_stale_if_match_is_refused() {
    let g = Scope::global();
    TestFramework::<Layer>::with(world(vec![]))
        .given(vec![changed(
            g.clone(),
            1,
            json!({}),
            &[],
            LayerChange::Replaced,
        )])
        .when_async(command(g, replace(json!({})), Some(0)))
        .await
        .then_expect_error(DomainError::StaleRevision {
            expected: 0,
            actual: 1,
        });
}

#[tokio::test]
async fn patching_merges_with_rfc_7386_semantics() {
    let g = Scope::global();
    TestFramework::<Layer>::with(world(vec![]))
        .given(vec![changed(
            g.clone(),
            1,
            json!({"currency": "EUR", "payment": {"provider": "stripe"}}),
            &[],
            LayerChange::Replaced,
        )])
        .when_async(command(
            g.clone(),
            LayerAction::Patch {
                patch: json!({"currency": null, "max_items": 5}),
            },
            Some(1),
        ))
        .await
        .then_expect_events(vec![changed(
            g,
            2,
            json!({"max_items": 5, "payment": {"provider": "stripe"}}),
            &[],
            LayerChange::Patched,
        )]);
}

#[tokio::test]
async fn clearing_an_empty_layer_is_refused() {
    TestFramework::<Layer>::with(world(vec![]))
        .given_no_previous_events()
        .when_async(command(Scope::global(), LayerAction::Clear, None))
        .await
        .then_expect_error(DomainError::LayerNotFound {
            namespace: "checkout".into(),
            scope: Scope::global(),
        });
}

#[tokio::test]
async fn clearing_empties_values_and_locks() {
    let g = Scope::global();
    TestFramework::<Layer>::with(world(vec![]))
        .given(vec![changed(
            g.clone(),
            1,
            json!({"currency": "EUR"}),
            &["/currency"],
            LayerChange::Replaced,
        )])
        .when_async(command(g.clone(), LayerAction::Clear, None))
        .await
        .then_expect_events(vec![changed(g, 2, json!({}), &[], LayerChange::Cleared)]);
}

#[tokio::test]
async fn rolling_back_restores_an_earlier_revision() {
    let g = Scope::global();
    let history = vec![state(
        g.clone(),
        json!({"currency": "EUR"}),
        &["/currency"],
        1,
    )];
    TestFramework::<Layer>::with(world(history))
        .given(vec![
            changed(
                g.clone(),
                1,
                json!({"currency": "EUR"}),
                &["/currency"],
                LayerChange::Replaced,
            ),
            changed(
                g.clone(),
                2,
                json!({"currency": "USD"}),
                &[],
                LayerChange::Replaced,
            ),
        ])
        .when_async(command(
            g.clone(),
            LayerAction::RollBack { revision: 1 },
            None,
        ))
        .await
        .then_expect_events(vec![changed(
            g,
            3,
            json!({"currency": "EUR"}),
            &["/currency"],
            LayerChange::RolledBack { to_revision: 1 },
        )]);
}

#[tokio::test]
async fn rolling_back_to_the_current_or_a_future_revision_is_refused() {
    let g = Scope::global();
    for revision in [0, 1, 7] {
        TestFramework::<Layer>::with(world(vec![]))
            .given(vec![changed(
                g.clone(),
                1,
                json!({}),
                &[],
                LayerChange::Replaced,
            )])
            .when_async(command(g.clone(), LayerAction::RollBack { revision }, None))
            .await
            .then_expect_error(DomainError::RevisionNotFound {
                revision,
                current: 1,
            });
    }
}

#[tokio::test]
async fn a_write_whose_resolved_document_fails_the_schema_is_refused_with_every_pointer() {
    let layers = vec![state(Scope::global(), json!({"currency": "EUR"}), &[], 1)];
    let result = TestFramework::<Layer>::with(world(layers))
        .given_no_previous_events()
        .when_async(command(
            scope(&[("env", "prod")]),
            replace(json!({"max_items": 0, "currency": 3})),
            None,
        ))
        .await
        .inspect_result();
    let Err(DomainError::SchemaViolations(violations)) = result else {
        panic!("expected schema violations, got {result:?}");
    };
    let mut pointers: Vec<_> = violations.iter().map(|v| v.pointer.as_str()).collect();
    pointers.sort();
    assert_eq!(pointers, ["/currency", "/max_items"]);
}

#[tokio::test]
async fn a_write_that_overrides_a_locked_value_is_refused_naming_the_lock() {
    let layers = vec![state(
        scope(&[("env", "prod")]),
        json!({"payment": {"provider": "stripe"}}),
        &["/payment/provider"],
        1,
    )];
    TestFramework::<Layer>::with(world(layers))
        .given_no_previous_events()
        .when_async(command(
            scope(&[("env", "prod"), ("tenant", "acme")]),
            replace(json!({"payment": {"provider": "paypal"}})),
            None,
        ))
        .await
        .then_expect_error(DomainError::LockViolations(vec![LockViolation {
            pointer: "/payment/provider".into(),
            locked_pointer: "/payment/provider".into(),
            locked_by: scope(&[("env", "prod")]),
        }]));
}

#[tokio::test]
async fn a_lock_does_not_bind_layers_that_never_apply_together() {
    let layers = vec![state(
        scope(&[("env", "prod")]),
        json!({"currency": "EUR"}),
        &["/currency"],
        1,
    )];
    TestFramework::<Layer>::with(world(layers))
        .given_no_previous_events()
        .when_async(command(
            scope(&[("env", "dev"), ("tenant", "acme")]),
            replace(json!({"currency": "USD"})),
            None,
        ))
        .await
        .then_expect_events(vec![changed(
            scope(&[("env", "dev"), ("tenant", "acme")]),
            1,
            json!({"currency": "USD"}),
            &[],
            LayerChange::Replaced,
        )]);
}

fn tenant_erased() -> TenantEvent {
    TenantEvent::TenantErased {
        id: TenantId::parse("acme").unwrap(),
        revision: 2,
        edition: EditionName::parse("pro").unwrap(),
    }
}

#[tokio::test]
async fn a_tenant_is_erased_once() {
    TestFramework::<Tenant>::with(())
        .given(vec![tenant_defined(1, "pro")])
        .when_async(TenantCommand::EraseTenant)
        .await
        .then_expect_events(vec![tenant_erased()]);
    TestFramework::<Tenant>::with(())
        .given(vec![tenant_defined(1, "pro"), tenant_erased()])
        .when_async(TenantCommand::EraseTenant)
        .await
        .then_expect_events(vec![]);
}

#[tokio::test]
async fn an_erased_tenant_cannot_be_defined_again() {
    TestFramework::<Tenant>::with(())
        .given(vec![tenant_defined(1, "pro"), tenant_erased()])
        .when_async(define_tenant("pro", None, None))
        .await
        .then_expect_error(DomainError::TenantErased("acme".into()));
}

#[tokio::test]
async fn an_unknown_tenant_cannot_be_erased() {
    let result = TestFramework::<Tenant>::with(())
        .given_no_previous_events()
        .when_async(TenantCommand::EraseTenant)
        .await
        .inspect_result();
    assert!(matches!(result, Err(DomainError::TenantNotFound(_))));
}
