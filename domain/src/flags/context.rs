//! An evaluation context split into what picks the configuration and what
//! feeds targeting, the same way on the server (OFREP) and in the SDK.

use serde_json::{Map, Value};

use crate::{NamespaceName, Scope};

/// The namespace evaluated when the context names none.
pub const DEFAULT_FLAGS_NAMESPACE: &str = "flags";

/// The attributes that pick the ECS context (they feed targeting too).
pub const CONTEXT_ATTRIBUTES: [&str; 4] = ["env", "service", "tenant", "edition"];

/// An evaluation context: `env`, `service`, `tenant` and `edition` pick the
/// ECS context, `namespace` the flags namespace; every attribute,
/// `targetingKey` included, feeds targeting.
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluationContext {
    pub namespace: NamespaceName,
    pub scope: Scope,
    pub attributes: Map<String, Value>,
}

/// Why a context cannot be evaluated (OFREP's `INVALID_CONTEXT`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ContextError(pub String);

impl EvaluationContext {
    /// Splits `attributes`; `namespace` (when given) wins over the
    /// `namespace` attribute, which wins over [`DEFAULT_FLAGS_NAMESPACE`].
    pub fn parse(
        namespace: Option<&str>,
        attributes: Map<String, Value>,
    ) -> Result<Self, ContextError> {
        let text = |name: &str| -> Result<Option<&str>, ContextError> {
            match attributes.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(_) => Err(ContextError(format!(
                    "context attribute {name} must be a string"
                ))),
            }
        };
        let mut pairs = Vec::new();
        for name in CONTEXT_ATTRIBUTES {
            if let Some(value) = text(name)? {
                pairs.push((name, value));
            }
        }
        let scope = Scope::from_pairs(pairs)
            .map_err(|e| ContextError(format!("context attribute {}: {}", e.field, e.reason)))?;
        let name = match namespace {
            Some(name) => name,
            None => text("namespace")?.unwrap_or(DEFAULT_FLAGS_NAMESPACE),
        };
        let namespace = NamespaceName::parse(name)
            .map_err(|e| ContextError(format!("context attribute namespace: {}", e.reason)))?;
        if attributes
            .get("targetingKey")
            .is_some_and(|k| !k.is_string())
        {
            return Err(ContextError("targetingKey must be a string".to_owned()));
        }
        Ok(EvaluationContext {
            namespace,
            scope,
            attributes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attributes(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn splits_the_ecs_context_from_targeting_attributes() {
        let context = EvaluationContext::parse(
            None,
            attributes(
                json!({"tenant": "acme", "env": "prod", "targetingKey": "u1", "plan": "gold"}),
            ),
        )
        .unwrap();
        assert_eq!(context.namespace.as_str(), "flags");
        assert_eq!(
            context.scope,
            Scope::from_pairs([("tenant", "acme"), ("env", "prod")]).unwrap()
        );
        assert_eq!(context.attributes["plan"], json!("gold"));
    }

    #[test]
    fn the_namespace_argument_wins_over_the_attribute() {
        let given =
            EvaluationContext::parse(Some("rollouts"), attributes(json!({"namespace": "other"})));
        assert_eq!(given.unwrap().namespace.as_str(), "rollouts");
        let attribute = EvaluationContext::parse(None, attributes(json!({"namespace": "other"})));
        assert_eq!(attribute.unwrap().namespace.as_str(), "other");
    }

    #[test]
    fn refuses_bad_attributes_naming_them() {
        let bad = |value: Value| {
            EvaluationContext::parse(None, attributes(value))
                .unwrap_err()
                .0
        };
        assert!(bad(json!({"tenant": 3})).contains("tenant"));
        assert!(bad(json!({"env": "Not Valid!"})).contains("env"));
        assert!(bad(json!({"namespace": ""})).contains("namespace"));
        assert!(bad(json!({"targetingKey": 7})).contains("targetingKey"));
    }
}
