//! Health, readiness, metrics, the OpenAPI document and administration.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ecs_projections::audit::record_skip;
use ecs_projections::halt::Skip;
use ecs_projections::{Halt, ProjectionName, ProjectionStatus};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

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
    /// The projections stopped at a message they cannot read: each names the
    /// projection, the stream position and the error (docs/operations.md).
    #[schema(value_type = Vec<Object>)]
    pub stopped: Vec<Halt>,
    pub feed: FeedStatus,
    /// This instance's identity, as a lease names its holder.
    pub instance: String,
    /// Each singleton job's lease (`projections`, `feed`, `audit`): whether
    /// this instance holds it, and the holder last seen.
    #[schema(value_type = Object)]
    pub leases: std::collections::BTreeMap<&'static str, ecs_projections::LeaseStatus>,
}

/// Where the feed publisher stands.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct FeedStatus {
    /// The last events-stream position published to the feed.
    pub published: u64,
    /// How many events-stream messages the feed has yet to publish (absent
    /// when the stream cannot be asked).
    pub lag: Option<u64>,
}

/// The feed publisher's position and lag behind the events stream.
async fn feed_status(app: &AppState) -> FeedStatus {
    let mut published = *app.feed_published.borrow();
    let publishing_here = app
        .leases
        .iter()
        .any(|(name, status)| *name == ecs_projections::LeaseName::Feed && status.borrow().held);
    if !publishing_here {
        // Another instance publishes: its offset is in PostgreSQL.
        let stored: Option<i64> = tokio::time::timeout(
            Duration::from_secs(2),
            sqlx::query_scalar("SELECT last_position FROM projection_offsets WHERE name = $1")
                .bind(ProjectionName::Feed.as_str())
                .fetch_optional(app.read.pool()),
        )
        .await
        .ok()
        .and_then(Result::ok)
        .flatten();
        published = published.max(stored.map_or(0, |p| u64::try_from(p).unwrap_or(0)));
    }
    let last = tokio::time::timeout(Duration::from_secs(2), async {
        let stream = app.js.get_stream(&app.settings.stream_name).await.ok()?;
        Some(stream.get_info().await.ok()?.state.last_sequence)
    })
    .await
    .ok()
    .flatten();
    FeedStatus {
        published,
        lag: last.map(|last| last.saturating_sub(published)),
    }
}

/// Readiness: NATS and PostgreSQL reachable, the projections caught up and
/// none of them stopped at a message it cannot read. A rebuild in progress
/// does not make the server unready: the current tables keep serving.
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
    let stopped = app.halts.stopped();
    let ready = nats && postgres && projections.caught_up && stopped.is_empty();
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
            stopped,
            feed: feed_status(&app).await,
            instance: app.instance.to_string(),
            leases: app
                .leases
                .iter()
                .map(|(name, status)| (name.key(), status.borrow().clone()))
                .collect(),
        }),
    )
        .into_response()
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "system", responses((status = 200, description = "Prometheus text")))]
pub async fn metrics(State(app): State<AppState>) -> Response {
    let status = app.projections.status();
    metrics::gauge!("ecs_projection_applied_position").set(status.applied as f64);
    let feed = feed_status(&app).await;
    metrics::gauge!("ecs_feed_published_position").set(feed.published as f64);
    if let Some(lag) = feed.lag {
        metrics::gauge!("ecs_feed_lag_messages").set(lag as f64);
    }
    let mut response = app.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// The projections' status, with the projections stopped at a message.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectionsReport {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub status: ProjectionStatus,
    #[schema(value_type = Vec<Object>)]
    pub stopped: Vec<Halt>,
}

/// The projections' status.
#[utoipa::path(get, path = "/v1/admin/projections", tag = "admin", responses((status = 200, body = ProjectionsReport)))]
pub async fn projections_status(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    params: Params,
) -> Result<Json<ProjectionsReport>, ApiError> {
    params.allow(&[])?;
    principal.allow(principal.role.administer())?;
    Ok(Json(ProjectionsReport {
        status: app.projections.status(),
        stopped: app.halts.stopped(),
    }))
}

/// Rebuild every projection by replaying the events stream into fresh
/// tables, switched in atomically once caught up; the current tables keep
/// serving meanwhile. Answers at once; `GET /v1/admin/projections` shows
/// progress. Refused (409) while the projection is stopped at a message.
#[utoipa::path(post, path = "/v1/admin/projections/rebuild", tag = "admin",
    responses((status = 202, description = "rebuild started", body = Object),
        (status = 409, description = "the projection is stopped at a message it cannot read")))]
pub async fn rebuild_projections(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    params: Params,
) -> Result<Response, ApiError> {
    params.allow(&[])?;
    principal.allow(principal.role.administer())?;
    if let Some(halt) = app.halts.get(ProjectionName::Config) {
        return Err(ApiError::Conflict(format!(
            "the config projection is stopped at position {}: fix or skip that message first",
            halt.position
        )));
    }
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

/// Skip the message a stopped projection cannot read, so it resumes after
/// it. Only the position the projection is stopped at can be skipped; the
/// decision is recorded (who, when, the error) in the audit log and honoured
/// by later rebuilds (docs/operations.md, "Projections").
#[utoipa::path(post, path = "/v1/admin/projections/{name}/skip", tag = "admin",
    params(
        ("name" = String, Path, description = "the stopped projection: config, audit or feed"),
        ("position" = u64, Query, description = "the stream position it is stopped at"),
    ),
    responses(
        (status = 202, description = "skip recorded; the projection resumes", body = Object),
        (status = 400, description = "position missing or not a number"),
        (status = 404, description = "no such projection"),
        (status = 409, description = "the projection is not stopped at that position"),
    ))]
pub async fn skip_message(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    params.allow(&["position"])?;
    principal.allow(principal.role.administer())?;
    let projection: ProjectionName = name
        .parse()
        .map_err(|e: String| ApiError::not_found("no-such-projection", e))?;
    let position = params
        .get("position")
        .ok_or_else(|| {
            ApiError::bad(
                "missing-parameter",
                "position",
                "position is required: the position the projection is stopped at",
            )
        })?
        .parse::<u64>()
        .map_err(|_| {
            ApiError::bad(
                "invalid-parameter",
                "position",
                "position must be a non-negative integer",
            )
        })?;
    let halt = app.halts.get(projection).ok_or_else(|| {
        ApiError::Conflict(format!(
            "the {} projection is not stopped",
            projection.as_str()
        ))
    })?;
    if halt.position != position {
        return Err(ApiError::Conflict(format!(
            "the {} projection is stopped at position {}, not {position}",
            projection.as_str(),
            halt.position
        )));
    }
    let skip = Skip {
        projection,
        position,
        error: halt.error,
        skipped_by: principal.name.clone(),
    };
    record_skip(app.read.pool(), &skip, principal.role.name()).await?;
    tracing::warn!(
        projection = projection.as_str(),
        position,
        skipped_by = principal.name,
        "an operator skipped a message the projection cannot read"
    );
    app.halts.resume();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "projection": projection.as_str(), "position": position, "skipped": true })),
    )
        .into_response())
}
