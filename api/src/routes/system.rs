//! Health, readiness, metrics, the OpenAPI document and administration.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ecs_projections::ProjectionStatus;
use serde::Serialize;
use serde_json::json;
use utoipa::{OpenApi, ToSchema};

use crate::auth::Principal;
use crate::extract::Params;
use crate::problem::ApiError;
use crate::state::AppState;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "system", responses((status = 200, description = "alive")))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    pub ready: bool,
    pub nats: bool,
    pub postgres: bool,
    #[schema(value_type = Object)]
    pub projections: ProjectionStatus,
}

/// Readiness: NATS and PostgreSQL reachable and the projections caught up.
#[utoipa::path(get, path = "/readyz", tag = "system",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn readyz(State(app): State<AppState>) -> Response {
    let nats = app.nats.connection_state() == async_nats::connection::State::Connected;
    let postgres = tokio::time::timeout(
        Duration::from_secs(2),
        sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(app.read.pool()),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    let projections = app.projections.status();
    let ready = nats && postgres && projections.caught_up && !projections.rebuilding;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Readiness {
            ready,
            nats,
            postgres,
            projections,
        }),
    )
        .into_response()
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "system", responses((status = 200, description = "Prometheus text")))]
pub async fn metrics(State(app): State<AppState>) -> Response {
    let status = app.projections.status();
    metrics::gauge!("ecs_projection_applied_position").set(status.applied as f64);
    let mut response = app.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "system", responses((status = 200, description = "OpenAPI 3.1")))]
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(crate::openapi::ApiDoc::openapi())
}

/// The projections' status.
#[utoipa::path(get, path = "/v1/admin/projections", tag = "admin", responses((status = 200, body = Object)))]
pub async fn projections_status(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    params: Params,
) -> Result<Json<ProjectionStatus>, ApiError> {
    params.allow(&[])?;
    principal.allow(principal.role.administer())?;
    Ok(Json(app.projections.status()))
}

/// Drop every projection and rebuild it by replaying the events stream.
/// Answers at once; `GET /v1/admin/projections` and `/readyz` show progress.
#[utoipa::path(post, path = "/v1/admin/projections/rebuild", tag = "admin",
    responses((status = 202, description = "rebuild started", body = Object)))]
pub async fn rebuild_projections(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    params: Params,
) -> Result<Response, ApiError> {
    params.allow(&[])?;
    principal.allow(principal.role.administer())?;
    let target = app
        .projections
        .rebuild()
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "rebuilding": true, "target_position": target })),
    )
        .into_response())
}
