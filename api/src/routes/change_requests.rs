//! `/v1/change-requests`: layer writes held for approval.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ecs_commands::Committed;
use ecs_commands::approval::{self, Approval, Proposal};
use ecs_domain::change_request::{
    self, ChangeRequest, ChangeRequestCommand, ProposedChange, Status,
};
use ecs_domain::json::{leaves, merge_patch};
use ecs_domain::layer::layer_id;
use ecs_domain::{
    ChangeRequestId, DomainError, Layer, LayerCommand, LayerState, NamespaceName, Reading, Scope,
    resolve,
};
use ecs_projections::change_requests::ChangeRequestRow;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::extract::IdempotentWrite;
use crate::extract::{AppJson, Params, WriteContext};
use crate::masking::Masker;
use crate::problem::ApiError;
use crate::routes::Problem;
use crate::state::{AppState, Effect};

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
    let id = approval::new_request_id(write.idempotency_id.as_deref());
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
        .write::<ChangeRequest>(
            write,
            &change_request::aggregate_id(&id, &scope),
            command,
            &(),
        )
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
    let id = ChangeRequestId::parse(id).map_err(|_| not_found())?;
    let request = app
        .read
        .change_request(id.as_str())
        .await?
        .ok_or_else(not_found)?;
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

/// Runs the approval workflow's commands for one request to the API.
struct Commands<'a> {
    app: &'a AppState,
    write: &'a WriteContext,
}

impl approval::Runner for Commands<'_> {
    type Error = ApiError;

    /// A decision is its own command: no expected revision, no idempotency key.
    async fn change_request(
        &self,
        aggregate_id: &str,
        command: ChangeRequestCommand,
    ) -> Result<Result<Committed, DomainError>, ApiError> {
        let context = WriteContext {
            expected_revision: None,
            idempotency_id: None,
            ..self.write.clone()
        };
        self.app
            .try_write::<ChangeRequest>(
                &context,
                aggregate_id,
                command,
                &(),
                Effect::ReadYourWrites,
            )
            .await
    }

    async fn layer(
        &self,
        command: LayerCommand,
        command_id: String,
    ) -> Result<Result<Committed, DomainError>, ApiError> {
        let context = WriteContext {
            expected_revision: command.expected_revision,
            idempotency_id: Some(command_id),
            ..self.write.clone()
        };
        let id = layer_id(&command.namespace, &command.scope);
        self.app
            .try_write::<Layer>(
                &context,
                &id,
                command,
                &self.app.services,
                Effect::ReadYourWrites,
            )
            .await
    }

    async fn applied(
        &self,
        command_id: &str,
        aggregate_id: &str,
    ) -> Result<Option<Committed>, ApiError> {
        let last = self.app.bus.position_of::<Layer>(aggregate_id).await?;
        if !self
            .app
            .projections
            .wait_for(last, self.app.write_wait)
            .await
        {
            return Err(ApiError::Unavailable(
                "the projections did not catch up with the layer in time".into(),
            ));
        }
        Ok(self
            .app
            .read
            .command(command_id)
            .await?
            .filter(|done| done.aggregate_id == aggregate_id)
            .map(|done| Committed {
                position: done.position,
                revision: done.revision,
                duplicate: true,
                unchanged: false,
            }))
    }
}

/// The request as the workflow takes it.
fn proposal(request: &ChangeRequestRow) -> Proposal<'_> {
    Proposal {
        id: &request.id,
        namespace: &request.namespace,
        scope: &request.scope,
        change: &request.change,
        message: &request.message,
        base_revision: request.base_revision,
        author: &request.author,
    }
}

/// Approve: a principal of another identity than the author's, allowed to
/// write the layer, decides to apply the change; it applies if the layer has
/// not changed since the request was opened. The request records the
/// decision before the layer changes, so a concurrent reject or withdraw is
/// refused from then on (409) and exactly one of them wins.
#[utoipa::path(post, path = "/v1/change-requests/{id}/approve", tag = "change-requests",
    params(("id" = String, Path, description = "change request id"), IdempotentWrite),
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
    let commands = Commands {
        app: &app,
        write: &write,
    };
    match approval::approve(&commands, proposal(&request), principal.actor()).await?? {
        Approval::Applied(committed) => Ok(Json(json!({
            "status": Status::Approved,
            "revision": committed.revision,
            "position": committed.position,
        }))
        .into_response()),
        Approval::Refused(DomainError::StaleRevision { .. }) => Err(ApiError::Conflict(
            "the layer changed since the request was opened; the change request is marked failed"
                .into(),
        )),
        Approval::Refused(refusal) => Err(refusal.into()),
    }
}

/// Reject: closes the request without applying it.
#[utoipa::path(post, path = "/v1/change-requests/{id}/reject", tag = "change-requests",
    params(("id" = String, Path, description = "change request id"), IdempotentWrite), request_body = Decision,
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
    let commands = Commands {
        app: &app,
        write: &write,
    };
    let committed = approval::reject(
        &commands,
        proposal(&request),
        principal.actor(),
        body.reason,
    )
    .await??;
    let position = committed.position;
    Ok(Json(json!({"status": Status::Rejected, "position": position})).into_response())
}

/// Withdraw: the author (any credential of the author's identity) closes its
/// own request.
#[utoipa::path(post, path = "/v1/change-requests/{id}/withdraw", tag = "change-requests",
    params(("id" = String, Path, description = "change request id"), IdempotentWrite),
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
    let commands = Commands {
        app: &app,
        write: &write,
    };
    let committed = approval::withdraw(&commands, proposal(&request), principal.actor()).await??;
    let position = committed.position;
    Ok(Json(json!({"status": Status::Withdrawn, "position": position})).into_response())
}
