//! Feature flags evaluated from the client's local state, with no request:
//! the resolved flags document of the context is evaluated by
//! `ecs_domain::flags::evaluate`, the code the server's OFREP endpoints run,
//! so a flag answers here exactly as it answers over OFREP.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ecs_domain::flags::{
    EvaluationContext, FlagEvaluation, FlagSet, Reason, evaluate, parse_flag_set,
};
use ecs_domain::{NamespaceKind, NamespaceName, Scope};
use serde_json::{Map, Value};

use crate::{Client, ClientError, read};

/// The flags documents already resolved and parsed, each with the state
/// version `(position, removed)` it reflects: a flag read resolves and parses
/// a context's document once per change, not once per read.
#[derive(Default)]
pub(crate) struct FlagSetCache(Mutex<HashMap<FlagSetKey, (Version, Arc<FlagSet>)>>);

/// A flags document's namespace and context.
type FlagSetKey = (NamespaceName, Scope);

/// The client state's `(position, removed)`.
type Version = (u64, u64);

impl FlagSetCache {
    fn get(&self, key: &FlagSetKey, version: Version) -> Option<Arc<FlagSet>> {
        let cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(key)
            .filter(|(v, _)| *v == version)
            .map(|(_, set)| set.clone())
    }

    fn put(&self, key: FlagSetKey, version: Version, set: Arc<FlagSet>) {
        let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // Contexts are as many as the service's callers make: keep the
        // current version's only.
        cache.retain(|_, (v, _)| *v == version);
        cache.insert(key, (version, set));
    }
}

/// Why a flag could not be evaluated (OFREP's error codes).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FlagError {
    /// No such flag, or the namespace is not a followed flags namespace.
    #[error("flag {0} not found")]
    FlagNotFound(String),
    /// The resolved document is not valid flags.
    #[error("the flags document is not valid: {0}")]
    ParseError(String),
    /// The flag's value is not of the requested type.
    #[error("flag {key} is not a {expected}")]
    TypeMismatch { key: String, expected: &'static str },
    /// A context attribute is not valid, or names an unknown tenant.
    #[error("invalid context: {0}")]
    InvalidContext(String),
    /// Targeting failed or chose a variant the flag lacks.
    #[error("{0}")]
    General(String),
}

/// A flag's evaluation: its value (`None` when the caller's default
/// applies: a disabled flag, or no default variant), variant, reason and
/// metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct FlagDetails {
    pub key: String,
    pub value: Option<Value>,
    pub variant: Option<String>,
    pub reason: Reason,
    pub metadata: Map<String, Value>,
}

impl Client {
    /// Evaluates flag `key` of `namespace` (or of the context's `namespace`
    /// attribute, or `flags`) for `context`, OFREP's context: `env`,
    /// `service`, `tenant` and `edition` pick the ECS context, and every
    /// attribute (`targetingKey` among them) feeds targeting.
    pub fn flag(
        &self,
        namespace: Option<&str>,
        key: &str,
        context: &Map<String, Value>,
    ) -> Result<FlagDetails, FlagError> {
        let context = EvaluationContext::parse(namespace, context.clone())
            .map_err(|e| FlagError::InvalidContext(e.0))?;
        let set = self.flag_set(&context)?;
        let Some(flag) = set.flags.get(key) else {
            return Err(FlagError::FlagNotFound(key.to_owned()));
        };
        let FlagEvaluation {
            value,
            variant,
            reason,
        } = evaluate(
            key,
            flag,
            &context.attributes,
            time::OffsetDateTime::now_utc(),
        )
        .map_err(|e| FlagError::General(e.to_string()))?;
        Ok(FlagDetails {
            key: key.to_owned(),
            value,
            variant,
            reason,
            metadata: flag.metadata.clone(),
        })
    }

    /// A boolean flag, or `default` when it is disabled, missing, not a
    /// boolean or cannot be evaluated.
    pub fn flag_bool(
        &self,
        namespace: Option<&str>,
        key: &str,
        context: &Map<String, Value>,
        default: bool,
    ) -> bool {
        self.flag_value(namespace, key, context, "boolean", Value::as_bool)
            .unwrap_or(default)
    }

    /// A string flag, or `default`.
    pub fn flag_string(
        &self,
        namespace: Option<&str>,
        key: &str,
        context: &Map<String, Value>,
        default: &str,
    ) -> String {
        self.flag_value(namespace, key, context, "string", |v| {
            v.as_str().map(str::to_owned)
        })
        .unwrap_or_else(|| default.to_owned())
    }

    /// A number flag, or `default`.
    pub fn flag_number(
        &self,
        namespace: Option<&str>,
        key: &str,
        context: &Map<String, Value>,
        default: f64,
    ) -> f64 {
        self.flag_value(namespace, key, context, "number", Value::as_f64)
            .unwrap_or(default)
    }

    /// An object flag, or `default`.
    pub fn flag_object(
        &self,
        namespace: Option<&str>,
        key: &str,
        context: &Map<String, Value>,
        default: Map<String, Value>,
    ) -> Map<String, Value> {
        self.flag_value(namespace, key, context, "object", |v| {
            v.as_object().cloned()
        })
        .unwrap_or(default)
    }

    /// The flag's value converted by `convert`; `None` (the caller's
    /// default) on any failure, which is logged.
    fn flag_value<T>(
        &self,
        namespace: Option<&str>,
        key: &str,
        context: &Map<String, Value>,
        expected: &'static str,
        convert: impl Fn(&Value) -> Option<T>,
    ) -> Option<T> {
        let details = match self.flag(namespace, key, context) {
            Ok(details) => details,
            Err(error) => {
                tracing::debug!(%error, "flag evaluation failed; the default applies");
                return None;
            }
        };
        let value = details.value?;
        let converted = convert(&value);
        if converted.is_none() {
            let error = FlagError::TypeMismatch {
                key: key.to_owned(),
                expected,
            };
            tracing::debug!(%error, "flag evaluation failed; the default applies");
        }
        converted
    }

    /// The resolved flags of the context, from memory (parsed once per
    /// change of the client's state).
    fn flag_set(&self, context: &EvaluationContext) -> Result<Arc<FlagSet>, FlagError> {
        let key = (context.namespace.clone(), context.scope.clone());
        let state = read(&self.inner.state);
        let version = (state.position, state.removed);
        if let Some(set) = self.inner.flag_sets.get(&key, version) {
            return Ok(set);
        }
        let not_found = || FlagError::FlagNotFound(format!("namespace {}", context.namespace));
        let namespace = state.namespace(&context.namespace).ok_or_else(not_found)?;
        if namespace.kind != NamespaceKind::Flags {
            return Err(not_found());
        }
        let (resolved, _) = state
            .resolve(
                &context.namespace,
                &context.scope,
                &self.inner.settings.precedence,
            )
            .map_err(|e| match e {
                ClientError::TenantNotFound(t) => {
                    FlagError::InvalidContext(format!("tenant {t} is unknown"))
                }
                other => FlagError::General(other.to_string()),
            })?;
        drop(state);
        let set = Arc::new(parse_flag_set(&resolved.values).map_err(|found| {
            FlagError::ParseError(
                found
                    .first()
                    .map(|v| format!("{}: {}", v.pointer, v.message))
                    .unwrap_or_default(),
            )
        })?);
        self.inner.flag_sets.put(key, version, set.clone());
        Ok(set)
    }
}
