//! The configuration-as-code files: `tenants.yaml` and one
//! `namespaces/<name>.yaml` per namespace, with stable ordering (maps sorted
//! by key, layers keyed by scope) so that a change shows as a minimal diff.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::exit::{CliError, CliResult};
use crate::output::to_yaml;
use crate::scope::Scope;

pub const TENANTS_FILE: &str = "tenants.yaml";
pub const NAMESPACES_DIR: &str = "namespaces";

/// A tenant as declared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub edition: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantsFile {
    #[serde(default)]
    tenants: BTreeMap<String, TenantSpec>,
}

/// A layer as declared: its values and the pointers it locks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerSpec {
    #[serde(default = "empty_object")]
    pub values: Value,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lock: Vec<String>,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

impl LayerSpec {
    /// A cleared layer (no values, no locks) is the same as no layer.
    pub fn is_empty(&self) -> bool {
        self.values.as_object().is_none_or(|m| m.is_empty()) && self.lock.is_empty()
    }
}

/// A namespace's definition (without its layers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceSpec {
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Value>,
}

/// One namespace file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NamespaceFile {
    namespace: String,
    #[serde(default)]
    description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    approval: Option<Value>,
    /// Keyed by scope (`global`, `env=prod`, `env=prod,tenant=acme`).
    #[serde(default)]
    layers: BTreeMap<String, LayerSpec>,
}

/// Everything a directory declares (or a server holds).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    pub tenants: BTreeMap<String, TenantSpec>,
    pub namespaces: BTreeMap<String, NamespaceSpec>,
    pub layers: BTreeMap<String, BTreeMap<Scope, LayerSpec>>,
}

fn invalid(path: &Path, error: impl std::fmt::Display) -> CliError {
    CliError::usage(format!("{}: {error}", path.display()))
}

impl Config {
    /// Reads a directory written by `ecs export` (or by hand).
    pub fn read(dir: &Path) -> CliResult<Config> {
        if !dir.is_dir() {
            return Err(CliError::usage(format!(
                "{} is not a directory",
                dir.display()
            )));
        }
        let mut config = Config::default();
        let tenants = dir.join(TENANTS_FILE);
        if tenants.exists() {
            let text = std::fs::read_to_string(&tenants).map_err(|e| invalid(&tenants, e))?;
            let file: TenantsFile =
                serde_norway::from_str(&text).map_err(|e| invalid(&tenants, e))?;
            config.tenants = file.tenants;
        }
        let namespaces = dir.join(NAMESPACES_DIR);
        let mut paths: Vec<_> = match std::fs::read_dir(&namespaces) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect(),
            Err(_) => Vec::new(),
        };
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|e| invalid(&path, e))?;
            let file: NamespaceFile =
                serde_norway::from_str(&text).map_err(|e| invalid(&path, e))?;
            if config.namespaces.contains_key(&file.namespace) {
                return Err(invalid(
                    &path,
                    format!("namespace {} is declared twice", file.namespace),
                ));
            }
            let mut layers = BTreeMap::new();
            for (key, layer) in file.layers {
                let scope: Scope = key
                    .parse()
                    .map_err(|e| invalid(&path, format!("layers: `{key}`: {e}")))?;
                if !layer.values.is_object() {
                    return Err(invalid(
                        &path,
                        format!("layers: `{key}`: values must be an object"),
                    ));
                }
                if layers.insert(scope, layer).is_some() {
                    return Err(invalid(&path, format!("layers: `{key}` is declared twice")));
                }
            }
            config.layers.insert(file.namespace.clone(), layers);
            let spec = NamespaceSpec {
                description: file.description,
                schema: file.schema,
                approval: file.approval,
            };
            config.namespaces.insert(file.namespace, spec);
        }
        Ok(config)
    }

    /// The files' contents by path relative to the directory.
    pub fn render(&self) -> CliResult<BTreeMap<String, String>> {
        let mut files = BTreeMap::new();
        let tenants = TenantsFile {
            tenants: self.tenants.clone(),
        };
        files.insert(TENANTS_FILE.to_owned(), to_yaml(&tenants)?);
        for (name, spec) in &self.namespaces {
            let layers = self
                .layers
                .get(name)
                .into_iter()
                .flatten()
                .filter(|(_, layer)| !layer.is_empty())
                .map(|(scope, layer)| (scope.to_string(), layer.clone()))
                .collect();
            let file = NamespaceFile {
                namespace: name.clone(),
                description: spec.description.clone(),
                schema: spec.schema.clone(),
                approval: spec.approval.clone(),
                layers,
            };
            files.insert(format!("{NAMESPACES_DIR}/{name}.yaml"), to_yaml(&file)?);
        }
        Ok(files)
    }
}
