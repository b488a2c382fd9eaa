//! The namespace aggregate: a configuration document's description and schema.

use async_trait::async_trait;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{DomainError, SchemaViolation};
use crate::ids::NamespaceName;
use crate::json::schema_defaults;
use crate::policy::ApprovalPolicy;
use crate::ports::Services;
use crate::resolve::{LayerRef, resolve};
use crate::revision::check_expected;
use crate::schema::CompiledSchema;
use crate::state::{NamespaceKind, NamespaceState};

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub enum NamespaceCommand {
    /// Creates the namespace or replaces its description and schema.
    DefineNamespace {
        name: NamespaceName,
        kind: NamespaceKind,
        description: String,
        schema: Option<Value>,
        approval: Option<ApprovalPolicy>,
        expected_revision: Option<u64>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NamespaceEvent {
    NamespaceDefined {
        name: NamespaceName,
        revision: u64,
        /// Absent in events older than flags: those namespaces hold configuration.
        #[serde(default, skip_serializing_if = "NamespaceKind::is_config")]
        kind: NamespaceKind,
        description: String,
        schema: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        approval: Option<ApprovalPolicy>,
    },
}

impl DomainEvent for NamespaceEvent {
    fn event_type(&self) -> String {
        "NamespaceDefined".to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

/// The namespace aggregate. Every event carries the complete state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Namespace {
    pub state: Option<NamespaceState>,
}

impl Namespace {
    pub fn revision(&self) -> u64 {
        self.state.as_ref().map_or(0, |s| s.revision)
    }
}

#[async_trait]
impl Aggregate for Namespace {
    type Command = NamespaceCommand;
    type Event = NamespaceEvent;
    type Error = DomainError;
    type Services = Services;

    fn aggregate_type() -> String {
        "namespace".to_owned()
    }

    async fn handle(
        &self,
        command: Self::Command,
        services: &Services,
    ) -> Result<Vec<NamespaceEvent>, DomainError> {
        let NamespaceCommand::DefineNamespace {
            name,
            kind,
            description,
            schema,
            approval,
            expected_revision,
        } = command;
        check_expected(expected_revision, self.revision())?;
        if let Some(state) = &self.state
            && state.kind == kind
            && state.description == description
            && state.schema == schema
            && state.approval == approval
        {
            return Ok(vec![]);
        }
        if kind == NamespaceKind::Flags && self.state.as_ref().map(|s| s.kind) != Some(kind) {
            flag_violations(&name, &schema, services).await?;
        }
        if let Some(schema) = &schema {
            let compiled = CompiledSchema::compile(schema)?;
            let defaults = schema_defaults(schema);
            let layers = services.reader.layers(&name).await?;
            let refs: Vec<LayerRef<'_>> = layers.iter().map(|l| l.as_ref()).collect();
            let mut violations = Vec::new();
            for layer in &layers {
                let resolved = resolve(&defaults, &refs, &layer.scope, &services.precedence);
                violations.extend(
                    crate::secrets::schema_violations(&compiled, schema, &resolved.values)
                        .into_iter()
                        .map(|v| SchemaViolation {
                            layer: Some(layer.scope.clone()),
                            ..v
                        }),
                );
            }
            if !violations.is_empty() {
                return Err(DomainError::SchemaViolations(violations));
            }
        }
        Ok(vec![NamespaceEvent::NamespaceDefined {
            name,
            revision: self.revision() + 1,
            kind,
            description,
            schema,
            approval,
        }])
    }

    fn apply(&mut self, event: NamespaceEvent) {
        let NamespaceEvent::NamespaceDefined {
            name,
            revision,
            kind,
            description,
            schema,
            approval,
        } = event;
        self.state = Some(NamespaceState {
            name,
            kind,
            description,
            schema,
            approval,
            revision,
        });
    }
}

/// Refuses to make a namespace a flags namespace while a layer's resolved
/// document is not a valid flags document: every reader of a flags namespace
/// may rely on its documents being valid flags.
async fn flag_violations(
    name: &NamespaceName,
    schema: &Option<Value>,
    services: &Services,
) -> Result<(), DomainError> {
    let defaults = schema.as_ref().map(schema_defaults).unwrap_or_default();
    let layers = services.reader.layers(name).await?;
    let refs: Vec<LayerRef<'_>> = layers.iter().map(|l| l.as_ref()).collect();
    let mut violations = Vec::new();
    for layer in &layers {
        let resolved = resolve(&defaults, &refs, &layer.scope, &services.precedence);
        if let Err(found) = crate::flags::parse_flag_set(&resolved.values) {
            violations.extend(found.into_iter().map(|v| SchemaViolation {
                layer: Some(layer.scope.clone()),
                ..v
            }));
        }
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(DomainError::SchemaViolations(violations))
    }
}
