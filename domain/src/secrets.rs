//! Secrets as references, and sensitive values.
//!
//! A secret is never stored: a layer holds a **reference** to it,
//! `{"$secret": "<scheme>://<rest>"}` (for example
//! `{"$secret": "vault://kv/app#password"}`), which is what the events stream,
//! the projections, the feed and every API answer carry. A service's SDK turns
//! references into values through a resolver for the scheme (`docs/secrets.md`).
//!
//! What a read masks for roles that may not read sensitive values is in
//! [`crate::sensitive`]; [`MASK`] is what a masked value reads as.
//!
//! Everything here is pure.

use serde_json::{Map, Value};

use crate::error::{DomainError, SchemaViolation};
use crate::json::{child_pointer, is_at_or_below};
use crate::schema::CompiledSchema;

/// The one key of a secret reference object.
pub const SECRET_KEY: &str = "$secret";
/// The longest reference accepted, in bytes.
pub const MAX_REFERENCE: usize = 1024;
/// What a masked value reads as.
pub const MASK: &str = "***";

/// A reference to a secret: `<scheme>://<rest>`, the scheme ASCII
/// alphanumeric. The reference names where the secret lives; it is not the
/// secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretRef {
    uri: String,
    scheme_len: usize,
}

impl SecretRef {
    /// Parses a reference URI, explaining what is wrong when it is not one.
    pub fn parse(uri: &str) -> Result<SecretRef, String> {
        if uri.is_empty() || uri.len() > MAX_REFERENCE {
            return Err(format!(
                "a secret reference must be 1 to {MAX_REFERENCE} bytes long"
            ));
        }
        if uri.chars().any(char::is_control) {
            return Err("a secret reference may not contain control characters".to_owned());
        }
        let Some((scheme, rest)) = uri.split_once("://") else {
            return Err(
                "a secret reference is a URI such as \"env://DB_PASSWORD\" (no scheme)".to_owned(),
            );
        };
        if scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!(
                "the scheme {scheme:?} of a secret reference must be ASCII letters and digits"
            ));
        }
        if rest.is_empty() {
            return Err(format!(
                "the secret reference {uri:?} names nothing after \"{scheme}://\""
            ));
        }
        Ok(SecretRef {
            uri: uri.to_owned(),
            scheme_len: scheme.len(),
        })
    }

    /// The whole reference, such as `vault://kv/app#password`.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The scheme, such as `vault`, which selects the resolver.
    pub fn scheme(&self) -> &str {
        &self.uri[..self.scheme_len]
    }

    /// Everything after `<scheme>://`, such as `kv/app#password`.
    pub fn rest(&self) -> &str {
        &self.uri[self.scheme_len + 3..]
    }

    /// The part of [`rest`](Self::rest) before any `#`.
    pub fn path(&self) -> &str {
        self.rest().split_once('#').map_or(self.rest(), |(p, _)| p)
    }

    /// The part after the first `#`, if any (such as a key inside a secret).
    pub fn fragment(&self) -> Option<&str> {
        self.rest().split_once('#').map(|(_, f)| f)
    }

    /// The reference as a JSON value, `{"$secret": "<uri>"}`.
    pub fn to_value(&self) -> Value {
        let mut map = Map::new();
        map.insert(SECRET_KEY.to_owned(), Value::String(self.uri.clone()));
        Value::Object(map)
    }
}

impl std::fmt::Display for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.uri)
    }
}

/// Whether `value` claims to be a secret reference: an object with a
/// `$secret` key (well-formed or not).
pub fn is_secret_like(value: &Value) -> bool {
    value
        .as_object()
        .is_some_and(|m| m.contains_key(SECRET_KEY))
}

/// Parses a secret reference object: exactly one key, `$secret`, whose value
/// is a reference URI. Explains what is wrong otherwise.
pub fn parse_secret_ref(value: &Value) -> Result<SecretRef, String> {
    let Some(map) = value.as_object() else {
        return Err("a secret reference is an object {\"$secret\": \"<scheme>://...\"}".to_owned());
    };
    if map.len() != 1 {
        return Err(format!(
            "a secret reference object has exactly one key, \"{SECRET_KEY}\""
        ));
    }
    match map.get(SECRET_KEY) {
        Some(Value::String(uri)) => SecretRef::parse(uri),
        Some(_) => Err(format!("\"{SECRET_KEY}\" must be a string URI")),
        None => Err(format!(
            "a secret reference object has exactly one key, \"{SECRET_KEY}\""
        )),
    }
}

/// The reference `value` is, when it is a well-formed reference object.
pub fn secret_ref(value: &Value) -> Option<SecretRef> {
    parse_secret_ref(value).ok()
}

/// Visits every object claiming to be a secret reference (depth first), with
/// its pointer; does not descend into them.
fn visit_secret_like<'a>(pointer: &str, value: &'a Value, out: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(_) if is_secret_like(value) => out.push((pointer.to_owned(), value)),
        Value::Object(map) => {
            for (key, child) in map {
                visit_secret_like(&child_pointer(pointer, key), child, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                visit_secret_like(&format!("{pointer}/{i}"), child, out);
            }
        }
        _ => {}
    }
}

/// Every well-formed secret reference in a document, with its JSON pointer.
pub fn find_secret_refs(doc: &Value) -> Vec<(String, SecretRef)> {
    let mut found = Vec::new();
    visit_secret_like("", doc, &mut found);
    found
        .into_iter()
        .filter_map(|(pointer, value)| secret_ref(value).map(|r| (pointer, r)))
        .collect()
}

/// The first malformed secret reference object in a document: its pointer
/// and what is wrong.
pub fn malformed_secret_ref(doc: &Value) -> Option<(String, String)> {
    let mut found = Vec::new();
    visit_secret_like("", doc, &mut found);
    found.into_iter().find_map(|(pointer, value)| {
        parse_secret_ref(value)
            .err()
            .map(|reason| (pointer_or_root(pointer), reason))
    })
}

fn pointer_or_root(pointer: String) -> String {
    if pointer.is_empty() {
        "/".to_owned()
    } else {
        pointer
    }
}

/// Refuses layer values holding a malformed `$secret` object (extra keys, a
/// value that is not a string, no scheme): 400 naming `values`.
pub fn check_secret_refs(values: &Value) -> Result<(), DomainError> {
    if is_secret_like(values) {
        return Err(DomainError::invalid(
            "values",
            "the layer's values are a document, not a secret reference at /",
        ));
    }
    match malformed_secret_ref(values) {
        None => Ok(()),
        Some((pointer, reason)) => Err(DomainError::invalid(
            "values",
            format!("{reason} at {pointer}"),
        )),
    }
}

/// The subschema that describes the value at `pointer`, following
/// `properties`, then `items` (for array indices), then an object
/// `additionalProperties`.
fn subschema_at<'a>(schema: &'a Value, pointer: &str) -> Option<&'a Value> {
    let mut current = schema;
    for token in pointer.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        current = if let Some(property) = current.get("properties").and_then(|p| p.get(&token)) {
            property
        } else if token.parse::<usize>().is_ok()
            && let Some(items) = current.get("items").filter(|i| i.is_object())
        {
            items
        } else {
            current
                .get("additionalProperties")
                .filter(|a| a.is_object())?
        };
    }
    Some(current)
}

fn declares_string(schema: &Value) -> bool {
    match schema.get("type") {
        Some(Value::String(t)) => t == "string",
        Some(Value::Array(types)) => types.iter().any(|t| t == "string"),
        _ => false,
    }
}

/// The violations of `instance` against the namespace's schema, where a secret
/// reference stands for a string: it is accepted wherever the schema declares
/// `"type": "string"` (its other constraints — length, pattern, format, enum —
/// cannot be checked, since the server never sees the secret) and refused
/// anywhere else. A malformed `$secret` object (for example one merged with
/// another layer's keys) is a violation too.
pub fn schema_violations(
    compiled: &CompiledSchema,
    schema: &Value,
    instance: &Value,
) -> Vec<SchemaViolation> {
    let mut claimed = Vec::new();
    visit_secret_like("", instance, &mut claimed);
    if claimed.is_empty() {
        return compiled.violations(instance);
    }
    let mut violations = Vec::new();
    let mut placeholders = Vec::new();
    for (pointer, value) in &claimed {
        if let Err(reason) = parse_secret_ref(value) {
            violations.push(SchemaViolation {
                pointer: pointer.clone(),
                message: format!("malformed secret reference: {reason}"),
                layer: None,
                context: None,
            });
        } else if subschema_at(schema, pointer).is_some_and(declares_string) {
            placeholders.push(pointer.clone());
        } else {
            violations.push(SchemaViolation {
                pointer: pointer.clone(),
                message: "a secret reference stands for a string: the schema must declare \
                          \"type\": \"string\" here"
                    .to_owned(),
                layer: None,
                context: None,
            });
        }
    }
    let mut substituted = instance.clone();
    for pointer in &placeholders {
        if let Some(slot) = substituted.pointer_mut(pointer) {
            *slot = Value::String(String::new());
        }
    }
    let claimed: Vec<&String> = claimed.iter().map(|(p, _)| p).collect();
    violations.extend(
        compiled
            .violations(&substituted)
            .into_iter()
            .filter(|v| !claimed.iter().any(|p| is_at_or_below(&v.pointer, p))),
    );
    violations
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parses_references() {
        let r = secret_ref(&json!({"$secret": "vault://kv/app#password"})).unwrap();
        assert_eq!(r.scheme(), "vault");
        assert_eq!(r.rest(), "kv/app#password");
        assert_eq!(r.path(), "kv/app");
        assert_eq!(r.fragment(), Some("password"));
        assert_eq!(r.uri(), "vault://kv/app#password");
        assert_eq!(r.to_value(), json!({"$secret": "vault://kv/app#password"}));
        let r = secret_ref(&json!({"$secret": "file:///run/secrets/db"})).unwrap();
        assert_eq!((r.scheme(), r.rest()), ("file", "/run/secrets/db"));
        assert_eq!(r.fragment(), None);
    }

    #[test]
    fn refuses_malformed_references() {
        for bad in [
            json!({"$secret": "env://A", "other": 1}),
            json!({"$secret": 42}),
            json!({"$secret": null}),
            json!({"$secret": "no-scheme"}),
            json!({"$secret": "://x"}),
            json!({"$secret": "va-ult://x"}),
            json!({"$secret": "env://"}),
            json!({"$secret": ""}),
            json!({"$secret": "env://A\nB"}),
            json!({"$secret": format!("env://{}", "x".repeat(MAX_REFERENCE))}),
            json!("env://A"),
            json!({}),
        ] {
            assert!(secret_ref(&bad).is_none(), "{bad}");
        }
        assert!(
            secret_ref(&json!({"$secret": format!("e://{}", "x".repeat(MAX_REFERENCE - 4))}))
                .is_some()
        );
    }

    #[test]
    fn finds_references_with_their_pointers() {
        let doc = json!({
            "db": {"password": {"$secret": "env://DB"}, "user": "app"},
            "a/b": [{"$secret": "file:///k"}, 1],
            "bad": {"$secret": 1}
        });
        let mut found: Vec<(String, String)> = find_secret_refs(&doc)
            .into_iter()
            .map(|(p, r)| (p, r.uri().to_owned()))
            .collect();
        found.sort();
        assert_eq!(
            found,
            [
                ("/a~1b/0".to_owned(), "file:///k".to_owned()),
                ("/db/password".to_owned(), "env://DB".to_owned()),
            ]
        );
    }

    #[test]
    fn check_names_values_and_the_pointer() {
        assert!(check_secret_refs(&json!({"a": {"$secret": "env://A"}})).is_ok());
        assert!(check_secret_refs(&json!({"a": "plain", "$notsecret": 1})).is_ok());
        match check_secret_refs(&json!({"db": {"password": {"$secret": "env://A", "x": 1}}})) {
            Err(DomainError::InvalidInput { field, reason }) => {
                assert_eq!(field, "values");
                assert!(reason.ends_with("at /db/password"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert!(check_secret_refs(&json!({"$secret": "nothing"})).is_err());
        assert!(check_secret_refs(&json!({"$secret": "env://A"})).is_err());
    }

    #[test]
    fn references_validate_as_strings_only_where_the_schema_says_string() {
        let schema = json!({
            "type": "object",
            "properties": {
                "db": {"type": "object", "properties": {
                    "password": {"type": "string", "minLength": 40, "writeOnly": true},
                    "port": {"type": "integer"}
                }},
                "keys": {"type": "array", "items": {"type": ["string", "null"]}},
                "extra": {"type": "object", "additionalProperties": {"type": "string"}}
            },
            "additionalProperties": false
        });
        let compiled = CompiledSchema::compile(&schema).unwrap();
        let ok = json!({
            "db": {"password": {"$secret": "env://DB"}, "port": 5432},
            "keys": [{"$secret": "file:///a"}, "b"],
            "extra": {"token": {"$secret": "vault://t"}}
        });
        assert_eq!(schema_violations(&compiled, &schema, &ok), vec![]);
        // Without the substitution the reference is an object, not a string.
        assert!(!compiled.violations(&ok).is_empty());

        let bad = json!({
            "db": {"port": {"$secret": "env://PORT"}, "password": {"$secret": "env://A", "x": 1}},
            "other": {"$secret": "env://X"}
        });
        let mut pointers: Vec<String> = schema_violations(&compiled, &schema, &bad)
            .into_iter()
            .map(|v| v.pointer)
            .collect();
        pointers.sort();
        // `/other` also fails `additionalProperties: false` at the root.
        assert_eq!(pointers, ["", "/db/password", "/db/port", "/other"]);
        // Other violations still count.
        let wrong = json!({"db": {"password": {"$secret": "env://A"}, "port": "x"}});
        let found = schema_violations(&compiled, &schema, &wrong);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].pointer, "/db/port");
    }
}
