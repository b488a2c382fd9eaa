//! JSON Schema (2020-12 unless the schema says otherwise) checks.

use serde_json::Value;

use crate::error::{DomainError, SchemaViolation};

/// A namespace schema compiled once for repeated validation.
pub struct CompiledSchema(jsonschema::Validator);

impl CompiledSchema {
    /// Checks the schema against its meta-schema and compiles it.
    pub fn compile(schema: &Value) -> Result<Self, DomainError> {
        if let Err(error) = jsonschema::meta::validate(schema) {
            return Err(DomainError::InvalidSchema(format!(
                "{error} (at {})",
                pointer_or_root(&error.instance_path.to_string())
            )));
        }
        jsonschema::validator_for(schema)
            .map(CompiledSchema)
            .map_err(|error| DomainError::InvalidSchema(error.to_string()))
    }

    /// Every violation of `instance`, each with its JSON pointer.
    pub fn violations(&self, instance: &Value) -> Vec<SchemaViolation> {
        // A valid document is the common case, and answering "valid" stops
        // at nothing to collect: much cheaper than gathering errors, which
        // counts when one write checks thousands of contexts.
        if self.0.is_valid(instance) {
            return Vec::new();
        }
        self.0
            .iter_errors(instance)
            .map(|error| SchemaViolation {
                pointer: error.instance_path.to_string(),
                message: error.to_string(),
                layer: None,
                context: None,
            })
            .collect()
    }
}

fn pointer_or_root(pointer: &str) -> &str {
    if pointer.is_empty() {
        "the root"
    } else {
        pointer
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lists_every_violation_with_its_pointer() {
        let schema = CompiledSchema::compile(&json!({
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "object", "properties": {"c": {"maximum": 3}}}}
        }))
        .unwrap();
        let mut pointers: Vec<String> = schema
            .violations(&json!({"a": "x", "b": {"c": 9}}))
            .into_iter()
            .map(|v| v.pointer)
            .collect();
        pointers.sort();
        assert_eq!(pointers, ["/a", "/b/c"]);
        assert!(schema.violations(&json!({"a": 1})).is_empty());
    }

    #[test]
    fn refuses_an_invalid_schema() {
        assert!(matches!(
            CompiledSchema::compile(&json!({"type": "no-such-type"})),
            Err(DomainError::InvalidSchema(_))
        ));
    }
}
