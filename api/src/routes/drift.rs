//! `/v1/drift`: which SDK instances run which configuration (ADR 24).
//! `POST /v1/drift/reports` takes the report of a client that follows the
//! feed over HTTP (clients on NATS publish theirs on `ecs.drift.<env>.<service>`);
//! `GET /v1/drift` judges every instance the caller may see against the
//! latest position of what it follows.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use ecs_domain::Role;
use ecs_domain::drift::{DriftReport, DriftStatus, STALE_AFTER_INTERVALS, visible_followed};
use ecs_projections::drift::ReportVia;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::drift::{InstanceDrift, RecordError, judge};
use crate::extract::{AppJson, Params};
use crate::problem::ApiError;
use crate::routes::Problem;
use crate::state::AppState;

/// Every instance the caller may see, judged.
#[derive(Debug, Serialize, ToSchema)]
pub struct DriftList {
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub now: OffsetDateTime,
    /// An instance silent for this many of its intervals is `stale`.
    pub stale_after_intervals: u64,
    /// Reporting instances that are current.
    pub current: usize,
    /// Reporting instances that are behind.
    pub behind: usize,
    /// Stale instances (silent or stopped), whatever they last reported.
    pub stale: usize,
    pub instances: Vec<InstanceDrift>,
}

/// Every SDK instance the caller may see: what it follows, the position it
/// applied of each namespace against the latest, since when it is behind,
/// and when it last reported. Tenant-bound roles see the instances that
/// follow their tenant (narrowed to it), a service its own instances.
#[utoipa::path(get, path = "/v1/drift", tag = "observability",
    responses(
        (status = 200, description = "the instances, judged", body = DriftList),
        (status = 400, description = "an unknown parameter", body = Problem),
    ))]
pub async fn list(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    params: Params,
) -> Result<Json<DriftList>, ApiError> {
    params.allow(&[])?;
    let rows = app
        .read
        .drift_instances()
        .await?
        .into_iter()
        .filter_map(|row| {
            let env = ecs_domain::EnvName::parse(&row.env).ok()?;
            let service = ecs_domain::ServiceName::parse(&row.service).ok()?;
            let followed = visible_followed(&principal.role, &env, &service, &row.followed)?;
            Some((row, followed))
        })
        .collect();
    let now = OffsetDateTime::now_utc();
    let instances = judge(&app.read, rows, now).await?;
    let count = |status| {
        instances
            .iter()
            .filter(|i| !i.stale && i.status == status)
            .count()
    };
    Ok(Json(DriftList {
        now,
        stale_after_intervals: STALE_AFTER_INTERVALS,
        current: count(DriftStatus::Current),
        behind: count(DriftStatus::Behind),
        stale: instances.iter().filter(|i| i.stale).count(),
        instances,
    }))
}

/// Records the drift report of an SDK client that follows the feed over
/// HTTP. Only a service token of the report's env and service (or an
/// admin) may send it.
#[utoipa::path(post, path = "/v1/drift/reports", tag = "observability",
    request_body(content = Object, description = "a drift report (docs/observability.md)"),
    responses(
        (status = 204, description = "recorded"),
        (status = 400, description = "a malformed report (the problem names the field)", body = Problem),
        (status = 403, description = "the token is not a service token of the report's env and service", body = Problem),
    ))]
pub async fn report(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    params: Params,
    AppJson(report): AppJson<DriftReport>,
) -> Result<StatusCode, ApiError> {
    params.allow(&[])?;
    let allowed = match &principal.role {
        Role::Admin => true,
        Role::Service { env, service } => *env == report.env && *service == report.service,
        _ => false,
    };
    if !allowed {
        return Err(ApiError::Forbidden(format!(
            "only a service token of env {} and service {} may report for them",
            report.env, report.service
        )));
    }
    match crate::drift::record(&app.read, &report, ReportVia::Http).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(RecordError::Refused(error)) => Err(ApiError::bad(
            "invalid-report",
            error.field.clone(),
            error.to_string(),
        )),
        Err(RecordError::Database(error)) => Err(error.into()),
    }
}
