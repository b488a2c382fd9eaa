//! Sensitive values: what a schema marks `"writeOnly": true` or
//! `"x-sensitive": true`, and masking them for roles that may not read them.
//!
//! Which values are sensitive is decided by walking the document together
//! with the schema, the way a validator would: a value is sensitive when any
//! subschema that applies to it is marked, wherever that subschema is found —
//! `properties`, `patternProperties`, `additionalProperties`, `items` and
//! `prefixItems`, through local `$ref`s (`$defs`, `definitions`) and the
//! `allOf`/`anyOf`/`oneOf`/`then`/`else` applicators. Walking the document
//! rather than listing pointers from the schema alone is what makes array
//! items, arbitrary keys and recursive definitions exact: their pointers
//! depend on the document. Everything at or below a sensitive value is masked
//! as a whole.
//!
//! Everything here is pure.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::json::escape_token;
use crate::role::Role;
use crate::secrets::MASK;

/// What the values of a read are for, which decides whether a `service`
/// role reads them unmasked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// The configuration a service runs with: resolved documents, watches
    /// and the change feed. A service reads it unmasked: it needs it to run.
    Configuration,
    /// Records of what was written: layers, their history, change requests,
    /// the audit log and exports.
    Record,
}

impl Reading {
    /// Whether `role` reads sensitive values unmasked in this kind of read.
    pub fn reveals_to(self, role: &Role) -> bool {
        role.reads_sensitive()
            || (self == Reading::Configuration && matches!(role, Role::Service { .. }))
    }
}

/// Whether a (sub)schema marks its value sensitive.
fn marks_sensitive(schema: &Value) -> bool {
    schema.get("writeOnly") == Some(&Value::Bool(true))
        || schema.get("x-sensitive") == Some(&Value::Bool(true))
}

/// Whether anything in the schema looks marked sensitive: a cheap first check,
/// since most schemas mark nothing and then no document needs walking. It
/// looks everywhere, data such as `default` included: a false alarm only
/// costs the walk, which decides exactly.
fn marks_anything(schema: &Value) -> bool {
    match schema {
        Value::Object(map) => marks_sensitive(schema) || map.values().any(marks_anything),
        Value::Array(items) => items.iter().any(marks_anything),
        _ => false,
    }
}

/// Every `patternProperties` pattern in the schema (looking everywhere, as
/// [`marks_anything`] does: compiling a pattern never used is harmless).
fn collect_patterns(schema: &Value, out: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            for (key, child) in map {
                if key == "patternProperties"
                    && let Value::Object(patterns) = child
                {
                    out.extend(patterns.keys().cloned());
                }
                collect_patterns(child, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_patterns(i, out)),
        _ => {}
    }
}

/// A namespace schema's sensitive values: masks documents and tells whether a
/// value at a pointer is sensitive. Build it once per schema and reuse it.
pub struct Sensitivity {
    root: Value,
    /// Whether anything is marked at all.
    marked: bool,
    /// The compiled `patternProperties` patterns (ECMA 262, as the validator
    /// reads them), by their text; `None` when a pattern does not compile
    /// (the schema was accepted, so this does not happen in practice; such a
    /// pattern then matches nothing, as it validates nothing).
    patterns: HashMap<String, Option<jsonschema::Validator>>,
}

impl Sensitivity {
    /// Reads what `schema` marks sensitive.
    pub fn new(schema: Value) -> Sensitivity {
        let marked = marks_anything(&schema);
        let mut patterns = HashMap::new();
        if marked {
            let mut texts = Vec::new();
            collect_patterns(&schema, &mut texts);
            for text in texts {
                let compiled =
                    jsonschema::validator_for(&serde_json::json!({"pattern": text})).ok();
                patterns.entry(text).or_insert(compiled);
            }
        }
        Sensitivity {
            root: schema,
            marked,
            patterns,
        }
    }

    /// Reads what `schema` marks sensitive (`None`: nothing).
    pub fn of(schema: Option<&Value>) -> Sensitivity {
        Sensitivity::new(schema.cloned().unwrap_or(Value::Bool(true)))
    }

    /// Whether the schema marks nothing sensitive (masking changes nothing).
    pub fn is_empty(&self) -> bool {
        !self.marked
    }

    /// Replaces every sensitive value of `doc` (everything at or below it)
    /// with [`MASK`]. Absent values stay absent and `null` (a removal in a
    /// layer or a patch) stays `null`.
    pub fn mask(&self, doc: &mut Value) {
        if self.marked {
            self.mask_node(doc, &self.expand([&self.root]));
        }
    }

    /// Whether the value at `pointer` in `doc` is sensitive (or lies below a
    /// sensitive value). `doc` tells array indices from object keys; the
    /// pointer need not exist in it beyond its last existing parent, whose
    /// kind then decides (a missing key below an object, say).
    pub fn covers(&self, doc: &Value, pointer: &str) -> bool {
        if !self.marked {
            return false;
        }
        let mut schemas = self.expand([&self.root]);
        let mut node = Some(doc);
        for token in pointer.split('/').skip(1) {
            if schemas.iter().any(|s| marks_sensitive(s)) {
                return true;
            }
            let token = token.replace("~1", "/").replace("~0", "~");
            let (children, next) = match node {
                Some(Value::Array(items)) => match token.parse::<usize>() {
                    Ok(index) => (self.item_schemas(&schemas, index), items.get(index)),
                    Err(_) => return false,
                },
                Some(Value::Object(map)) => {
                    (self.property_schemas(&schemas, &token), map.get(&token))
                }
                // Below a scalar, or below a missing value: read the token as
                // a key (an index also names an object key of that text).
                _ => (self.property_schemas(&schemas, &token), None),
            };
            schemas = self.expand(children);
            node = next;
        }
        schemas.iter().any(|s| marks_sensitive(s))
    }

    /// The schema itself with the sensitive parts of the data it holds
    /// masked: a `default`, `const`, `enum` or `examples` is an instance of
    /// the subschema it sits in, so what that subschema (and everything it
    /// reaches) marks is masked in it, as in any document.
    pub fn masked_schema(&self) -> Value {
        let mut out = self.root.clone();
        if !self.marked {
            return out;
        }
        let mut found = Vec::new();
        self.collect_data("", &self.root, &mut found);
        for (pointer, masked) in found {
            if let Some(slot) = out.pointer_mut(&pointer) {
                *slot = masked;
            }
        }
        out
    }

    /// Every data keyword below `schema` (at `pointer` in the root) whose
    /// value changes when masked, with its masked value.
    fn collect_data(&self, pointer: &str, schema: &Value, out: &mut Vec<(String, Value)>) {
        let Value::Object(map) = schema else { return };
        let applies = self.expand([schema]);
        for (key, child) in map {
            let at = format!("{pointer}/{}", escape_token(key));
            match key.as_str() {
                "default" | "const" => {
                    let mut masked = child.clone();
                    self.mask_node(&mut masked, &applies);
                    if &masked != child {
                        out.push((at, masked));
                    }
                }
                "enum" | "examples" => {
                    if let Value::Array(items) = child {
                        for (i, item) in items.iter().enumerate() {
                            let mut masked = item.clone();
                            self.mask_node(&mut masked, &applies);
                            if &masked != item {
                                out.push((format!("{at}/{i}"), masked));
                            }
                        }
                    }
                }
                // Keywords holding a map of schemas.
                "properties" | "patternProperties" | "$defs" | "definitions"
                | "dependentSchemas" => {
                    if let Value::Object(schemas) = child {
                        for (name, sub) in schemas {
                            let sub_at = format!("{at}/{}", escape_token(name));
                            self.collect_data(&sub_at, sub, out);
                        }
                    }
                }
                // Keywords holding a list of schemas.
                "allOf" | "anyOf" | "oneOf" | "prefixItems" | "items" => match child {
                    Value::Array(schemas) => {
                        for (i, sub) in schemas.iter().enumerate() {
                            self.collect_data(&format!("{at}/{i}"), sub, out);
                        }
                    }
                    sub => self.collect_data(&at, sub, out),
                },
                // Keywords holding one schema.
                "additionalProperties"
                | "additionalItems"
                | "unevaluatedProperties"
                | "unevaluatedItems"
                | "contains"
                | "propertyNames"
                | "not"
                | "if"
                | "then"
                | "else" => self.collect_data(&at, child, out),
                _ => {}
            }
        }
    }

    fn mask_node(&self, node: &mut Value, schemas: &[&Value]) {
        if node.is_null() || schemas.is_empty() {
            return;
        }
        if schemas.iter().any(|s| marks_sensitive(s)) {
            *node = Value::String(MASK.to_owned());
            return;
        }
        match node {
            Value::Object(map) => {
                for (key, child) in map.iter_mut() {
                    let children = self.expand(self.property_schemas(schemas, key));
                    self.mask_node(child, &children);
                }
            }
            Value::Array(items) => {
                for (index, child) in items.iter_mut().enumerate() {
                    let children = self.expand(self.item_schemas(schemas, index));
                    self.mask_node(child, &children);
                }
            }
            _ => {}
        }
    }

    /// The subschemas that apply to the value itself: `schemas`, and what
    /// their `$ref`s and in-place applicators reach, each once.
    fn expand<'a>(&'a self, schemas: impl IntoIterator<Item = &'a Value>) -> Vec<&'a Value> {
        let mut seen: HashSet<*const Value> = HashSet::new();
        let mut out = Vec::new();
        let mut pending: Vec<&'a Value> = schemas.into_iter().collect();
        while let Some(schema) = pending.pop() {
            if !schema.is_object() || !seen.insert(std::ptr::from_ref(schema)) {
                continue;
            }
            out.push(schema);
            if let Some(target) = schema
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| self.local_ref(r))
            {
                pending.push(target);
            }
            for applicator in ["allOf", "anyOf", "oneOf"] {
                if let Some(Value::Array(branches)) = schema.get(applicator) {
                    pending.extend(branches);
                }
            }
            for branch in ["then", "else"] {
                if let Some(branch) = schema.get(branch) {
                    pending.push(branch);
                }
            }
        }
        out
    }

    /// The schema a local reference (`#`, `#/$defs/name`, any JSON pointer
    /// fragment) names; references to other documents are not followed.
    fn local_ref(&self, reference: &str) -> Option<&Value> {
        let fragment = reference.strip_prefix('#')?;
        let decoded = percent_decode(fragment)?;
        self.root.pointer(&decoded)
    }

    /// The subschemas that apply to the object member `key`: the matching
    /// `properties` and `patternProperties`, or else `additionalProperties`.
    fn property_schemas<'a>(&'a self, schemas: &[&'a Value], key: &str) -> Vec<&'a Value> {
        let mut out = Vec::new();
        for schema in schemas {
            let mut matched = false;
            if let Some(property) = schema.get("properties").and_then(|p| p.get(key)) {
                out.push(property);
                matched = true;
            }
            if let Some(Value::Object(patterns)) = schema.get("patternProperties") {
                for (pattern, property) in patterns {
                    if self.matches(pattern, key) {
                        out.push(property);
                        matched = true;
                    }
                }
            }
            if !matched && let Some(additional) = schema.get("additionalProperties") {
                out.push(additional);
            }
        }
        out
    }

    /// The subschemas that apply to the array item at `index`: `prefixItems`
    /// (or a draft-7 `items` array) for the leading items, then `items` (or
    /// `additionalItems`).
    fn item_schemas<'a>(&'a self, schemas: &[&'a Value], index: usize) -> Vec<&'a Value> {
        let mut out = Vec::new();
        for schema in schemas {
            let prefix = match (schema.get("prefixItems"), schema.get("items")) {
                (Some(Value::Array(prefix)), _) | (None, Some(Value::Array(prefix))) => {
                    Some(prefix)
                }
                _ => None,
            };
            if let Some(item) = prefix.and_then(|p| p.get(index)) {
                out.push(item);
                continue;
            }
            let rest = match (prefix.is_some(), schema.get("items")) {
                (_, Some(items)) if items.is_object() => Some(items),
                (true, _) => schema.get("additionalItems"),
                _ => None,
            };
            out.extend(rest);
        }
        out
    }

    fn matches(&self, pattern: &str, key: &str) -> bool {
        self.patterns
            .get(pattern)
            .and_then(Option::as_ref)
            .is_some_and(|v| v.is_valid(&Value::String(key.to_owned())))
    }
}

/// Decodes `%XX` escapes of a URI fragment; `None` when malformed.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Masks the sensitive values of `values` (a layer's values, a revision's, a
/// proposed change's, an audit entry's before/after, a resolved document, a
/// feed message's) per `schema` (the namespace's current schema; `None`:
/// nothing is sensitive), unless `reading` reveals them to `role`. Every read
/// path that returns values calls this.
pub fn mask_for(role: &Role, reading: Reading, schema: Option<&Value>, values: &mut Value) {
    if reading.reveals_to(role) {
        return;
    }
    if schema.is_some() {
        Sensitivity::of(schema).mask(values);
    }
}

/// A namespace's schema as `role` may read it in this kind of read: the data
/// it holds (`default`, `const`, `enum`, `examples`) masked where it marks
/// values sensitive, unless `reading` reveals them to `role`.
pub fn mask_schema_for(role: &Role, reading: Reading, schema: &mut Value) {
    if reading.reveals_to(role) {
        return;
    }
    let sensitivity = Sensitivity::new(schema.clone());
    if !sensitivity.is_empty() {
        *schema = sensitivity.masked_schema();
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn masked(schema: &Value, doc: Value) -> Value {
        let mut doc = doc;
        Sensitivity::of(Some(schema)).mask(&mut doc);
        doc
    }

    #[test]
    fn follows_properties_recursively() {
        let schema = json!({
            "type": "object",
            "properties": {
                "db": {"type": "object", "properties": {
                    "password": {"type": "string", "writeOnly": true},
                    "user": {"type": "string"}
                }},
                "api/key": {"type": "string", "x-sensitive": true},
                "tls": {"type": "object", "x-sensitive": true, "properties": {"key": {"writeOnly": true}}},
                "plain": {"type": "string", "writeOnly": false}
            }
        });
        assert_eq!(
            masked(
                &schema,
                json!({
                    "db": {"password": {"$secret": "env://A"}, "user": "app"},
                    "api/key": "k",
                    "tls": {"key": "k", "cert": "c"},
                    "plain": "p"
                })
            ),
            json!({"db": {"password": "***", "user": "app"}, "api/key": "***", "tls": "***", "plain": "p"})
        );
    }

    #[test]
    fn absent_and_null_values_stay_as_they_are() {
        let schema = json!({"properties": {"p": {"writeOnly": true}, "q": {"writeOnly": true}}});
        assert_eq!(masked(&schema, json!({"p": null})), json!({"p": null}));
        assert_eq!(masked(&schema, json!({"r": 1})), json!({"r": 1}));
    }

    #[test]
    fn follows_items_and_prefix_items() {
        let schema = json!({"properties": {
            "keys": {"type": "array", "items": {"type": "string", "writeOnly": true}},
            "users": {"type": "array", "items": {"properties": {"token": {"x-sensitive": true}}}},
            "pair": {"prefixItems": [{"type": "string"}, {"writeOnly": true}]}
        }});
        assert_eq!(
            masked(
                &schema,
                json!({
                    "keys": ["a", "b"],
                    "users": [{"name": "n", "token": "t"}, {"name": "m"}],
                    "pair": ["open", "hidden"]
                })
            ),
            json!({
                "keys": ["***", "***"],
                "users": [{"name": "n", "token": "***"}, {"name": "m"}],
                "pair": ["open", "***"]
            })
        );
    }

    #[test]
    fn follows_additional_and_pattern_properties() {
        let schema = json!({"properties": {
            "tokens": {"type": "object", "additionalProperties": {"type": "string", "writeOnly": true}},
            "env": {
                "type": "object",
                "properties": {"PUBLIC_SECRET": {"type": "string"}},
                "patternProperties": {"_SECRET$": {"x-sensitive": true}},
                "additionalProperties": {"type": "string"}
            }
        }});
        assert_eq!(
            masked(
                &schema,
                json!({
                    "tokens": {"github": "g", "slack": "s"},
                    "env": {"DB_SECRET": "d", "HOME": "/root", "PUBLIC_SECRET": "p"}
                })
            ),
            json!({
                "tokens": {"github": "***", "slack": "***"},
                // A key both declared and matching a pattern gets both subschemas.
                "env": {"DB_SECRET": "***", "HOME": "/root", "PUBLIC_SECRET": "***"}
            })
        );
    }

    #[test]
    fn follows_refs_into_defs_including_recursive_ones() {
        let schema = json!({
            "$defs": {
                "credential": {"type": "string", "writeOnly": true},
                "node": {"type": "object", "properties": {
                    "secret": {"$ref": "#/$defs/credential"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}
                }}
            },
            "definitions": {"old": {"x-sensitive": true}},
            "properties": {
                "tree": {"$ref": "#/$defs/node"},
                "legacy": {"$ref": "#/definitions/old"},
                "self": {"$ref": "#"}
            }
        });
        assert_eq!(
            masked(
                &schema,
                json!({
                    "tree": {"secret": "a", "children": [{"secret": "b", "children": [{"secret": "c"}]}]},
                    "legacy": {"x": 1},
                    "self": {"legacy": "l", "other": 2}
                })
            ),
            json!({
                "tree": {"secret": "***", "children": [{"secret": "***", "children": [{"secret": "***"}]}]},
                "legacy": "***",
                "self": {"legacy": "***", "other": 2}
            })
        );
    }

    #[test]
    fn follows_all_of_any_of_one_of_and_conditionals() {
        let schema = json!({
            "allOf": [{"properties": {"a": {"writeOnly": true}}}],
            "anyOf": [{"properties": {"b": {"writeOnly": true}}}, {"required": ["x"]}],
            "oneOf": [{"properties": {"c": {"properties": {"d": {"x-sensitive": true}}}}}],
            "if": {"properties": {"kind": {"const": "db"}}},
            "then": {"properties": {"e": {"writeOnly": true}}},
            "else": {"properties": {"f": {"writeOnly": true}}},
            "properties": {"g": {"type": "integer"}}
        });
        assert_eq!(
            masked(
                &schema,
                json!({"a": 1, "b": 2, "c": {"d": 3, "k": 4}, "e": 5, "f": 6, "g": 7})
            ),
            json!({"a": "***", "b": "***", "c": {"d": "***", "k": 4}, "e": "***", "f": "***", "g": 7})
        );
    }

    #[test]
    fn a_self_referencing_applicator_terminates() {
        let schema = json!({"$defs": {"loop": {"allOf": [{"$ref": "#/$defs/loop"}], "writeOnly": true}},
            "allOf": [{"$ref": "#"}], "properties": {"x": {"$ref": "#/$defs/loop"}}});
        assert_eq!(
            masked(&schema, json!({"x": 1, "y": 2})),
            json!({"x": "***", "y": 2})
        );
    }

    #[test]
    fn covers_tells_whether_a_pointer_is_sensitive() {
        let schema = json!({"properties": {
            "db": {"properties": {"password": {"writeOnly": true}}},
            "keys": {"items": {"writeOnly": true}},
            "map": {"additionalProperties": {"properties": {"token": {"writeOnly": true}}}}
        }});
        let doc = json!({"db": {"password": "p", "user": "u"}, "keys": ["a"], "map": {"x": {"token": "t", "n": 1}}});
        let s = Sensitivity::of(Some(&schema));
        for (pointer, sensitive) in [
            ("", false),
            ("/db", false),
            ("/db/user", false),
            ("/db/password", true),
            ("/db/password/below", true),
            ("/keys/0", true),
            ("/keys/7", true),
            ("/map/x/token", true),
            ("/map/y/token", true),
            ("/map/x/n", false),
            ("/other", false),
        ] {
            assert_eq!(s.covers(&doc, pointer), sensitive, "{pointer}");
        }
    }

    #[test]
    fn only_schemas_mark_values_data_does_not() {
        assert!(
            Sensitivity::of(Some(&json!({"properties": {"a": {"type": "string"}}}))).is_empty()
        );
        assert!(Sensitivity::of(None).is_empty());
        // A `default` that looks like a marked schema is data: it marks nothing.
        let schema = json!({"properties": {"a": {"default": {"writeOnly": true}}}});
        let mut doc = json!({"a": {"writeOnly": true}});
        Sensitivity::of(Some(&schema)).mask(&mut doc);
        assert_eq!(doc, json!({"a": {"writeOnly": true}}));
        // A property may be named like a keyword.
        let schema = json!({"properties": {"default": {"writeOnly": true}}});
        assert_eq!(
            masked(&schema, json!({"default": 1})),
            json!({"default": "***"})
        );
    }

    #[test]
    fn a_schema_reads_with_its_sensitive_data_masked() {
        let schema = json!({
            "$defs": {"credential": {"type": "string", "writeOnly": true, "default": "d-secret"}},
            "properties": {
                "db": {
                    "type": "object",
                    "default": {"password": "p-secret", "user": "app"},
                    "properties": {
                        "password": {"type": "string", "writeOnly": true,
                                     "examples": ["e-secret"], "enum": ["a", "b"]},
                        "user": {"type": "string", "default": "app"}
                    }
                },
                "signing": {"$ref": "#/$defs/credential", "const": "c-secret"},
                "level": {"type": "string", "default": "info", "enum": ["info", "debug"]}
            },
            "default": {"db": {"password": "root-secret"}, "level": "info"}
        });
        let masked = Sensitivity::new(schema.clone()).masked_schema();
        let text = masked.to_string();
        assert!(!text.contains("secret\""), "{text}");
        for leaked in [
            "d-secret",
            "p-secret",
            "e-secret",
            "c-secret",
            "root-secret",
        ] {
            assert!(!text.contains(leaked), "{leaked}: {text}");
        }
        assert_eq!(
            masked["properties"]["db"]["default"],
            json!({"password": "***", "user": "app"})
        );
        assert_eq!(
            masked["properties"]["db"]["properties"]["password"]["enum"],
            json!(["***", "***"])
        );
        assert_eq!(masked["properties"]["level"], schema["properties"]["level"]);
        assert_eq!(
            masked["default"],
            json!({"db": {"password": "***"}, "level": "info"})
        );
        // Nothing but data changes.
        assert_eq!(
            masked["properties"]["db"]["properties"]["password"]["writeOnly"],
            json!(true)
        );

        let mut read = schema.clone();
        mask_schema_for(&Role::Admin, Reading::Record, &mut read);
        assert_eq!(read, schema);
        mask_schema_for(&Role::Auditor, Reading::Record, &mut read);
        assert_eq!(read, masked);
    }

    #[test]
    fn mask_for_depends_on_the_role_and_the_reading() {
        let schema = json!({"properties": {"p": {"type": "string", "writeOnly": true}}});
        let values = json!({"p": "hunter2", "q": 1});
        let viewer = Role::Viewer {
            namespaces: Default::default(),
            tenant: None,
        };
        let editor = Role::Editor {
            namespaces: Default::default(),
            tenant: None,
        };
        let service = Role::Service {
            env: crate::EnvName::parse("prod").unwrap(),
            service: crate::ServiceName::parse("api").unwrap(),
        };
        for (role, reading, masked) in [
            (&Role::Admin, Reading::Record, false),
            (&editor, Reading::Record, false),
            (&Role::Auditor, Reading::Record, true),
            (&Role::Auditor, Reading::Configuration, true),
            (&viewer, Reading::Record, true),
            (&viewer, Reading::Configuration, true),
            (&service, Reading::Configuration, false),
            (&service, Reading::Record, true),
        ] {
            let mut v = values.clone();
            mask_for(role, reading, Some(&schema), &mut v);
            assert_eq!(v["p"] == json!(MASK), masked, "{} {reading:?}", role.name());
            assert_eq!(v["q"], json!(1));
        }
        let mut v = values.clone();
        mask_for(&Role::Auditor, Reading::Record, None, &mut v);
        assert_eq!(v, values);
    }
}
