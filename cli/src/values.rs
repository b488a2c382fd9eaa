//! JSON documents as leaves keyed by JSON pointer: flattening, differences
//! and `KEY=VALUE` assignments.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// Escapes a key for a JSON pointer (RFC 6901).
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Every leaf by pointer; arrays and empty objects are leaves.
pub fn leaves(value: &Value) -> BTreeMap<String, Value> {
    fn walk(prefix: &str, value: &Value, out: &mut BTreeMap<String, Value>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (key, child) in map {
                    walk(&format!("{prefix}/{}", escape(key)), child, out);
                }
            }
            _ => {
                out.insert(prefix.to_owned(), value.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    if value.as_object().is_some_and(|m| !m.is_empty()) {
        walk("", value, &mut out);
    }
    out
}

/// One difference between two documents.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Change {
    pub pointer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

impl Change {
    /// `+`, `-` or `~`.
    pub fn sign(&self) -> char {
        match (&self.before, &self.after) {
            (None, _) => '+',
            (_, None) => '-',
            _ => '~',
        }
    }

    pub fn line(&self) -> String {
        let show = |v: &Option<Value>| v.as_ref().map(Value::to_string).unwrap_or_default();
        match self.sign() {
            '+' => format!("+ {} = {}", self.pointer, show(&self.after)),
            '-' => format!("- {} (was {})", self.pointer, show(&self.before)),
            _ => format!(
                "~ {}: {} -> {}",
                self.pointer,
                show(&self.before),
                show(&self.after)
            ),
        }
    }
}

/// The leaves added, changed and removed from `before` to `after`, by pointer.
pub fn diff(before: &Value, after: &Value) -> Vec<Change> {
    let (old, new) = (leaves(before), leaves(after));
    let mut pointers: Vec<&String> = old.keys().chain(new.keys()).collect();
    pointers.sort();
    pointers.dedup();
    pointers
        .into_iter()
        .filter(|p| old.get(*p) != new.get(*p))
        .map(|p| Change {
            pointer: p.clone(),
            before: old.get(p).cloned(),
            after: new.get(p).cloned(),
        })
        .collect()
}

/// The RFC 7386 merge patch turning `before` into `after` (objects only).
pub fn merge_patch(before: &Value, after: &Value) -> Value {
    let (Some(old), Some(new)) = (before.as_object(), after.as_object()) else {
        return after.clone();
    };
    let mut patch = Map::new();
    for (key, value) in new {
        match old.get(key) {
            Some(previous) if previous == value => {}
            Some(previous) if previous.is_object() && value.is_object() => {
                patch.insert(key.clone(), merge_patch(previous, value));
            }
            _ => {
                patch.insert(key.clone(), value.clone());
            }
        }
    }
    for key in old.keys() {
        if !new.contains_key(key) {
            patch.insert(key.clone(), Value::Null);
        }
    }
    Value::Object(patch)
}

/// Sets `value` at a dotted or pointer path (`a.b` or `/a/b`) of `doc`,
/// creating objects on the way.
pub fn set_path(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let parts: Vec<String> = if let Some(pointer) = path.strip_prefix('/') {
        pointer
            .split('/')
            .map(|p| p.replace("~1", "/").replace("~0", "~"))
            .collect()
    } else {
        path.split('.').map(str::to_owned).collect()
    };
    if parts.iter().any(String::is_empty) {
        return Err(format!("`{path}` has an empty key"));
    }
    let mut node = doc;
    for (i, part) in parts.iter().enumerate() {
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
        let Value::Object(map) = node else {
            return Err(format!("`{path}` is not an object path"));
        };
        if i + 1 == parts.len() {
            map.insert(part.clone(), value);
            return Ok(());
        }
        node = map
            .entry(part.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    Ok(())
}

/// A command-line value: JSON when it parses (`250`, `true`, `"x"`,
/// `[1,2]`), a string otherwise (`USD`).
pub fn parse_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diff_reports_each_leaf_once() {
        let before = json!({"a": 1, "b": {"c": true, "d": "x"}});
        let after = json!({"a": 2, "b": {"c": true}, "e": [1]});
        let lines: Vec<String> = diff(&before, &after).iter().map(Change::line).collect();
        assert_eq!(lines, ["~ /a: 1 -> 2", "- /b/d (was \"x\")", "+ /e = [1]"]);
    }

    #[test]
    fn merge_patch_reproduces_the_target() {
        let before = json!({"a": 1, "b": {"c": true, "d": "x"}});
        let after = json!({"a": 1, "b": {"c": false}, "e": 2});
        assert_eq!(
            merge_patch(&before, &after),
            json!({"b": {"c": false, "d": null}, "e": 2})
        );
    }

    #[test]
    fn set_path_nests_dotted_keys() {
        let mut doc = json!({});
        set_path(&mut doc, "features.express", json!(true)).expect("set");
        set_path(&mut doc, "/a~1b", json!(1)).expect("set");
        assert_eq!(doc, json!({"features": {"express": true}, "a/b": 1}));
    }
}
