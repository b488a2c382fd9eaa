//! `/v1/namespaces/{ns}/rollouts`: rollout plans of flags (docs/flags.md).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ecs_domain::audit::PlanAction;
use ecs_domain::flags::{
    RolloutPlan, RolloutStatus, RolloutStep, rollout_variants, validate_steps,
};
use ecs_domain::{NamespaceKind, NamespaceName, Scope};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::extract::{AppJson, Params, PathId};
use crate::problem::ApiError;
use crate::rollout_audit::PlanChange;
use crate::rollouts::{StoreError, StoredPlan};
use crate::routes::Problem;
use crate::state::AppState;

/// A step of a plan.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepBody {
    /// When the step applies (RFC 3339, in the future).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// The share of targeting keys that get the rolled-out variant, 0 to 100.
    pub percent: u8,
}

/// A new plan.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutCreate {
    /// The layer whose flag the plan changes (absent: the global layer).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub scope: Scope,
    /// The flag's key; the layer must define it with exactly two variants.
    pub flag: String,
    /// The steps, at increasing times.
    pub steps: Vec<StepBody>,
}

/// A plan and where it stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct RolloutBody {
    pub id: String,
    pub namespace: String,
    #[schema(value_type = Object)]
    pub scope: Scope,
    pub flag: String,
    /// The variant being rolled out (gets `percent` %).
    pub variant: String,
    /// The variant the other targeting keys get.
    pub otherwise: String,
    pub steps: Vec<StepBody>,
    /// How many steps are applied.
    pub applied: usize,
    /// `active`, `paused`, `cancelled` or `completed`.
    #[schema(value_type = String)]
    pub status: RolloutStatus,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Why the due step could not be applied at the last attempt (retried
    /// every second), such as the flag removed from the layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl From<RolloutPlan> for RolloutBody {
    fn from(p: RolloutPlan) -> Self {
        RolloutBody {
            id: p.id,
            namespace: p.namespace.to_string(),
            scope: p.scope,
            flag: p.flag,
            variant: p.variant,
            otherwise: p.otherwise,
            steps: p
                .steps
                .into_iter()
                .map(|s| StepBody {
                    at: s.at,
                    percent: s.percent,
                })
                .collect(),
            applied: p.applied,
            status: p.status,
            created_by: p.created_by,
            created_at: p.created_at,
            last_error: p.last_error,
        }
    }
}

/// The plans of a namespace.
#[derive(Debug, Serialize, ToSchema)]
pub struct RolloutList {
    pub rollouts: Vec<RolloutBody>,
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict => ApiError::Conflict(error.to_string()),
            StoreError::Unavailable(detail) => ApiError::Unavailable(detail),
        }
    }
}

fn unprocessable(code: &'static str, field: &str, detail: impl Into<String>) -> ApiError {
    ApiError::Unprocessable {
        code,
        detail: detail.into(),
        extra: json!({ "field": field }),
    }
}

fn plan_not_found(id: &str) -> ApiError {
    ApiError::not_found(
        "rollout-not-found",
        format!("rollout plan {id} does not exist"),
    )
}

/// Create a rollout plan: the flag's percentage split set step by step at
/// the given times, each step an ordinary audited write of the layer.
#[utoipa::path(post, path = "/v1/namespaces/{ns}/rollouts", tag = "flags",
    params(("ns" = String, Path, description = "a flags namespace")),
    request_body = RolloutCreate,
    responses(
        (status = 201, body = RolloutBody),
        (status = 400, description = "malformed (the problem names the field)", body = Problem),
        (status = 404, body = Problem),
        (status = 422, description = "unknown flag, not two variants, a percentage over 100, times not in the future or not increasing, or the layer needs approvals (the problem names the field)", body = Problem),
    ))]
pub async fn create(
    State(app): State<AppState>,
    PathId(ns): PathId<NamespaceName>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    params: Params,
    AppJson(body): AppJson<RolloutCreate>,
) -> Result<Response, ApiError> {
    params.allow(&[])?;
    let scope = body.scope;
    principal.check(principal.role.write_layer(&ns, &scope), || {
        layer_not_found(&ns, &scope)
    })?;
    let namespace = app.read.namespace(&ns).await?.ok_or_else(|| {
        ApiError::not_found(
            "namespace-not-found",
            format!("namespace {ns} does not exist"),
        )
    })?;
    if namespace.state.kind != NamespaceKind::Flags {
        return Err(unprocessable(
            "not-a-flags-namespace",
            "ns",
            format!("namespace {ns} is not a flags namespace"),
        ));
    }
    if namespace
        .state
        .approval
        .as_ref()
        .is_some_and(|p| p.covers(&scope))
    {
        return Err(unprocessable(
            "approval-required",
            "/scope",
            "changes of this layer need approvals; a plan cannot apply them on its own",
        ));
    }
    let now = OffsetDateTime::now_utc();
    let steps: Vec<RolloutStep> = body
        .steps
        .into_iter()
        .map(|s| RolloutStep {
            at: s.at,
            percent: s.percent,
        })
        .collect();
    validate_steps(&steps, now).map_err(|e| unprocessable("invalid-step", &e.field, e.detail))?;
    let layer = app.read.layer(&ns, &scope, None).await?;
    let flag = layer
        .as_ref()
        .and_then(|l| RolloutPlan::flag_in(&l.state.values, &body.flag))
        .ok_or_else(|| {
            unprocessable(
                "flag-not-found",
                "/flag",
                format!("the layer at {scope} of {ns} defines no flag {}", body.flag),
            )
        })?;
    let (variant, otherwise) = rollout_variants(&serde_json::Value::Object(flag.clone()))
        .ok_or_else(|| {
            unprocessable(
                "not-two-variants",
                "/flag",
                format!("flag {} does not have exactly two variants", body.flag),
            )
        })?;
    let plan = RolloutPlan {
        id: uuid::Uuid::now_v7().to_string(),
        namespace: ns,
        scope,
        flag: body.flag,
        variant,
        otherwise,
        steps,
        applied: 0,
        status: RolloutStatus::Active,
        created_by: principal.name.clone(),
        created_at: now,
        last_error: None,
    };
    let revision = app.rollouts.create(&plan).await?;
    app.record_plan(
        &plan,
        revision,
        PlanAction::Created,
        None,
        PlanChange::by(&principal, &headers),
    )
    .await;
    Ok((StatusCode::CREATED, Json(RolloutBody::from(plan))).into_response())
}

fn layer_not_found(ns: &NamespaceName, scope: &Scope) -> ApiError {
    ApiError::not_found(
        "layer-not-found",
        format!("the layer at {scope} of namespace {ns} has no revisions then"),
    )
}

/// The namespace's rollout plans the caller may read, oldest first.
#[utoipa::path(get, path = "/v1/namespaces/{ns}/rollouts", tag = "flags",
    params(("ns" = String, Path, description = "a flags namespace")),
    responses((status = 200, body = RolloutList)))]
pub async fn list(
    State(app): State<AppState>,
    PathId(ns): PathId<NamespaceName>,
    Extension(principal): Extension<Principal>,
    params: Params,
) -> Result<Json<RolloutList>, ApiError> {
    params.allow(&[])?;
    let rollouts = app
        .rollouts
        .list()
        .await?
        .into_iter()
        .map(|s| s.plan)
        .filter(|p| {
            p.namespace == ns
                && principal.role.read_layer(&p.namespace, &p.scope) == ecs_domain::Decision::Allow
        })
        .map(RolloutBody::from)
        .collect();
    Ok(Json(RolloutList { rollouts }))
}

/// A plan the caller may read (404 otherwise).
async fn readable(
    app: &AppState,
    principal: &Principal,
    ns: &NamespaceName,
    id: &str,
) -> Result<StoredPlan, ApiError> {
    let stored = app
        .rollouts
        .get(id)
        .await?
        .filter(|s| &s.plan.namespace == ns)
        .ok_or_else(|| plan_not_found(id))?;
    principal.check(principal.role.read_layer(ns, &stored.plan.scope), || {
        plan_not_found(id)
    })?;
    Ok(stored)
}

/// One rollout plan.
#[utoipa::path(get, path = "/v1/namespaces/{ns}/rollouts/{id}", tag = "flags",
    params(("ns" = String, Path, description = "a flags namespace"), ("id" = String, Path, description = "the plan's id")),
    responses((status = 200, body = RolloutBody), (status = 404, body = Problem)))]
pub async fn get(
    State(app): State<AppState>,
    Path((ns, id)): Path<(String, String)>,
    Extension(principal): Extension<Principal>,
    params: Params,
) -> Result<Json<RolloutBody>, ApiError> {
    params.allow(&[])?;
    let ns: NamespaceName = ns.parse()?;
    Ok(Json(
        readable(&app, &principal, &ns, &id).await?.plan.into(),
    ))
}

/// What a plan control does.
#[derive(Debug, Clone, Copy)]
enum Control {
    Pause,
    Resume,
    Cancel,
}

impl Control {
    /// The status after the control, or `None` when it does not apply.
    fn next(self, status: RolloutStatus) -> Option<RolloutStatus> {
        use RolloutStatus::*;
        match (self, status) {
            (Control::Pause, Active) => Some(Paused),
            (Control::Resume, Paused) => Some(Active),
            (Control::Cancel, Active | Paused) => Some(Cancelled),
            _ => None,
        }
    }

    /// What the audit log records of the control.
    fn action(self) -> PlanAction {
        match self {
            Control::Pause => PlanAction::Paused,
            Control::Resume => PlanAction::Resumed,
            Control::Cancel => PlanAction::Cancelled,
        }
    }
}

async fn control(
    app: AppState,
    principal: Principal,
    headers: HeaderMap,
    ns: String,
    id: String,
    control: Control,
) -> Result<Json<RolloutBody>, ApiError> {
    let ns: NamespaceName = ns.parse()?;
    // The scheduler may record a step between the read and the update: then
    // the control runs again on the plan it wrote.
    for _ in 0..8 {
        let StoredPlan { mut plan, revision } = readable(&app, &principal, &ns, &id).await?;
        principal.check(principal.role.write_layer(&ns, &plan.scope), || {
            plan_not_found(&id)
        })?;
        let Some(next) = control.next(plan.status) else {
            return Err(ApiError::Conflict(format!(
                "the plan is {}; it cannot be {}",
                json!(plan.status).as_str().unwrap_or_default(),
                match control {
                    Control::Pause => "paused",
                    Control::Resume => "resumed",
                    Control::Cancel => "cancelled",
                }
            )));
        };
        let before = plan.status;
        plan.status = next;
        match app.rollouts.update(&plan, revision).await {
            Ok(revision) => {
                app.record_plan(
                    &plan,
                    revision,
                    control.action(),
                    Some(before),
                    PlanChange::by(&principal, &headers),
                )
                .await;
                return Ok(Json(plan.into()));
            }
            Err(StoreError::Conflict) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    Err(StoreError::Conflict.into())
}

/// Pause a plan: no step applies until it is resumed.
#[utoipa::path(post, path = "/v1/namespaces/{ns}/rollouts/{id}/pause", tag = "flags",
    params(("ns" = String, Path, description = "a flags namespace"), ("id" = String, Path, description = "the plan's id")),
    responses((status = 200, body = RolloutBody), (status = 404, body = Problem), (status = 409, description = "the plan is not active", body = Problem)))]
pub async fn pause(
    State(app): State<AppState>,
    Path((ns, id)): Path<(String, String)>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
) -> Result<Json<RolloutBody>, ApiError> {
    control(app, principal, headers, ns, id, Control::Pause).await
}

/// Resume a paused plan: the latest step that fell due meanwhile applies at once.
#[utoipa::path(post, path = "/v1/namespaces/{ns}/rollouts/{id}/resume", tag = "flags",
    params(("ns" = String, Path, description = "a flags namespace"), ("id" = String, Path, description = "the plan's id")),
    responses((status = 200, body = RolloutBody), (status = 404, body = Problem), (status = 409, description = "the plan is not paused", body = Problem)))]
pub async fn resume(
    State(app): State<AppState>,
    Path((ns, id)): Path<(String, String)>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
) -> Result<Json<RolloutBody>, ApiError> {
    control(app, principal, headers, ns, id, Control::Resume).await
}

/// Cancel a plan: no further step applies; the flag keeps its current split.
#[utoipa::path(post, path = "/v1/namespaces/{ns}/rollouts/{id}/cancel", tag = "flags",
    params(("ns" = String, Path, description = "a flags namespace"), ("id" = String, Path, description = "the plan's id")),
    responses((status = 200, body = RolloutBody), (status = 404, body = Problem), (status = 409, description = "the plan has ended", body = Problem)))]
pub async fn cancel(
    State(app): State<AppState>,
    Path((ns, id)): Path<(String, String)>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
) -> Result<Json<RolloutBody>, ApiError> {
    control(app, principal, headers, ns, id, Control::Cancel).await
}
