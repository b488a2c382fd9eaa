//! Evaluation of one flag against a context, with flagd's semantics.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::flags::definition::{FlagDefinition, FlagState};

/// Why a flag evaluated to its value (the OpenFeature/OFREP reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Reason {
    /// No targeting: the default variant.
    Static,
    /// Targeting chose a variant.
    TargetingMatch,
    /// A percentage rollout (`fractional`) chose a variant.
    Split,
    /// The flag is disabled: the caller's code default applies.
    Disabled,
    /// Targeting chose nothing: the default variant, or the caller's code
    /// default when the flag has none.
    Default,
}

/// The outcome of evaluating a flag.
#[derive(Debug, Clone, PartialEq)]
pub struct FlagEvaluation {
    /// `None`: no variant applies and the caller's code default is the value
    /// (a disabled flag, or no default variant).
    pub value: Option<Value>,
    pub variant: Option<String>,
    pub reason: Reason,
}

/// Why a flag could not be evaluated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvaluationError {
    /// The targeting rule failed, or named a variant the flag lacks.
    #[error("{0}")]
    General(String),
}

/// Evaluates `flag` (named `key`) for `context`, the caller's attributes
/// (`targetingKey` among them), at `now`. flagd's `$flagd.flagKey` and
/// `$flagd.timestamp` are added to the data the targeting rule sees.
pub fn evaluate(
    key: &str,
    flag: &FlagDefinition,
    context: &Map<String, Value>,
    now: OffsetDateTime,
) -> Result<FlagEvaluation, EvaluationError> {
    if flag.state == FlagState::Disabled {
        return Ok(FlagEvaluation {
            value: None,
            variant: None,
            reason: Reason::Disabled,
        });
    }
    let Some(rule) = flag.rule() else {
        return Ok(default_of(flag, Reason::Static));
    };
    let mut data = context.clone();
    data.insert(
        "$flagd".to_owned(),
        json!({ "flagKey": key, "timestamp": now.unix_timestamp() }),
    );
    let failed = |e: String| EvaluationError::General(format!("targeting failed: {e}"));
    let compiled = match &flag.compiled {
        Some(compiled) => compiled.clone(),
        None => crate::flags::logic::compile(rule).map_err(failed)?,
    };
    let chosen = crate::flags::logic::run(&compiled, &Value::Object(data)).map_err(failed)?;
    // flagd names a variant with a string; a boolean result names the
    // variant "true" or "false"; null means "no match".
    let name = match chosen {
        Value::Null => return Ok(default_of(flag, Reason::Default)),
        Value::String(name) => name,
        Value::Bool(b) => b.to_string(),
        other => {
            return Err(EvaluationError::General(format!(
                "targeting returned {other}, not a variant name"
            )));
        }
    };
    let Some(value) = flag.variants.get(&name) else {
        return Err(EvaluationError::General(format!(
            "targeting chose the unknown variant `{name}`"
        )));
    };
    let reason = if is_split(rule) {
        Reason::Split
    } else {
        Reason::TargetingMatch
    };
    Ok(FlagEvaluation {
        value: Some(value.clone()),
        variant: Some(name),
        reason,
    })
}

/// The default variant, or no value (the caller's code default) when the
/// flag has none.
fn default_of(flag: &FlagDefinition, reason: Reason) -> FlagEvaluation {
    let value = flag
        .default_variant
        .as_ref()
        .and_then(|name| flag.variants.get(name).map(|v| (name.clone(), v.clone())));
    match value {
        Some((name, value)) => FlagEvaluation {
            value: Some(value),
            variant: Some(name),
            reason,
        },
        None => FlagEvaluation {
            value: None,
            variant: None,
            reason: Reason::Default,
        },
    }
}

/// A rule that is a percentage rollout at its top.
fn is_split(rule: &Value) -> bool {
    rule.as_object()
        .is_some_and(|m| m.len() == 1 && m.contains_key("fractional"))
}
