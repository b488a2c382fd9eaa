//! OFREP, the OpenFeature Remote Evaluation Protocol: flags evaluated on the
//! server for OpenFeature providers in any language (`docs/flags.md`).
//!
//! The context's `env`, `service`, `tenant` and `edition` pick the ECS
//! context, `namespace` the flags namespace (default `flags`); every
//! attribute, `targetingKey` included, feeds targeting. Evaluation is
//! `ecs_domain::flags::evaluate`, the code the SDK runs too.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ecs_domain::flags::{EvaluationContext, FlagEvaluation, FlagSet, evaluate, parse_flag_set};
use ecs_domain::{NamespaceKind, NamespaceName, Reading, Scope};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::problem::ApiError;
use crate::routes::ofrep_events::{EventStream, event_stream};
use crate::routes::resolved::{authorize, mask_sensitive, resolve_context};
use crate::state::AppState;

/// An evaluation request: `{"context": {...}}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct EvaluationRequest {
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub context: Option<Value>,
}

/// OFREP's error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    FlagNotFound,
    ParseError,
    TypeMismatch,
    TargetingKeyMissing,
    InvalidContext,
    General,
}

/// One flag's answer: a value, or an error code.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlagAnswer {
    pub key: String,
    /// Absent when the caller's code default applies (a disabled flag, or
    /// no default variant).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub value: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub reason: Option<ecs_domain::flags::Reason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<ErrorCode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_details: Option<String>,
}

impl FlagAnswer {
    fn failed(key: &str, code: ErrorCode, details: impl Into<String>) -> Self {
        FlagAnswer {
            key: key.to_owned(),
            value: None,
            reason: None,
            variant: None,
            metadata: None,
            error_code: Some(code),
            error_details: Some(details.into()),
        }
    }
}

/// The bulk answer: every flag of the namespace, evaluated, and the stream
/// that notifies changes (OFREP's `eventStreams`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BulkAnswer {
    pub flags: Vec<FlagAnswer>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub event_streams: Vec<EventStream>,
}

/// A request-wide failure, in OFREP's shape (`errorCode`, `errorDetails`).
#[derive(Debug)]
struct Failure {
    status: StatusCode,
    code: Option<ErrorCode>,
    details: String,
}

impl Failure {
    fn new(status: StatusCode, code: ErrorCode, details: impl Into<String>) -> Self {
        Failure {
            status,
            code: Some(code),
            details: details.into(),
        }
    }

    fn respond(self, key: Option<&str>) -> Response {
        // A refused credential or role answers the API's own problem, as
        // every other route does; OFREP only fixes the status.
        let mut body = Map::new();
        if let Some(key) = key {
            body.insert("key".to_owned(), Value::String(key.to_owned()));
        }
        if let Some(code) = self.code {
            body.insert(
                "errorCode".to_owned(),
                serde_json::to_value(code).unwrap_or(Value::Null),
            );
        }
        body.insert("errorDetails".to_owned(), Value::String(self.details));
        (self.status, Json(Value::Object(body))).into_response()
    }
}

/// The context split into the ECS context, the namespace and the targeting
/// attributes.
struct Target {
    namespace: NamespaceName,
    scope: Scope,
    attributes: Map<String, Value>,
}

fn target_of(request: Option<EvaluationRequest>) -> Result<Target, Failure> {
    let attributes = match request.and_then(|r| r.context) {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidContext,
                "context must be an object",
            ));
        }
    };
    let context = EvaluationContext::parse(None, attributes)
        .map_err(|e| Failure::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidContext, e.0))?;
    Ok(Target {
        namespace: context.namespace,
        scope: context.scope,
        attributes: context.attributes,
    })
}

/// The flags the caller may evaluate in its context; `None` when the
/// namespace does not exist or is not a flags namespace (so every flag is
/// "not found").
async fn flags_for(
    app: &AppState,
    principal: &Principal,
    target: &Target,
) -> Result<Option<Arc<FlagSet>>, Failure> {
    // A credential bound elsewhere (another tenant, another namespace) may
    // not learn whether flags exist there.
    authorize(principal, &target.namespace, &target.scope)
        .map_err(|_| Failure::new(StatusCode::FORBIDDEN, ErrorCode::General, "forbidden"))?;
    let key = (
        target.namespace.clone(),
        target.scope.clone(),
        Reading::Configuration.reveals_to(&principal.role),
    );
    app.cache
        .flag_set(key, || derive_flags(app, principal, target))
        .await
}

/// Resolves, masks and parses the flags of the target's context.
async fn derive_flags(
    app: &AppState,
    principal: &Principal,
    target: &Target,
) -> Result<Option<FlagSet>, Failure> {
    let kind = app
        .cache
        .current(&target.namespace, None)
        .await
        .map_err(|e| general(e.into()))?
        .snapshot
        .map(|s| s.namespace.kind);
    if kind != Some(NamespaceKind::Flags) {
        return Ok(None);
    }
    let mut resolved = match resolve_context(app, &target.namespace, &target.scope, None).await {
        Ok(resolved) => resolved,
        Err(ApiError::NotFound { detail, .. }) => {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidContext,
                detail,
            ));
        }
        Err(e) => return Err(general(e)),
    };
    mask_sensitive(app, principal, &target.namespace, &mut resolved.values)
        .await
        .map_err(general)?;
    // Every write keeps a flags namespace's documents valid; a document
    // that is not (written before a check existed) fails as a parse error.
    parse_flag_set(&resolved.values).map(Some).map_err(|found| {
        Failure::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::ParseError,
            found
                .first()
                .map(|v| format!("{}: {}", v.pointer, v.message))
                .unwrap_or_default(),
        )
    })
}

fn general(error: ApiError) -> Failure {
    tracing::error!(?error, "flag evaluation failed");
    Failure {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        code: None,
        details: "an internal error occurred; it has been logged".to_owned(),
    }
}

fn answer(key: &str, set: &FlagSet, attributes: &Map<String, Value>) -> FlagAnswer {
    let Some(flag) = set.flags.get(key) else {
        return FlagAnswer::failed(
            key,
            ErrorCode::FlagNotFound,
            format!("flag {key} not found"),
        );
    };
    match evaluate(key, flag, attributes, time::OffsetDateTime::now_utc()) {
        Ok(FlagEvaluation {
            value,
            variant,
            reason,
        }) => FlagAnswer {
            key: key.to_owned(),
            value,
            reason: Some(reason),
            variant,
            metadata: Some(flag.metadata.clone()),
            error_code: None,
            error_details: None,
        },
        Err(e) => FlagAnswer::failed(key, ErrorCode::General, e.to_string()),
    }
}

/// Evaluate one flag.
#[utoipa::path(post, path = "/ofrep/v1/evaluate/flags/{key}", tag = "flags",
    params(("key" = String, Path, description = "flag key")),
    request_body = EvaluationRequest,
    responses(
        (status = 200, body = FlagAnswer, description = "the flag's value, reason, variant and metadata"),
        (status = 400, body = FlagAnswer, description = "PARSE_ERROR, INVALID_CONTEXT, TARGETING_KEY_MISSING or GENERAL"),
        (status = 401, description = "no or bad credential"),
        (status = 403, description = "the credential may not evaluate in this context"),
        (status = 404, body = FlagAnswer, description = "FLAG_NOT_FOUND"),
    ))]
pub async fn evaluate_flag(
    State(app): State<AppState>,
    Path(key): Path<String>,
    Extension(principal): Extension<Principal>,
    body: Option<Json<EvaluationRequest>>,
) -> Response {
    let target = match target_of(body.map(|Json(b)| b)) {
        Ok(target) => target,
        Err(failure) => return failure.respond(Some(&key)),
    };
    let set = match flags_for(&app, &principal, &target).await {
        Ok(set) => set.unwrap_or_default(),
        Err(failure) => return failure.respond(Some(&key)),
    };
    let answer = answer(&key, &set, &target.attributes);
    let status = match answer.error_code {
        None => StatusCode::OK,
        Some(ErrorCode::FlagNotFound) => StatusCode::NOT_FOUND,
        Some(_) => StatusCode::BAD_REQUEST,
    };
    (status, Json(answer)).into_response()
}

/// Evaluate every flag of the namespace, with an `ETag` (`If-None-Match`
/// answers 304 while the answer is unchanged).
#[utoipa::path(post, path = "/ofrep/v1/evaluate/flags", tag = "flags",
    params(("If-None-Match" = Option<String>, Header, description = "an ETag from an earlier answer")),
    request_body = EvaluationRequest,
    responses(
        (status = 200, body = BulkAnswer, headers(("ETag" = String))),
        (status = 304, description = "unchanged since the ETag"),
        (status = 400, description = "INVALID_CONTEXT or PARSE_ERROR: `{errorCode, errorDetails}`"),
        (status = 401, description = "no or bad credential"),
        (status = 403, description = "the credential may not evaluate in this context"),
    ))]
pub async fn evaluate_flags(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Option<Json<EvaluationRequest>>,
) -> Response {
    let target = match target_of(body.map(|Json(b)| b)) {
        Ok(target) => target,
        Err(failure) => return failure.respond(None),
    };
    let (set, event_streams) = match flags_for(&app, &principal, &target).await {
        Ok(Some(set)) => {
            let stream = event_stream(&app, &target.namespace, &target.scope);
            (set, stream.into_iter().collect())
        }
        Ok(None) => (Arc::default(), Vec::new()),
        Err(failure) => return failure.respond(None),
    };
    let flags: Vec<FlagAnswer> = set
        .flags
        .keys()
        .map(|key| answer(key, &set, &target.attributes))
        .collect();
    // The ETag covers the evaluations, not the stream's ticket, which is
    // signed afresh on every answer.
    let evaluated = serde_json::to_string(&flags).unwrap_or_default();
    let etag = format!(
        "\"{}\"",
        hex::encode(&Sha256::digest(evaluated.as_bytes())[..16])
    );
    let text = serde_json::to_string(&BulkAnswer {
        flags,
        event_streams,
    })
    .unwrap_or_default();
    let unchanged = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().trim_start_matches("W/"))
        .any(|v| v == etag || v == "*");
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            text,
        )
            .into_response()
    };
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}
