//! `ecs import`: configuration files services already have — .NET
//! `appsettings.json`, `.env`, Java `.properties`, YAML and JSON — into a
//! layer, with keys and types matched to the namespace's JSON Schema.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use serde_json::{Map, Number, Value};

use crate::commands::read_write::{WriteOptions, layer_path, written};
use crate::connection::{Api, Send, segment};
use crate::exit::{CliError, CliResult};
use crate::files::{parse_document, read_text};
use crate::output::Printer;
use crate::scope::Scope;

/// The file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FileFormat {
    /// JSON, including .NET `appsettings.json` (nested sections).
    Json,
    Yaml,
    /// `KEY=VALUE` lines; `__` nests (`Logging__LogLevel__Default`).
    Env,
    /// Java properties; `.` nests (`payment.provider=adyen`).
    Properties,
}

impl FileFormat {
    /// The format a file name implies.
    fn of(path: &Path) -> Option<FileFormat> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        if name == ".env" || name.starts_with(".env.") || name.ends_with(".env") {
            return Some(FileFormat::Env);
        }
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "json" => Some(FileFormat::Json),
            "yaml" | "yml" => Some(FileFormat::Yaml),
            "properties" => Some(FileFormat::Properties),
            _ => None,
        }
    }

    /// Flat formats carry only strings: their types are inferred.
    fn is_flat(self) -> bool {
        matches!(self, FileFormat::Env | FileFormat::Properties)
    }
}

#[derive(Debug, Args)]
#[command(
    after_help = "Keys are matched to the schema's properties ignoring case, `_` and `-`\n(MAX_ITEMS and MaxItems both become max_items); a value takes the type the schema\ngives it, else true/false, numbers and strings are inferred (.env and .properties).\nThe document is merged into the layer (RFC 7386).\n\nExamples:\n  ecs import checkout appsettings.json --scope env=prod --dry-run\n  ecs import checkout .env --scope env=dev,service=web -m 'from the old .env'"
)]
pub struct ImportArgs {
    pub namespace: String,
    /// appsettings.json, .env, *.properties, *.yaml, *.json (`-`: standard input with --format).
    pub file: PathBuf,
    #[arg(long, default_value = "global")]
    pub scope: Scope,
    /// The format, when the file name does not tell.
    #[arg(long)]
    pub format: Option<FileFormat>,
    /// The nesting separator of flat formats [default: `__` for .env, `.` for .properties].
    #[arg(long)]
    pub separator: Option<String>,
    /// Print the document that would be written, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub write: WriteOptions,
}

pub async fn import(api: &Api, out: &mut Printer, args: ImportArgs) -> CliResult<()> {
    let format = args
        .format
        .or_else(|| FileFormat::of(&args.file))
        .ok_or_else(|| {
            CliError::usage(format!(
                "{}: name the format with --format",
                args.file.display()
            ))
        })?;
    let text = read_text(&args.file)?;
    let namespace = api
        .get(&format!("/v1/namespaces/{}", segment(&args.namespace)), &[])
        .await?;
    let schema = namespace.get("schema").filter(|s| s.is_object());
    let document = convert(&text, format, args.separator.as_deref(), schema)
        .map_err(|e| CliError::usage(format!("{}: {e}", args.file.display())))?;
    if args.dry_run {
        return out.emit(&document, |out| out.document(&document));
    }
    let message = if args.write.message.is_empty() {
        format!("import {}", args.file.display())
    } else {
        args.write.message.clone()
    };
    let body = serde_json::json!({"values": document, "message": message});
    let reply = api
        .send(
            reqwest::Method::PATCH,
            &layer_path(&args.namespace, ""),
            Send {
                query: &args.scope.query(),
                body: Some(&body),
                if_match: args.write.if_match,
            },
        )
        .await?;
    written(
        out,
        &format!("{} at {}", args.namespace, args.scope),
        &reply.body,
        reply.status,
    )
}

/// The document a file holds, fitted to the schema.
pub fn convert(
    text: &str,
    format: FileFormat,
    separator: Option<&str>,
    schema: Option<&Value>,
) -> Result<Value, String> {
    let document = match format {
        FileFormat::Json | FileFormat::Yaml => parse_document(text)?,
        FileFormat::Env => nest(parse_env(text)?, separator.unwrap_or("__"))?,
        FileFormat::Properties => nest(parse_properties(text)?, separator.unwrap_or("."))?,
    };
    if !document.is_object() {
        return Err("the file must hold an object of keys".into());
    }
    fit(document, schema, format.is_flat())
}

/// `.env` lines: `KEY=VALUE`, `export KEY=VALUE`, quotes, `#` comments.
fn parse_env(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: not KEY=VALUE", number + 1))?;
        let value = value.trim();
        let value = if let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            inner.replace("\\n", "\n").replace("\\\"", "\"")
        } else if let Some(inner) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
            inner.to_owned()
        } else {
            // An unquoted value ends at a comment.
            value.split(" #").next().unwrap_or("").trim_end().to_owned()
        };
        pairs.push((key.trim().to_owned(), value));
    }
    Ok(pairs)
}

/// `.properties` lines: `key=value` or `key: value`, `#`/`!` comments,
/// trailing `\` continues a line.
fn parse_properties(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut pending = String::new();
    for (number, raw) in text.lines().enumerate() {
        let line = raw.trim_start();
        if pending.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!'))
        {
            continue;
        }
        if let Some(continued) = line.strip_suffix('\\') {
            pending.push_str(continued);
            continue;
        }
        pending.push_str(line);
        let entry = std::mem::take(&mut pending);
        let split = entry
            .find(['=', ':'])
            .ok_or_else(|| format!("line {}: not key=value", number + 1))?;
        pairs.push((
            entry[..split].trim().to_owned(),
            entry[split + 1..].trim().to_owned(),
        ));
    }
    Ok(pairs)
}

/// Nests flat keys by `separator`; an object whose keys are 0, 1, 2, … becomes an array.
fn nest(pairs: Vec<(String, String)>, separator: &str) -> Result<Value, String> {
    let mut root = Value::Object(Map::new());
    for (key, value) in pairs {
        let parts: Vec<&str> = key.split(separator).collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(format!("`{key}` has an empty segment"));
        }
        let mut node = &mut root;
        for (i, part) in parts.iter().enumerate() {
            let Value::Object(map) = node else {
                return Err(format!("`{key}`: a parent already holds a value"));
            };
            if i + 1 == parts.len() {
                if map.get(*part).is_some_and(Value::is_object) {
                    return Err(format!("`{key}` is also a section"));
                }
                map.insert((*part).to_owned(), Value::String(value.clone()));
                break;
            }
            node = map
                .entry((*part).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
    Ok(arrays(root))
}

fn arrays(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let is_array =
                !map.is_empty() && (0..map.len()).all(|i| map.contains_key(&i.to_string()));
            if is_array {
                let mut map = map;
                let items = (0..map.len())
                    .map(|i| arrays(map.remove(&i.to_string()).unwrap_or(Value::Null)))
                    .collect();
                Value::Array(items)
            } else {
                Value::Object(map.into_iter().map(|(k, v)| (k, arrays(v))).collect())
            }
        }
        other => other,
    }
}

/// A key as compared with the schema's: case, `_` and `-` ignored.
fn loose(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// The schema's types for a node (`type` as a string or a list).
fn types(schema: Option<&Value>) -> Vec<&str> {
    match schema.and_then(|s| s.get("type")) {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Renames keys to the schema's spelling and gives strings the schema's
/// types; `infer` (flat formats): without a schema type, `true`, `false` and
/// numbers are inferred. Keys that name the same property (`Checkout.MaxItems`
/// and `checkout.currency`) merge; two values for one key are an error.
fn fit(value: Value, schema: Option<&Value>, infer: bool) -> Result<Value, String> {
    match value {
        Value::Object(map) => {
            let properties = schema
                .and_then(|s| s.get("properties"))
                .and_then(Value::as_object);
            let additional = schema
                .and_then(|s| s.get("additionalProperties"))
                .filter(|s| s.is_object());
            let mut fitted = Map::new();
            for (key, child) in map {
                let known = properties.and_then(|p| {
                    p.get(&key).map(|s| (key.clone(), s)).or_else(|| {
                        p.iter()
                            .find(|(name, _)| loose(name) == loose(&key))
                            .map(|(n, s)| (n.clone(), s))
                    })
                });
                let (name, child) = match known {
                    Some((name, sub)) => (name, fit(child, Some(sub), infer)?),
                    None => (key.clone(), fit(child, additional, infer)?),
                };
                let merged = match fitted.remove(&name) {
                    None => child,
                    Some(Value::Object(mut existing)) if child.is_object() => {
                        for (k, v) in child.as_object().into_iter().flatten() {
                            if existing.insert(k.clone(), v.clone()).is_some() {
                                return Err(format!("`{key}` sets {name}/{k} twice"));
                            }
                        }
                        Value::Object(existing)
                    }
                    Some(_) => return Err(format!("`{key}` sets {name} twice")),
                };
                fitted.insert(name, merged);
            }
            Ok(Value::Object(fitted))
        }
        Value::Array(items) => {
            let item_schema = schema.and_then(|s| s.get("items"));
            items
                .into_iter()
                .map(|i| fit(i, item_schema, infer))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        Value::String(text) => Ok(typed(text, &types(schema), infer)),
        other => Ok(other),
    }
}

fn typed(text: String, types: &[&str], infer: bool) -> Value {
    let trimmed = text.trim();
    let as_bool = || match trimmed.to_ascii_lowercase().as_str() {
        "true" => Some(Value::Bool(true)),
        "false" => Some(Value::Bool(false)),
        _ => None,
    };
    let as_integer = || trimmed.parse::<i64>().ok().map(Value::from);
    let as_number = || {
        as_integer().or_else(|| {
            trimmed
                .parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .map(Value::Number)
        })
    };
    if types.contains(&"string") {
        return Value::String(text);
    }
    let converted = if types.is_empty() {
        if infer {
            as_bool().or_else(as_number)
        } else {
            None
        }
    } else {
        types.iter().find_map(|t| match *t {
            "boolean" => as_bool(),
            "integer" => as_integer(),
            "number" => as_number(),
            "array" | "object" => serde_json::from_str::<Value>(trimmed)
                .ok()
                .filter(|v| {
                    if *t == "array" {
                        v.is_array()
                    } else {
                        v.is_object()
                    }
                })
                .or_else(|| {
                    (*t == "array").then(|| {
                        Value::Array(
                            trimmed
                                .split(',')
                                .map(|s| Value::String(s.trim().to_owned()))
                                .collect(),
                        )
                    })
                }),
            "null" => (trimmed.is_empty() || trimmed == "null").then_some(Value::Null),
            _ => None,
        })
    };
    converted.unwrap_or(Value::String(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn env_nests_and_infers_types_from_the_schema() {
        let schema = json!({"type": "object", "properties": {
            "max_items": {"type": "integer"},
            "zip": {"type": "string"},
            "features": {"type": "object", "properties": {"express": {"type": "boolean"}}}}});
        let text = "# comment\nMAX_ITEMS=250\nZIP=01234\nexport FEATURES__EXPRESS=true\nHOSTS__0=a\nHOSTS__1=b\nRATIO=0.5\nNAME=\"x y\"\n";
        let doc = convert(text, FileFormat::Env, None, Some(&schema)).expect("convert");
        assert_eq!(
            doc,
            json!({"max_items": 250, "zip": "01234", "features": {"express": true},
                   "HOSTS": ["a", "b"], "RATIO": 0.5, "NAME": "x y"})
        );
    }

    #[test]
    fn properties_nest_by_dots() {
        let doc = convert(
            "payment.provider = adyen\n! c\npayment.retries: 3\n",
            FileFormat::Properties,
            None,
            None,
        )
        .expect("convert");
        assert_eq!(doc, json!({"payment": {"provider": "adyen", "retries": 3}}));
    }

    #[test]
    fn keys_naming_one_property_merge_and_a_value_set_twice_is_refused() {
        let schema = json!({"properties": {"max_items": {"type": "integer"}}});
        let twice = convert(
            "MAX_ITEMS=1\nmax_items=2\n",
            FileFormat::Env,
            None,
            Some(&schema),
        );
        assert!(twice.expect_err("set twice").contains("max_items twice"));
    }
}
