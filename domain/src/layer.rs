//! The layer aggregate: the values one namespace holds at one scope.

use async_trait::async_trait;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::contexts::{LayerWrite, SchemaCheck};
use crate::dimension::Dimension;
use crate::error::DomainError;
use crate::ids::NamespaceName;
use crate::json::{is_valid_pointer, merge_patch};
use crate::ports::{NamespaceLayers, Services};
use crate::resolve::{LayerRef, lock_violations};
use crate::revision::check_expected;
use crate::schema::CompiledSchema;
use crate::scope::Scope;
use crate::state::{LayerState, NamespaceKind};

/// The longest change message accepted, in characters.
pub const MAX_MESSAGE: usize = 1000;
/// The most pointers one layer may lock.
pub const MAX_LOCKS: usize = 256;

/// The aggregate id of the layer of `namespace` at `scope`: dot-separated
/// subject tokens `namespace.env.service.tenant.edition`.
pub fn layer_id(namespace: &NamespaceName, scope: &Scope) -> String {
    format!("{namespace}.{}", scope.subject_tokens())
}

/// The tenant token (`_` for none) of a [`layer_id`]: the token after the
/// namespace at the tenant dimension's place.
pub fn layer_id_tenant(layer_id: &str) -> &str {
    let at = Dimension::ALL
        .iter()
        .position(|d| *d == Dimension::Tenant)
        .map_or(usize::MAX, |i| i + 1);
    layer_id.split('.').nth(at).unwrap_or("_")
}

/// What a layer command does.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub enum LayerAction {
    /// Replaces the values; `lock: None` keeps the current locks.
    Replace {
        values: Value,
        lock: Option<Vec<String>>,
    },
    /// Applies an RFC 7386 merge patch to the values.
    Patch { patch: Value },
    /// Empties the layer and drops its locks.
    Clear,
    /// Restores the values and locks of an earlier revision.
    RollBack { revision: u64 },
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LayerCommand {
    pub namespace: NamespaceName,
    pub scope: Scope,
    pub action: LayerAction,
    pub message: String,
    pub expected_revision: Option<u64>,
}

/// How a revision came about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LayerChange {
    Replaced,
    Patched,
    Cleared,
    RolledBack { to_revision: u64 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LayerEvent {
    /// A new revision of the layer, with its complete values and locks.
    LayerChanged {
        namespace: NamespaceName,
        scope: Scope,
        revision: u64,
        values: Value,
        lock: Vec<String>,
        message: String,
        change: LayerChange,
    },
}

impl LayerEvent {
    pub fn state(&self) -> LayerState {
        let LayerEvent::LayerChanged {
            namespace,
            scope,
            revision,
            values,
            lock,
            ..
        } = self;
        LayerState {
            namespace: namespace.clone(),
            scope: scope.clone(),
            values: values.clone(),
            lock: lock.clone(),
            revision: *revision,
        }
    }
}

impl DomainEvent for LayerEvent {
    fn event_type(&self) -> String {
        "LayerChanged".to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

/// The layer aggregate. Every event carries the complete state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    pub state: Option<LayerState>,
}

impl Layer {
    pub fn revision(&self) -> u64 {
        self.state.as_ref().map_or(0, |s| s.revision)
    }
}

fn require_object(field: &str, value: &Value) -> Result<(), DomainError> {
    if value.is_object() {
        Ok(())
    } else {
        Err(DomainError::invalid(field, "must be a JSON object"))
    }
}

fn check_locks_input(lock: &[String]) -> Result<(), DomainError> {
    if lock.len() > MAX_LOCKS {
        return Err(DomainError::invalid("lock", "at most 256 pointers"));
    }
    match lock.iter().find(|p| !is_valid_pointer(p)) {
        Some(bad) => Err(DomainError::invalid(
            "lock",
            format!("{bad:?} is not a JSON pointer such as \"/payment/provider\""),
        )),
        None => Ok(()),
    }
}

#[async_trait]
impl Aggregate for Layer {
    type Command = LayerCommand;
    type Event = LayerEvent;
    type Error = DomainError;
    type Services = Services;

    fn aggregate_type() -> String {
        "layer".to_owned()
    }

    async fn handle(
        &self,
        command: LayerCommand,
        services: &Services,
    ) -> Result<Vec<LayerEvent>, DomainError> {
        let LayerCommand {
            namespace,
            scope,
            action,
            message,
            expected_revision,
        } = command;
        let current = self.revision();
        check_expected(expected_revision, current)?;
        if message.chars().count() > MAX_MESSAGE {
            return Err(DomainError::invalid(
                "message",
                "must be at most 1000 characters",
            ));
        }
        let reader = &services.reader;
        // The three reads are independent: one round trip's wait, not three.
        let tenant = async {
            match &scope.tenant {
                Some(tenant) => reader.tenant(tenant).await,
                None => Ok(None),
            }
        };
        let (ns, tenant, overlapping) = futures::try_join!(
            reader.namespace(&namespace),
            tenant,
            reader.overlapping_layers(&namespace, &scope)
        )?;
        let NamespaceLayers {
            layers,
            mut editions,
        } = overlapping;
        let ns = ns.ok_or_else(|| DomainError::NamespaceNotFound(namespace.to_string()))?;
        if let Some(id) = &scope.tenant {
            let tenant = tenant.ok_or_else(|| DomainError::TenantNotFound(id.to_string()))?;
            // The written layer's own context resolves with its tenant's
            // edition, even before the tenant has any layer here.
            editions.insert(tenant.id, tenant.edition);
        }
        let current_values = self.state.as_ref().map(|s| &s.values);
        let current_lock = self
            .state
            .as_ref()
            .map(|s| s.lock.clone())
            .unwrap_or_default();
        let (values, lock, change) = match action {
            LayerAction::Replace { values, lock } => {
                require_object("values", &values)?;
                let lock = lock.unwrap_or(current_lock);
                check_locks_input(&lock)?;
                (values, lock, LayerChange::Replaced)
            }
            LayerAction::Patch { patch } => {
                require_object("values", &patch)?;
                let mut values = current_values
                    .cloned()
                    .unwrap_or_else(|| Value::Object(Map::new()));
                merge_patch(&mut values, &patch);
                (values, current_lock, LayerChange::Patched)
            }
            LayerAction::Clear => {
                if current == 0 {
                    return Err(DomainError::LayerNotFound {
                        namespace: namespace.to_string(),
                        scope,
                    });
                }
                (Value::Object(Map::new()), vec![], LayerChange::Cleared)
            }
            LayerAction::RollBack { revision } => {
                if revision == 0 || revision >= current {
                    return Err(DomainError::RevisionNotFound { revision, current });
                }
                let old = reader
                    .layer_revision(&namespace, &scope, revision)
                    .await?
                    .ok_or(DomainError::RevisionNotFound { revision, current })?;
                (
                    old.values,
                    old.lock,
                    LayerChange::RolledBack {
                        to_revision: revision,
                    },
                )
            }
        };

        crate::secrets::check_secret_refs(&values)?;
        let others: Vec<_> = layers.into_iter().filter(|l| l.scope != scope).collect();
        let refs: Vec<LayerRef<'_>> = others.iter().map(LayerState::as_ref).collect();
        let violations = lock_violations(&scope, &values, &refs, &services.precedence);
        if !violations.is_empty() {
            return Err(DomainError::LockViolations(violations));
        }
        let compiled = ns
            .schema
            .as_ref()
            .map(CompiledSchema::compile)
            .transpose()?;
        let schema = ns.schema.as_ref().zip(compiled.as_ref());
        if schema.is_some() || ns.kind == NamespaceKind::Flags {
            let check = SchemaCheck {
                schema,
                kind: ns.kind,
                defaults: &ns.defaults(),
                precedence: &services.precedence,
            };
            let write = LayerWrite {
                before: self.state.as_ref().map(LayerState::as_ref),
                after: LayerRef {
                    scope: &scope,
                    values: &values,
                    revision: current + 1,
                    lock: &lock,
                },
            };
            let violations = check.write_violations(&write, &refs, &editions);
            if !violations.is_empty() {
                return Err(DomainError::SchemaViolations(violations));
            }
        }
        Ok(vec![LayerEvent::LayerChanged {
            namespace,
            scope,
            revision: current + 1,
            values,
            lock,
            message,
            change,
        }])
    }

    fn apply(&mut self, event: LayerEvent) {
        self.state = Some(event.state());
    }
}
