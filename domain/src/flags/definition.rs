//! Flag definitions (flagd's format) and their write-time validation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::SchemaViolation;
use crate::flags::logic::CompiledRule;

/// Whether a flag evaluates its variants or answers `DISABLED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FlagState {
    Enabled,
    Disabled,
}

/// One flag, exactly as flagd defines it, so flagd definitions import
/// unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlagDefinition {
    pub state: FlagState,
    pub variants: BTreeMap<String, Value>,
    /// `None` (absent or `null`): the caller's code default applies.
    #[serde(default)]
    pub default_variant: Option<String>,
    /// A JsonLogic rule naming a variant; absent or `{}` means static.
    #[serde(default)]
    pub targeting: Option<Value>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
    /// The targeting rule compiled by [`parse_flag_set`]; `None` for a flag
    /// read any other way, whose rule is then compiled when evaluated.
    #[serde(skip)]
    pub(crate) compiled: Option<CompiledRule>,
}

impl FlagDefinition {
    /// The targeting rule, unless it is absent or the empty object flagd
    /// treats as "no targeting".
    pub fn rule(&self) -> Option<&Value> {
        match &self.targeting {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) if map.is_empty() => None,
            Some(rule) => Some(rule),
        }
    }
}

/// The flags of a resolved flags document, by key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlagSet {
    pub flags: BTreeMap<String, FlagDefinition>,
}

fn violation(pointer: String, message: impl Into<String>) -> SchemaViolation {
    SchemaViolation {
        pointer,
        message: message.into(),
        layer: None,
        context: None,
    }
}

/// Escapes a key for use in a JSON pointer (RFC 6901).
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Parses and validates a flags document `{"flags": {...}}`: every flag must
/// be a flagd definition, its default variant and every variant its targeting
/// can return must exist, and its targeting must be valid JsonLogic. Every
/// problem is reported with the JSON pointer of the offending value.
pub fn parse_flag_set(document: &Value) -> Result<FlagSet, Vec<SchemaViolation>> {
    let Some(object) = document.as_object() else {
        return Err(vec![violation(
            String::new(),
            "a flags document is an object",
        )]);
    };
    let mut violations = Vec::new();
    for key in object.keys() {
        if key != "flags" && key != "metadata" {
            violations.push(violation(
                format!("/{}", escape(key)),
                "a flags document holds only `flags` and `metadata`",
            ));
        }
    }
    let mut set = FlagSet::default();
    match object.get("flags") {
        None => {}
        Some(Value::Object(flags)) => {
            for (key, raw) in flags {
                let pointer = format!("/flags/{}", escape(key));
                match check_flag(&pointer, raw) {
                    Ok(flag) => {
                        set.flags.insert(key.clone(), flag);
                    }
                    Err(mut found) => violations.append(&mut found),
                }
            }
        }
        Some(_) => violations.push(violation("/flags".to_owned(), "`flags` is an object")),
    }
    if violations.is_empty() {
        Ok(set)
    } else {
        Err(violations)
    }
}

fn check_flag(pointer: &str, raw: &Value) -> Result<FlagDefinition, Vec<SchemaViolation>> {
    let mut flag: FlagDefinition = serde_json::from_value(raw.clone()).map_err(|e| {
        vec![violation(
            pointer.to_owned(),
            format!("not a flag definition: {e}"),
        )]
    })?;
    let mut violations = Vec::new();
    if let Some(default) = &flag.default_variant
        && !flag.variants.contains_key(default)
    {
        violations.push(violation(
            format!("{pointer}/defaultVariant"),
            format!("unknown variant `{default}`"),
        ));
    }
    let mut compiled = None;
    if let Some(rule) = flag.rule() {
        let at = format!("{pointer}/targeting");
        match crate::flags::logic::compile(rule) {
            Err(message) => violations.push(violation(
                at.clone(),
                format!("invalid JsonLogic: {message}"),
            )),
            Ok(rule_compiled) => {
                compiled = Some(rule_compiled);
                let mut returned = Vec::new();
                returned_variants(rule, &at, &mut returned);
                for (name, at) in returned {
                    if !flag.variants.contains_key(&name) {
                        violations.push(violation(at, format!("unknown variant `{name}`")));
                    }
                }
            }
        }
    }
    flag.compiled = compiled;
    if violations.is_empty() {
        Ok(flag)
    } else {
        Err(violations)
    }
}

/// Collects the variant names a rule can return literally, with their
/// pointers: a string result, the branches of `if`, and the buckets of
/// `fractional`. Results computed at evaluation time (a `var`, a `cat`) are
/// checked when evaluated instead.
fn returned_variants(rule: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match rule {
        Value::String(name) => out.push((name.clone(), at.to_owned())),
        Value::Object(map) if map.len() == 1 => {
            let Some((op, args)) = map.iter().next() else {
                return;
            };
            let Value::Array(args) = args else {
                return;
            };
            let at = format!("{at}/{}", escape(op));
            match op.as_str() {
                // Arguments 1, 3, ... are branches and a trailing odd one is
                // the else branch; the others are conditions.
                "if" | "?:" => {
                    for (i, arg) in args.iter().enumerate() {
                        if i % 2 == 1 || i == args.len() - 1 {
                            returned_variants(arg, &format!("{at}/{i}"), out);
                        }
                    }
                }
                "fractional" => {
                    for (i, bucket) in args.iter().enumerate() {
                        if let Some(Value::String(name)) = bucket.as_array().and_then(|b| b.first())
                        {
                            out.push((name.clone(), format!("{at}/{i}/0")));
                        }
                    }
                }
                _ => {}
            }
        }
        _ => {}
    }
}
