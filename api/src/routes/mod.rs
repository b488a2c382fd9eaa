//! The HTTP API v1, one module per resource.

pub mod audit;
pub mod auth_config;
pub mod change_requests;
pub mod drift;
pub mod feed;
pub mod gdpr;
pub mod layers;
pub mod locks;
pub mod namespaces;
pub mod ofrep;
pub mod ofrep_events;
pub mod resolved;
pub mod rollouts;
pub mod search;
pub mod system;
pub mod tenants;
pub mod timeline;
pub mod tokens;
pub mod usage;
pub mod watch;
pub mod whoami;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ecs_commands::Committed;
use serde::Serialize;
use utoipa::ToSchema;

/// The answer to an accepted write.
#[derive(Debug, Serialize, ToSchema)]
pub struct WriteResult {
    /// The revision of the changed item after the write.
    pub revision: u64,
    /// The global position of the write in the event log.
    pub position: u64,
    /// The request repeated an earlier one (same `Idempotency-Key`); this is
    /// that request's outcome.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

impl WriteResult {
    /// 201 for a creation, 200 otherwise; `ETag` carries the revision for a
    /// following `If-Match`.
    pub fn respond(committed: Committed) -> Response {
        let status = if committed.revision == 1 && !committed.unchanged {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        let body = WriteResult {
            revision: committed.revision,
            position: committed.position,
            duplicate: committed.duplicate,
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", committed.revision)) {
            response.headers_mut().insert(header::ETAG, etag);
        }
        response
    }
}

/// An RFC 9457 problem, as every error answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// A stable, machine-readable code such as `schema-violation`.
    pub code: String,
    pub detail: String,
    /// The offending input, when one is to blame.
    pub field: Option<String>,
    /// Each violation with its JSON pointer (schema and lock failures).
    #[schema(value_type = Option<Vec<Object>>)]
    pub violations: Option<Vec<serde_json::Value>>,
}

/// The stream position a point-in-time parameter names.
pub async fn position_of(
    app: &crate::state::AppState,
    point: Option<crate::extract::PointInTime>,
) -> Result<Option<u64>, crate::problem::ApiError> {
    Ok(match point {
        None => None,
        Some(crate::extract::PointInTime::Position(p)) => Some(p),
        Some(crate::extract::PointInTime::At(at)) => Some(app.read.position_at_time(at).await?),
    })
}

/// Query parameters naming a scope or context (documentation only).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ScopeParams {
    /// Environment, such as `prod`.
    pub env: Option<String>,
    /// Service name.
    pub service: Option<String>,
    /// Tenant id.
    pub tenant: Option<String>,
    /// Edition, such as `enterprise`.
    pub edition: Option<String>,
}

/// Query parameters naming a moment in the past (documentation only).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PastParams {
    /// Read as of this RFC 3339 time.
    pub at: Option<String>,
    /// Read as of this global position.
    pub position: Option<u64>,
}
