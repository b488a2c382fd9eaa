//! An OpenFeature provider for the `open-feature` crate (cargo feature
//! `openfeature`): flags evaluated from the client's local state, with no
//! request, exactly as OFREP evaluates them on the server.
//!
//! ```no_run
//! # async fn example(client: ecs_client::Client) {
//! use open_feature::{EvaluationContext, OpenFeature};
//!
//! let mut api = OpenFeature::singleton_mut().await;
//! api.set_provider(ecs_client::openfeature::EcsProvider::new(client)).await;
//! let flags = api.create_client();
//! let context = EvaluationContext::default()
//!     .with_targeting_key("user-1")
//!     .with_custom_field("tenant", "acme");
//! let on = flags
//!     .get_bool_value("new-checkout", Some(&context), None)
//!     .await
//!     .unwrap_or(false);
//! # let _ = on; }
//! ```
//!
//! The `open-feature` crate's evaluation API takes no default value, so a
//! flag whose caller's default applies (a disabled flag, or one without a
//! default variant) answers an error, `General("DISABLED")` or
//! `General("DEFAULT")`: `unwrap_or(default)` gives the code default.

use ecs_domain::flags::Reason;
use open_feature::async_trait;
use open_feature::provider::{FeatureProvider, ProviderMetadata, ResolutionDetails};
use open_feature::{
    EvaluationContext, EvaluationContextFieldValue, EvaluationError, EvaluationErrorCode,
    EvaluationReason, EvaluationResult, FlagMetadata, FlagMetadataValue, StructValue,
};
use serde_json::{Map, Value};

use crate::Client;
use crate::flags::{FlagDetails, FlagError};

/// Evaluates flags of one flags namespace (or of each context's `namespace`
/// attribute, or `flags`) from a [`Client`]'s local state.
pub struct EcsProvider {
    client: Client,
    namespace: Option<String>,
    metadata: ProviderMetadata,
}

impl EcsProvider {
    /// A provider for the context's `namespace` attribute, or `flags`.
    pub fn new(client: Client) -> Self {
        EcsProvider {
            client,
            namespace: None,
            metadata: ProviderMetadata::new("ecs"),
        }
    }

    /// A provider for this flags namespace, whatever the context says.
    pub fn for_namespace(client: Client, namespace: impl Into<String>) -> Self {
        EcsProvider {
            namespace: Some(namespace.into()),
            ..EcsProvider::new(client)
        }
    }

    fn resolve<T>(
        &self,
        key: &str,
        context: &EvaluationContext,
        expected: &'static str,
        convert: impl Fn(Value) -> Option<T>,
    ) -> EvaluationResult<ResolutionDetails<T>> {
        let details = self
            .client
            .flag(self.namespace.as_deref(), key, &attributes(context))
            .map_err(error_of)?;
        let FlagDetails {
            value,
            variant,
            reason,
            metadata,
            ..
        } = details;
        let Some(value) = value else {
            let code = match reason {
                Reason::Disabled => "DISABLED",
                _ => "DEFAULT",
            };
            return Err(EvaluationError::builder()
                .code(EvaluationErrorCode::General(code.to_owned()))
                .message(format!(
                    "flag {key} has no value here: the caller's default applies"
                ))
                .build());
        };
        let value = convert(value).ok_or_else(|| {
            error_of(FlagError::TypeMismatch {
                key: key.to_owned(),
                expected,
            })
        })?;
        Ok(ResolutionDetails {
            value,
            variant,
            reason: Some(reason_of(reason)),
            flag_metadata: Some(metadata_of(&metadata)),
        })
    }
}

/// The context as ECS attributes: `targetingKey` and every custom field.
fn attributes(context: &EvaluationContext) -> Map<String, Value> {
    let mut map = Map::new();
    for (name, field) in &context.custom_fields {
        let value = match field {
            EvaluationContextFieldValue::Bool(b) => Value::Bool(*b),
            EvaluationContextFieldValue::Int(i) => Value::from(*i),
            EvaluationContextFieldValue::Float(f) => Value::from(*f),
            EvaluationContextFieldValue::String(s) => Value::String(s.clone()),
            EvaluationContextFieldValue::DateTime(t) => Value::from(t.unix_timestamp()),
            EvaluationContextFieldValue::Struct(any) => match any.downcast_ref::<Value>() {
                Some(value) => value.clone(),
                None => continue,
            },
        };
        map.insert(name.clone(), value);
    }
    if let Some(key) = &context.targeting_key {
        map.insert("targetingKey".to_owned(), Value::String(key.clone()));
    }
    map
}

fn reason_of(reason: Reason) -> EvaluationReason {
    match reason {
        Reason::Static => EvaluationReason::Static,
        Reason::TargetingMatch => EvaluationReason::TargetingMatch,
        Reason::Split => EvaluationReason::Split,
        Reason::Disabled => EvaluationReason::Disabled,
        Reason::Default => EvaluationReason::Default,
    }
}

fn metadata_of(metadata: &Map<String, Value>) -> FlagMetadata {
    let mut out = FlagMetadata::default();
    for (name, value) in metadata {
        let value = match value {
            Value::Bool(b) => FlagMetadataValue::Bool(*b),
            Value::Number(n) if n.is_i64() => FlagMetadataValue::Int(n.as_i64().unwrap_or(0)),
            Value::Number(n) => FlagMetadataValue::Float(n.as_f64().unwrap_or(0.0)),
            Value::String(s) => FlagMetadataValue::String(s.clone()),
            _ => continue,
        };
        out.add_value(name.clone(), value);
    }
    out
}

fn error_of(error: FlagError) -> EvaluationError {
    let code = match &error {
        FlagError::FlagNotFound(_) => EvaluationErrorCode::FlagNotFound,
        FlagError::ParseError(_) => EvaluationErrorCode::ParseError,
        FlagError::TypeMismatch { .. } => EvaluationErrorCode::TypeMismatch,
        FlagError::InvalidContext(_) => EvaluationErrorCode::InvalidContext,
        FlagError::General(_) => EvaluationErrorCode::General("GENERAL".to_owned()),
    };
    EvaluationError::builder()
        .code(code)
        .message(error.to_string())
        .build()
}

#[async_trait]
impl FeatureProvider for EcsProvider {
    fn metadata(&self) -> &ProviderMetadata {
        &self.metadata
    }

    async fn resolve_bool_value(
        &self,
        key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<bool>> {
        self.resolve(key, context, "boolean", |v| v.as_bool())
    }

    async fn resolve_int_value(
        &self,
        key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<i64>> {
        self.resolve(key, context, "integer", |v| v.as_i64())
    }

    async fn resolve_float_value(
        &self,
        key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<f64>> {
        self.resolve(key, context, "number", |v| v.as_f64())
    }

    async fn resolve_string_value(
        &self,
        key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<String>> {
        self.resolve(key, context, "string", |v| match v {
            Value::String(s) => Some(s),
            _ => None,
        })
    }

    async fn resolve_struct_value(
        &self,
        key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<StructValue>> {
        self.resolve(key, context, "object", |v| match v {
            Value::Object(_) => match open_feature::Value::try_from(v) {
                Ok(open_feature::Value::Struct(s)) => Some(s),
                _ => None,
            },
            _ => None,
        })
    }
}
