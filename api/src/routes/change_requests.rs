//! `/v1/change-requests`: layer writes held for approval.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ecs_domain::change_request::{
    ChangeRequest, ChangeRequestCommand, LayerOutcome, ProposedChange, Status,
};
use ecs_domain::json::{leaves, merge_patch};
use ecs_domain::layer::layer_id;
use ecs_domain::{
    DomainError, Layer, LayerCommand, LayerState, NamespaceName, Reading, Scope, resolve,
};
use ecs_projections::change_requests::ChangeRequestRow;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::extract::{AppJson, Params, WriteContext};
use crate::masking::Masker;
use crate::problem::ApiError;
use crate::routes::Problem;
use crate::state::{AppState, Effect};

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
    let id = new_id(write);
    let command = ChangeRequestCommand::Open {
        id: id.clone(),
        namespace,
        scope: scope.clone(),
        change,
        message,
        base_revision,
        author: write.principal.actor(),
    };
    let committed = app
        .write::<ChangeRequest>(write, &aggregate_id(&id, &scope), command, &())
        .await?;
    // A retried write answers the request it opened, as it stands now.
    let status = if committed.duplicate || committed.unchanged {
        app.read
            .change_request(&id)
            .await?
            .map_or(Status::Open, |r| r.status)
    } else {
        Status::Open
    };
    let mut body = json!({
        "change_request": id,
        "status": status,
        "position": committed.position,
        "detail": "this layer requires approval: the change applies when a principal of another identity approves it",
    });
    if committed.duplicate || committed.unchanged {
        body["duplicate"] = json!(true);
    }
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// The id of a new change request: derived from the write's idempotency id
/// when it has one, so a retried write opens (and answers) the same request,
/// else random.
fn new_id(write: &WriteContext) -> String {
    match &write.idempotency_id {
        Some(key) => {
            let digest = Sha256::digest(format!("change-request\0{key}").as_bytes());
            hex::encode(&digest[..8])
        }
        None => {
            let mut bytes = [0u8; 8];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            hex::encode(bytes)
        }
    }
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
    params(("status" = Option<String>, Query, description = "open, applying, approved, rejected, withdrawn or failed"),
        ("namespace" = Option<String>, Query, description = "namespace")),
    responses((status = 200, body = ChangeRequestList)))]
pub async fn list(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    params: Params,
) -> Result<Json<ChangeRequestList>, ApiError> {
    params.allow(&["status", "namespace"])?;
    let status = params
        .get("status")
        .map(|s| {
            Status::parse(s).ok_or_else(|| {
                ApiError::bad(
                    "invalid-parameter",
                    "status",
                    "status must be open, applying, approved, rejected, withdrawn or failed",
                )
            })
        })
        .transpose()?;
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

/// Records a decision on the request; the request aggregate decides whether
/// it may be taken.
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

/// The command id of the layer write that applies a request: one per
/// request, so resuming an approval never applies the change twice.
fn apply_command_id(request: &ChangeRequestRow) -> String {
    format!("change-request-{}", request.id)
}

/// Applies an approved request's change to its layer. A refusal as stale is
/// checked against the layer's history first: the layer may have moved on
/// because this very request was applied already (by a concurrent or an
/// interrupted approval), which is then its outcome.
async fn apply(
    app: &AppState,
    write: &WriteContext,
    request: &ChangeRequestRow,
) -> Result<Result<ecs_commands::Committed, DomainError>, ApiError> {
    let context = WriteContext {
        principal: write.principal.clone(),
        expected_revision: Some(request.base_revision),
        idempotency_id: Some(apply_command_id(request)),
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
    let outcome = app
        .try_write::<Layer>(
            &context,
            &id_of_layer,
            command,
            &app.services,
            Effect::ReadYourWrites,
        )
        .await?;
    let Err(DomainError::StaleRevision { .. }) = &outcome else {
        return Ok(outcome);
    };
    let last = app.bus.position_of::<Layer>(&id_of_layer).await?;
    if !app.projections.wait_for(last, app.write_wait).await {
        return Err(ApiError::Unavailable(
            "the projections did not catch up with the layer in time".into(),
        ));
    }
    match app.read.command(&apply_command_id(request)).await? {
        Some(done) if done.aggregate_id == id_of_layer => Ok(Ok(ecs_commands::Committed {
            position: done.position,
            revision: done.revision,
            duplicate: true,
            unchanged: false,
        })),
        _ => Ok(outcome),
    }
}

/// Approve: a principal of another identity than the author's, allowed to
/// write the layer, decides to apply the change; it applies if the layer has
/// not changed since the request was opened. The request records the
/// decision before the layer changes, so a concurrent reject or withdraw is
/// refused from then on (409) and exactly one of them wins.
#[utoipa::path(post, path = "/v1/change-requests/{id}/approve", tag = "change-requests",
    params(("id" = String, Path, description = "change request id")),
    responses(
        (status = 200, description = "applied", body = Object),
        (status = 403, description = "not allowed, or self-approval", body = Problem),
        (status = 404, body = Problem),
        (status = 409, description = "closed already, or the layer changed meanwhile (the request is marked failed)", body = Problem),
        (status = 413, description = "the layer with the change would not fit in one message of the store (marked failed)", body = Problem),
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
    decide(
        &app,
        &write,
        &request,
        ChangeRequestCommand::Approve {
            by: principal.actor(),
        },
    )
    .await?;
    let applied = apply(&app, &write, &request).await?;
    let outcome = match &applied {
        Ok(_) => LayerOutcome::Applied,
        Err(refusal) => LayerOutcome::Refused(refusal.clone()),
    };
    decide(
        &app,
        &write,
        &request,
        ChangeRequestCommand::Conclude {
            by: principal.actor(),
            outcome,
        },
    )
    .await?;
    match applied {
        Ok(committed) => Ok(Json(json!({
            "status": Status::Approved,
            "revision": committed.revision,
            "position": committed.position,
        }))
        .into_response()),
        Err(DomainError::StaleRevision { .. }) => Err(ApiError::Conflict(
            "the layer changed since the request was opened; the change request is marked failed"
                .into(),
        )),
        Err(refusal) => Err(refusal.into()),
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
            by: principal.actor(),
            reason: body.reason,
        },
    )
    .await?;
    Ok(Json(json!({"status": Status::Rejected, "position": position})).into_response())
}

/// Withdraw: the author (any credential of the author's identity) closes its
/// own request.
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
    let position = decide(
        &app,
        &write,
        &request,
        ChangeRequestCommand::Withdraw {
            by: principal.actor(),
        },
    )
    .await?;
    Ok(Json(json!({"status": Status::Withdrawn, "position": position})).into_response())
}
