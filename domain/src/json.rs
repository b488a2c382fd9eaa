//! JSON helpers: RFC 7386 merge patch, RFC 6901 pointers and schema defaults.

use serde_json::{Map, Value};

/// Applies an RFC 7386 merge patch to `target`.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// Escapes one reference token of a JSON pointer (RFC 6901).
pub fn escape_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// The pointer of `key` inside the value at `parent`.
pub fn child_pointer(parent: &str, key: &str) -> String {
    format!("{parent}/{}", escape_token(key))
}

/// Whether `pointer` is a syntactically valid, non-root JSON pointer.
pub fn is_valid_pointer(pointer: &str) -> bool {
    if !pointer.starts_with('/') || pointer.len() < 2 {
        return false;
    }
    // `~` must be followed by 0 or 1.
    let bytes = pointer.as_bytes();
    bytes
        .iter()
        .enumerate()
        .all(|(i, b)| *b != b'~' || matches!(bytes.get(i + 1), Some(b'0' | b'1')))
}

/// Whether `inner` is `outer` or lies below it.
pub fn is_at_or_below(inner: &str, outer: &str) -> bool {
    inner == outer || (inner.starts_with(outer) && inner.as_bytes().get(outer.len()) == Some(&b'/'))
}

/// The values the schema declares as defaults, as one document: the root
/// `default` (when an object) overlaid by the `default` of every property,
/// recursively through `properties`.
pub fn schema_defaults(schema: &Value) -> Map<String, Value> {
    let mut out = match schema.get("default") {
        Some(Value::Object(map)) => map.clone(),
        _ => Map::new(),
    };
    if let Some(Value::Object(properties)) = schema.get("properties") {
        for (key, property) in properties {
            let nested = schema_defaults(property);
            match property.get("default") {
                Some(Value::Object(_)) | None if !nested.is_empty() => {
                    let mut value = Value::Object(
                        out.remove(key)
                            .and_then(|v| v.as_object().cloned())
                            .unwrap_or_default(),
                    );
                    merge_patch(&mut value, &Value::Object(nested));
                    out.insert(key.clone(), value);
                }
                Some(default) if !default.is_object() => {
                    out.insert(key.clone(), default.clone());
                }
                _ => {}
            }
        }
    }
    out
}

/// Every leaf of a document with its pointer: values that are not objects, and
/// empty objects.
pub fn leaves(value: &Value) -> Vec<(String, &Value)> {
    fn walk<'a>(pointer: String, value: &'a Value, out: &mut Vec<(String, &'a Value)>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (key, child) in map {
                    walk(child_pointer(&pointer, key), child, out);
                }
            }
            _ => out.push((pointer, value)),
        }
    }
    let mut out = Vec::new();
    if let Value::Object(map) = value {
        for (key, child) in map {
            walk(child_pointer("", key), child, &mut out);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7386_examples() {
        let cases = [
            (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
            (json!({"a":"b"}), json!({"a":null}), json!({})),
            (
                json!({"a":"b","b":"c"}),
                json!({"a":null}),
                json!({"b":"c"}),
            ),
            (json!({"a":["b"]}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"c"}), json!({"a":["b"]}), json!({"a":["b"]})),
            (
                json!({"a":{"b":"c"}}),
                json!({"a":{"b":"d","c":null}}),
                json!({"a":{"b":"d"}}),
            ),
            (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
            (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
            (json!([1, 2]), json!({"a":"b","c":null}), json!({"a":"b"})),
            (
                json!({}),
                json!({"a":{"bb":{"ccc":null}}}),
                json!({"a":{"bb":{}}}),
            ),
        ];
        for (mut target, patch, expected) in cases {
            merge_patch(&mut target, &patch);
            assert_eq!(target, expected);
        }
    }

    #[test]
    fn pointers() {
        assert_eq!(child_pointer("/a", "b/c~"), "/a/b~1c~0");
        assert!(is_valid_pointer("/a/b"));
        assert!(!is_valid_pointer(""));
        assert!(!is_valid_pointer("a"));
        assert!(!is_valid_pointer("/a~2"));
        assert!(is_at_or_below("/a/b", "/a"));
        assert!(is_at_or_below("/a", "/a"));
        assert!(!is_at_or_below("/ab", "/a"));
    }

    #[test]
    fn defaults_are_collected_recursively() {
        let schema = json!({
            "type": "object",
            "properties": {
                "currency": {"type": "string", "default": "EUR"},
                "payment": {"type": "object", "properties": {"retries": {"default": 3}}},
                "none": {"type": "string"}
            }
        });
        assert_eq!(
            Value::Object(schema_defaults(&schema)),
            json!({"currency": "EUR", "payment": {"retries": 3}})
        );
    }
}
