//! Errors as RFC 9457 `application/problem+json` answers.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ecs_commands::CommandError;
use ecs_domain::{DomainError, IdError};
use serde_json::{Value, json};

/// The media type of every error answer (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// What an error answer was about, attached to the response for the audit log.
#[derive(Debug, Clone)]
pub struct ProblemInfo {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    /// The answer hides a resource the caller may not see (an authorization
    /// denial answered as 404).
    pub denied: bool,
}

impl ProblemInfo {
    /// The kind of refusal to audit, if this answer is one: authorization
    /// denials and validation failures (a plain 404 or a 5xx is not).
    pub fn refusal_kind(&self) -> Option<&'static str> {
        if self.denied || self.status == StatusCode::FORBIDDEN {
            Some("authorization")
        } else if self.status.is_client_error()
            && self.status != StatusCode::NOT_FOUND
            && self.status != StatusCode::UNAUTHORIZED
            // A limit is not a refusal of the request's content; recording
            // each would let a caller grow the audit log at its own rate.
            && self.status != StatusCode::TOO_MANY_REQUESTS
        {
            Some("validation")
        } else {
            None
        }
    }
}

/// An API error. Each variant's doc names the status it answers with; 5xx
/// answers are opaque and logged once.
#[derive(Debug)]
pub enum ApiError {
    /// 400: the request is malformed; `field` names the offending input.
    BadRequest {
        code: &'static str,
        field: Option<String>,
        detail: String,
    },
    /// 401: no or bad credential.
    Unauthorized,
    /// 403: the caller may not take this action.
    Forbidden(String),
    /// 404: the resource does not exist.
    NotFound { code: &'static str, detail: String },
    /// 405: the resource does not take this method.
    MethodNotAllowed,
    /// 410: the resource was erased for good.
    Gone(String),
    /// 409: the change conflicts with concurrent changes.
    Conflict(String),
    /// 412: `If-Match` names a revision that is no longer current.
    Stale { expected: u64, actual: u64 },
    /// 413: the body is larger than the limit.
    TooLarge(String),
    /// 415: the body is not JSON.
    UnsupportedMediaType,
    /// 422: the change fails the schema or a lock; `extra` carries the list.
    Unprocessable {
        code: &'static str,
        detail: String,
        extra: Value,
    },
    /// 503: a dependency is unavailable; retry later.
    Unavailable(String),
    /// 503: a write that takes access away was stored at `position` but the
    /// projections did not apply it within `ECS_WRITE_WAIT_MS`, so it is not
    /// in effect yet (it will be once they do; repeating it confirms).
    NotInEffect { position: u64 },
    /// 503: a read asked for a position (`min_position`) the projections
    /// did not reach within `ECS_MIN_POSITION_WAIT_MS`.
    Behind { wanted: u64 },
    /// 429: a rate or stream limit is reached; `Retry-After` says when to retry.
    TooManyRequests {
        code: &'static str,
        detail: String,
        retry_after: std::time::Duration,
    },
    /// 503: the server is shutting down; retry (on another instance).
    ShuttingDown,
    /// 503: the request took longer than `ECS_REQUEST_TIMEOUT_SECS`.
    TimedOut,
    /// 500: a bug; the detail is logged, never sent.
    Internal(anyhow::Error),
    /// An authorization denial answered as the inner error (a 404 for a
    /// resource the caller may not know exists).
    Denied(Box<ApiError>),
}

impl ApiError {
    pub fn bad(code: &'static str, field: impl Into<String>, detail: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            field: Some(field.into()),
            detail: detail.into(),
        }
    }

    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::NotFound {
            code,
            detail: detail.into(),
        }
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str, String, Value) {
        match self {
            ApiError::Denied(inner) => inner.parts(),
            ApiError::BadRequest {
                code,
                field,
                detail,
            } => (
                StatusCode::BAD_REQUEST,
                code,
                "Bad request",
                detail.clone(),
                field.as_ref().map_or(json!({}), |f| json!({ "field": f })),
            ),
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unauthorized",
                "a valid bearer token is required".to_owned(),
                json!({}),
            ),
            ApiError::Forbidden(detail) => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "Forbidden",
                detail.clone(),
                json!({}),
            ),
            ApiError::NotFound { code, detail } => (
                StatusCode::NOT_FOUND,
                code,
                "Not found",
                detail.clone(),
                json!({}),
            ),
            ApiError::Gone(detail) => (
                StatusCode::GONE,
                "tenant-erased",
                "Gone",
                detail.clone(),
                json!({}),
            ),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
                "this resource does not take this method".to_owned(),
                json!({}),
            ),
            ApiError::Conflict(detail) => (
                StatusCode::CONFLICT,
                "conflict",
                "Conflict",
                detail.clone(),
                json!({}),
            ),
            ApiError::Stale { expected, actual } => (
                StatusCode::PRECONDITION_FAILED,
                "stale-revision",
                "Precondition failed",
                format!("If-Match names revision {expected}, but the current revision is {actual}"),
                json!({ "current_revision": actual }),
            ),
            ApiError::TooLarge(detail) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                "Payload too large",
                detail.clone(),
                json!({}),
            ),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                "send the body as application/json".to_owned(),
                json!({}),
            ),
            ApiError::Unprocessable {
                code,
                detail,
                extra,
            } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                code,
                "Unprocessable content",
                detail.clone(),
                extra.clone(),
            ),
            ApiError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
                "a backing service is unavailable; retry (writes: with the same Idempotency-Key)"
                    .to_owned(),
                json!({}),
            ),
            ApiError::NotInEffect { position } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "not-in-effect",
                "Service unavailable",
                format!(
                    "the change was stored (position {position}) but is not in effect yet: \
                     the projections did not apply it in time; it takes effect when they do, \
                     and repeating the request answers success once it has"
                ),
                json!({ "position": position }),
            ),
            ApiError::Behind { wanted } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "behind",
                "Service unavailable",
                format!(
                    "this server has not applied position {wanted} yet; retry (it may be \
                     applying it now), or read from the server that answered the write"
                ),
                json!({ "min_position": wanted }),
            ),
            ApiError::TooManyRequests { code, detail, .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                code,
                "Too many requests",
                detail.clone(),
                json!({}),
            ),
            ApiError::ShuttingDown => (
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting-down",
                "Service unavailable",
                "the server is shutting down; retry (writes: with the same Idempotency-Key)"
                    .to_owned(),
                json!({}),
            ),
            ApiError::TimedOut => (
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "Service unavailable",
                "the request took too long; retry (writes: with the same Idempotency-Key)"
                    .to_owned(),
                json!({}),
            ),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                "an internal error occurred; it has been logged".to_owned(),
                json!({}),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(error) => {
                tracing::error!(error = format!("{error:#}"), "internal error")
            }
            ApiError::Unavailable(detail) => tracing::warn!(%detail, "dependency unavailable"),
            _ => {}
        }
        let denied = matches!(self, ApiError::Denied(_));
        let retry_after = match &self {
            ApiError::TooManyRequests { retry_after, .. } => {
                // Whole seconds, rounded up: 0 would invite an immediate retry.
                Some(retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0))
            }
            _ => None,
        };
        let close = matches!(self, ApiError::ShuttingDown);
        let (status, code, title, detail, extra) = self.parts();
        let info = ProblemInfo {
            status,
            code,
            detail: detail.clone(),
            denied,
        };
        let mut body = json!({
            "type": format!("urn:ecs:problem:{code}"),
            "title": title,
            "status": status.as_u16(),
            "code": code,
            "detail": detail,
        });
        if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
            body.extend(extra);
        }
        let mut response = (status, body.to_string()).into_response();
        response.extensions_mut().insert(info);
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        match status {
            StatusCode::UNAUTHORIZED => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"ecs\""),
                );
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            StatusCode::TOO_MANY_REQUESTS => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after.unwrap_or(1).max(1)),
                );
            }
            _ => {}
        }
        if close {
            // The connection closes after this answer, so that a client
            // reconnects (elsewhere) instead of reusing a closing server.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

impl From<IdError> for ApiError {
    fn from(error: IdError) -> Self {
        ApiError::bad("invalid-identifier", error.field, error.to_string())
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => ApiError::Unavailable(error.to_string()),
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        let detail = error.to_string();
        match error {
            DomainError::ChangeRequestNotFound => {
                ApiError::not_found("change-request-not-found", detail)
            }
            DomainError::ChangeRequestClosed(_) => ApiError::Conflict(detail),
            DomainError::SelfApproval | DomainError::NotAuthor => ApiError::Forbidden(detail),
            DomainError::TokenNotFound => ApiError::not_found("token-not-found", detail),
            DomainError::NamespaceNotFound(_) => ApiError::not_found("namespace-not-found", detail),
            DomainError::TenantErased(_) => ApiError::Gone(detail),
            DomainError::TenantNotFound(_) => ApiError::not_found("tenant-not-found", detail),
            DomainError::LayerNotFound { .. } => ApiError::not_found("layer-not-found", detail),
            DomainError::RevisionNotFound { .. } => ApiError::Unprocessable {
                code: "revision-not-found",
                detail,
                extra: json!({ "field": "revision" }),
            },
            DomainError::StaleRevision { expected, actual } => ApiError::Stale { expected, actual },
            DomainError::SchemaViolations(violations) => ApiError::Unprocessable {
                code: "schema-violation",
                detail,
                extra: json!({ "violations": violations }),
            },
            DomainError::LockViolations(violations) => {
                let scopes: Vec<String> =
                    violations.iter().map(|v| v.locked_by.to_string()).collect();
                ApiError::Unprocessable {
                    code: "locked",
                    detail: format!("{detail}: locked at {}", scopes.join(", ")),
                    extra: json!({ "violations": violations }),
                }
            }
            DomainError::InvalidSchema(_) => ApiError::Unprocessable {
                code: "invalid-schema",
                detail,
                extra: json!({ "field": "schema" }),
            },
            DomainError::InvalidInput { field, .. } => {
                ApiError::bad("invalid-field", field, detail)
            }
            DomainError::Unavailable(detail) => ApiError::Unavailable(detail),
            DomainError::TooLarge(_) => ApiError::TooLarge(detail),
        }
    }
}

impl From<CommandError<DomainError>> for ApiError {
    fn from(error: CommandError<DomainError>) -> Self {
        match error {
            CommandError::Rejected(e) => e.into(),
            CommandError::Contended => ApiError::Conflict(error.to_string()),
            CommandError::Unavailable(detail) => ApiError::Unavailable(detail),
            CommandError::TooLarge(too_large) => DomainError::from(too_large).into(),
        }
    }
}
