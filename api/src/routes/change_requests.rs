//! `/v1/change-requests`: layer writes held for approval.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ecs_domain::change_request::{ChangeRequest, ChangeRequestCommand, ProposedChange};
use ecs_domain::json::{leaves, merge_patch};
use ecs_domain::layer::layer_id;
use ecs_domain::{Layer, LayerCommand, LayerState, NamespaceName, Reading, Scope, resolve};
use ecs_projections::change_requests::ChangeRequestRow;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::extract::{AppJson, Params, WriteContext};
use crate::masking::Masker;
use crate::problem::ApiError;
use crate::routes::Problem;
use crate::state::AppState;

/// The aggregate id of a change request: `<tenant or _>.<id>`.
fn aggregate_id(id: &str, scope: &Scope) -> String {
    format!("{}.{id}", scope.tenant.as_ref().map_or("_", |t| t.as_str()))
}

fn not_found() -> ApiError {
    ApiError::not_found(
        "change-request-not-found",
        "the change request does not exist",
    )
}

/// Opens a change request for a layer write that needs approval (202).
pub async fn open(
    app: &AppState,
    write: &WriteContext,
    namespace: NamespaceName,
    scope: Scope,
    change: ProposedChange,
    message: String,
) -> Result<Response, ApiError> {
    let base_revision = app
        .read
        .layer(&namespace, &scope, None)
        .await?
        .map_or(0, |l| l.state.revision);
    if let Some(expected) = write.expected_revision
        && expected != base_revision
    {
        return Err(ApiError::Stale {
            expected,
            actual: base_revision,
        });
    }
    let mut bytes = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let id = hex::encode(bytes);
    let command = ChangeRequestCommand::Open {
        id: id.clone(),
        namespace,
        scope: scope.clone(),
        change,
        message,
        base_revision,
        author: write.principal.name.clone(),
    };
    let committed = app
        .write::<ChangeRequest>(write, &aggregate_id(&id, &scope), command, &())
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "change_request": id,
            "status": "open",
            "position": committed.position,
            "detail": "this layer requires approval: the change applies when another principal approves it",
        })),
    )
        .into_response())
}

/// A change request and what it would change.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeRequestBody {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub request: ChangeRequestRow,
    /// Per JSON pointer of the resolved document at the layer's scope:
    /// `{"before", "after"}` (absent: the key does not exist).
    #[schema(value_type = Object)]
    pub diff: BTreeMap<String, Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeRequestList {
    #[schema(value_type = Vec<Object>)]
    pub change_requests: Vec<ChangeRequestRow>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    #[serde(default)]
    pub reason: String,
}

/// Loads a request the caller may see.
async fn visible(
    app: &AppState,
    principal: &Principal,
    id: &str,
) -> Result<ChangeRequestRow, ApiError> {
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(not_found());
    }
    let request = app.read.change_request(id).await?.ok_or_else(not_found)?;
    principal.check(
        principal
            .role
            .read_layer(&request.namespace, &request.scope),
        not_found,
    )?;
    Ok(request)
}

/// The resolved document at the request's scope now and with the change,
/// masked for the reader.
async fn diff(
    app: &AppState,
    request: &ChangeRequestRow,
    masker: &mut Masker,
) -> Result<BTreeMap<String, Value>, ApiError> {
    let ns = app
        .read
        .namespace(&request.namespace)
        .await?
        .ok_or_else(not_found)?
        .state;
    let mut layers: Vec<LayerState> =
        ecs_domain::ports::ConfigReader::layers(&app.read, &request.namespace).await?;
    let current = layers
        .iter()
        .find(|l| l.scope == request.scope)
        .map(|l| l.values.clone());
    let proposed = match &request.change {
        ProposedChange::Replace { values, .. } => values.clone(),
        ProposedChange::Patch { patch } => {
            let mut values = current.clone().unwrap_or_else(|| json!({}));
            merge_patch(&mut values, patch);
            values
        }
        ProposedChange::Clear => json!({}),
        ProposedChange::RollBack { revision } => app
            .read
            .layer_history(&request.namespace, &request.scope)
            .await?
            .into_iter()
            .find(|r| r.state.revision == *revision)
            .map_or_else(|| json!({}), |r| r.state.values),
    };
    let resolve_with = |layers: &[LayerState]| {
        let refs: Vec<_> = layers.iter().map(LayerState::as_ref).collect();
        resolve(
            &ns.defaults(),
            &refs,
            &request.scope,
            &app.services.precedence,
        )
        .values
    };
    let before_doc = resolve_with(&layers);
    layers.retain(|l| l.scope != request.scope);
    layers.push(LayerState {
        namespace: request.namespace.clone(),
        scope: request.scope.clone(),
        values: proposed,
        lock: vec![],
        revision: 0,
    });
    let after_doc = resolve_with(&layers);
    let before: BTreeMap<String, &Value> = leaves(&before_doc).into_iter().collect();
    let after: BTreeMap<String, &Value> = leaves(&after_doc).into_iter().collect();
    let mut out = BTreeMap::new();
    for pointer in before.keys().chain(after.keys()) {
        let (b, a) = (before.get(pointer), after.get(pointer));
        if b != a {
            let mut entry = serde_json::Map::new();
            if let Some(b) = b {
                entry.insert("before".into(), (*b).clone());
            }
            if let Some(a) = a {
                entry.insert("after".into(), (*a).clone());
            }
            out.insert(pointer.clone(), Value::Object(entry));
        }
    }
    masker
        .diff(
            request.namespace.as_str(),
            &before_doc,
            &after_doc,
            &mut out,
        )
        .await?;
    Ok(out)
}

/// List change requests the caller may see (newest first, at most 1000).
/// Proposed values the schema marks sensitive are masked for roles that may
/// not read them.
#[utoipa::path(get, path = "/v1/change-requests", tag = "change-requests",
    params(("status" = Option<String>, Query, description = "open, approved, rejected, withdrawn or failed"),
        ("namespace" = Option<String>, Query, description = "namespace")),
    responses((status = 200, body = ChangeRequestList)))]
pub async fn list(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    params: Params,
) -> Result<Json<ChangeRequestList>, ApiError> {
    params.allow(&["status", "namespace"])?;
    let status = params.get("status");
    if let Some(s) = status
        && !["open", "approved", "rejected", "withdrawn", "failed"].contains(&s)
    {
        return Err(ApiError::bad(
            "invalid-parameter",
            "status",
            "status must be open, approved, rejected, withdrawn or failed",
        ));
    }
    let namespace = params
        .get("namespace")
        .map(NamespaceName::parse)
        .transpose()?;
    let mut change_requests: Vec<ChangeRequestRow> = app
        .read
        .change_requests(status, namespace.as_ref(), principal.role.tenant())
        .await?
        .into_iter()
        .filter(|r| {
            principal.role.read_layer(&r.namespace, &r.scope) == ecs_domain::Decision::Allow
        })
        .collect();
    let mut masker = Masker::new(&app.read, &principal.role, Reading::Record);
    for request in &mut change_requests {
        masker.change_request(request).await?;
    }
    Ok(Json(ChangeRequestList { change_requests }))
}

/// A change request with the diff against the current resolved view.
#[utoipa::path(get, path = "/v1/change-requests/{id}", tag = "change-requests",
    params(("id" = String, Path, description = "change request id")),
    responses((status = 200, body = ChangeRequestBody), (status = 404, body = Problem)))]
pub async fn show(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Json<ChangeRequestBody>, ApiError> {
    params.allow(&[])?;
    let mut request = visible(&app, &principal, &id).await?;
    let mut masker = Masker::new(&app.read, &principal.role, Reading::Record);
    let diff = diff(&app, &request, &mut masker).await?;
    masker.change_request(&mut request).await?;
    Ok(Json(ChangeRequestBody { request, diff }))
}

/// Records a decision on the request.
async fn decide(
    app: &AppState,
    write: &WriteContext,
    request: &ChangeRequestRow,
    command: ChangeRequestCommand,
) -> Result<u64, ApiError> {
    let context = WriteContext {
        principal: write.principal.clone(),
        expected_revision: None,
        idempotency_id: None,
        request_id: write.request_id.clone(),
        correlation_id: write.correlation_id.clone(),
    };
    let committed = app
        .write::<ChangeRequest>(
            &context,
            &aggregate_id(&request.id, &request.scope),
            command,
            &(),
        )
        .await?;
    Ok(committed.position)
}

/// Approve: applies the change if the layer has not changed since the
/// request was opened; a different principal allowed to write the layer must
/// approve.
#[utoipa::path(post, path = "/v1/change-requests/{id}/approve", tag = "change-requests",
    params(("id" = String, Path, description = "change request id")),
    responses(
        (status = 200, description = "applied", body = Object),
        (status = 403, description = "not allowed, or self-approval", body = Problem),
        (status = 404, body = Problem),
        (status = 409, description = "closed already, or the layer changed meanwhile (the request is marked failed)", body = Problem),
        (status = 422, description = "the change no longer passes the schema or a lock (marked failed)", body = Problem),
    ))]
pub async fn approve(
    State(app): State<AppState>,
    Path(id): Path<String>,
    params: Params,
    write: WriteContext,
) -> Result<Response, ApiError> {
    params.allow(&[])?;
    let principal = write.principal.clone();
    let request = visible(&app, &principal, &id).await?;
    principal.allow(
        principal
            .role
            .write_layer(&request.namespace, &request.scope),
    )?;
    if request.status != "open" {
        return Err(ApiError::Conflict(format!(
            "the change request is already {}",
            request.status
        )));
    }
    if request.author == principal.name {
        return Err(ApiError::Forbidden(
            "the author of a change request may not approve it".into(),
        ));
    }
    let apply = WriteContext {
        principal: principal.clone(),
        expected_revision: Some(request.base_revision),
        idempotency_id: Some(format!("change-request-{}", request.id)),
        request_id: write.request_id.clone(),
        correlation_id: write.correlation_id.clone(),
    };
    let command = LayerCommand {
        namespace: request.namespace.clone(),
        scope: request.scope.clone(),
        action: request.change.clone().into(),
        message: format!(
            "{} (change request {} by {})",
            request.message, request.id, request.author
        ),
        expected_revision: Some(request.base_revision),
    };
    let id_of_layer = layer_id(&request.namespace, &request.scope);
    match app
        .write::<Layer>(&apply, &id_of_layer, command, &app.services)
        .await
    {
        Ok(committed) => {
            decide(
                &app,
                &write,
                &request,
                ChangeRequestCommand::Approve {
                    by: principal.name.clone(),
                },
            )
            .await?;
            Ok(Json(json!({"status": "approved", "revision": committed.revision, "position": committed.position})).into_response())
        }
        Err(ApiError::Stale { .. }) => {
            let reason = "the layer changed since the request was opened".to_owned();
            decide(
                &app,
                &write,
                &request,
                ChangeRequestCommand::Fail {
                    by: principal.name.clone(),
                    reason: reason.clone(),
                },
            )
            .await?;
            Err(ApiError::Conflict(format!(
                "{reason}; the change request is marked failed"
            )))
        }
        Err(error @ ApiError::Unprocessable { .. }) => {
            let reason = "the change no longer passes the schema or a lock".to_owned();
            decide(
                &app,
                &write,
                &request,
                ChangeRequestCommand::Fail {
                    by: principal.name.clone(),
                    reason,
                },
            )
            .await?;
            Err(error)
        }
        Err(error) => Err(error),
    }
}

/// Reject: closes the request without applying it.
#[utoipa::path(post, path = "/v1/change-requests/{id}/reject", tag = "change-requests",
    params(("id" = String, Path, description = "change request id")), request_body = Decision,
    responses((status = 200, body = Object), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn reject(
    State(app): State<AppState>,
    Path(id): Path<String>,
    params: Params,
    write: WriteContext,
    AppJson(body): AppJson<Decision>,
) -> Result<Response, ApiError> {
    params.allow(&[])?;
    let principal = write.principal.clone();
    let request = visible(&app, &principal, &id).await?;
    principal.allow(
        principal
            .role
            .write_layer(&request.namespace, &request.scope),
    )?;
    let position = decide(
        &app,
        &write,
        &request,
        ChangeRequestCommand::Reject {
            by: principal.name.clone(),
            reason: body.reason,
        },
    )
    .await?;
    Ok(Json(json!({"status": "rejected", "position": position})).into_response())
}

/// Withdraw: the author closes its own request.
#[utoipa::path(post, path = "/v1/change-requests/{id}/withdraw", tag = "change-requests",
    params(("id" = String, Path, description = "change request id")),
    responses((status = 200, body = Object), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn withdraw(
    State(app): State<AppState>,
    Path(id): Path<String>,
    params: Params,
    write: WriteContext,
) -> Result<Response, ApiError> {
    params.allow(&[])?;
    let principal = write.principal.clone();
    let request = visible(&app, &principal, &id).await?;
    if request.author != principal.name {
        return Err(ApiError::Forbidden(
            "only the author may withdraw a change request".into(),
        ));
    }
    let position = decide(
        &app,
        &write,
        &request,
        ChangeRequestCommand::Withdraw {
            by: principal.name.clone(),
        },
    )
    .await?;
    Ok(Json(json!({"status": "withdrawn", "position": position})).into_response())
}
