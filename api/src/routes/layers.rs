//! `/v1/namespaces/{ns}/layer`: the values of one namespace at one scope.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ecs_domain::layer::layer_id;
use ecs_domain::{
    Layer, LayerAction, LayerChange, LayerCommand, NamespaceName, Reading, Scope, Sensitivity,
    mask_for,
};
use ecs_projections::queries::LayerRevision;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::extract::ConditionalWrite;
use crate::extract::{AppJson, Params, PathId, SCOPE_PARAMS, WriteContext};
use crate::problem::ApiError;
use crate::routes::{PastParams, Problem, ScopeParams, WriteResult, position_of};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LayerPut {
    /// The layer's values: a JSON object; `null` removes an inherited key.
    #[schema(value_type = Object)]
    pub values: Value,
    #[serde(default)]
    pub message: String,
    /// JSON pointers this layer locks; absent keeps the current locks.
    #[serde(default)]
    pub lock: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LayerPatch {
    /// An RFC 7386 merge patch of the layer's values.
    #[schema(value_type = Object)]
    pub values: Value,
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    /// The revision whose values and locks to restore.
    pub revision: u64,
    #[serde(default)]
    pub message: String,
}

/// A layer at one revision.
#[derive(Debug, Serialize, ToSchema)]
pub struct LayerBody {
    #[schema(value_type = Object)]
    pub scope: Scope,
    #[schema(value_type = Object)]
    pub values: Value,
    pub revision: u64,
    /// The JSON pointers this layer locks.
    pub locked: Vec<String>,
    pub position: u64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: time::OffsetDateTime,
    pub actor: String,
    pub message: String,
    #[schema(value_type = Object)]
    pub change: LayerChange,
}

impl From<LayerRevision> for LayerBody {
    fn from(r: LayerRevision) -> Self {
        LayerBody {
            scope: r.state.scope,
            values: r.state.values,
            revision: r.state.revision,
            locked: r.state.lock,
            position: r.position,
            at: r.at,
            actor: r.actor,
            message: r.message,
            change: r.change,
        }
    }
}

/// A page of a layer's revisions, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct LayerHistory {
    #[schema(value_type = Object)]
    pub scope: Scope,
    pub revisions: Vec<LayerBody>,
    /// Pass as `cursor` for the next (newer) page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Paging of a layer's history (documentation only).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryPageParams {
    /// 1 to 1000; 100 when absent.
    pub limit: Option<u32>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// The page size of a history read when `limit` is absent.
const DEFAULT_HISTORY_LIMIT: u32 = 100;
/// The largest page of a history read.
const MAX_HISTORY_LIMIT: u32 = 1000;

/// Cursors are opaque to clients: hex of `r<revision>`, the last revision of
/// the page before.
fn encode_history_cursor(revision: u64) -> String {
    hex::encode(format!("r{revision}"))
}

fn decode_history_cursor(text: &str) -> Result<u64, ApiError> {
    hex::decode(text)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix('r')?.parse::<u64>().ok())
        .ok_or_else(|| {
            ApiError::bad(
                "invalid-parameter",
                "cursor",
                "cursor must be a next_cursor of an earlier page",
            )
        })
}

fn history_limit(params: &Params) -> Result<u32, ApiError> {
    match params.get("limit") {
        None => Ok(DEFAULT_HISTORY_LIMIT),
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=MAX_HISTORY_LIMIT).contains(l))
            .ok_or_else(|| {
                ApiError::bad(
                    "invalid-parameter",
                    "limit",
                    format!("limit must be 1 to {MAX_HISTORY_LIMIT}"),
                )
            }),
    }
}

/// The namespace's current schema, for masking sensitive values (404 when
/// the namespace does not exist).
async fn require_namespace(app: &AppState, ns: &NamespaceName) -> Result<Option<Value>, ApiError> {
    match app.read.namespace(ns).await? {
        Some(namespace) => Ok(namespace.state.schema),
        None => Err(ApiError::not_found(
            "namespace-not-found",
            format!("namespace {ns} does not exist"),
        )),
    }
}

fn layer_not_found(ns: &NamespaceName, scope: &Scope) -> ApiError {
    ApiError::not_found(
        "layer-not-found",
        format!("the layer at {scope} of namespace {ns} has no revisions then"),
    )
}

async fn run(
    app: &AppState,
    ns: NamespaceName,
    scope: Scope,
    write: WriteContext,
    action: LayerAction,
    message: String,
) -> Result<Response, ApiError> {
    let decision = write.principal.role.write_layer(&ns, &scope);
    write
        .principal
        .check(decision, || layer_not_found(&ns, &scope))?;
    if let Some(namespace) = app.read.namespace(&ns).await?
        && namespace
            .state
            .approval
            .as_ref()
            .is_some_and(|p| p.covers(&scope))
    {
        return crate::routes::change_requests::open(
            app,
            &write,
            ns,
            scope,
            action.into(),
            message,
        )
        .await;
    }
    let id = layer_id(&ns, &scope);
    let command = LayerCommand {
        namespace: ns,
        scope,
        action,
        message,
        expected_revision: write.expected_revision,
    };
    let committed = app
        .write::<Layer>(&write, &id, command, &app.services)
        .await?;
    Ok(WriteResult::respond(committed))
}

/// Read a layer, now or as it was at a past time or position. Values the
/// namespace's schema marks sensitive read as `"***"` for roles that may not
/// read them (viewer, service, auditor).
#[utoipa::path(get, path = "/v1/namespaces/{ns}/layer", tag = "layers",
    params(("ns" = String, Path, description = "namespace name"), ScopeParams, PastParams),
    responses((status = 200, body = LayerBody), (status = 404, body = Problem)))]
pub async fn get_layer(
    State(app): State<AppState>,
    PathId(ns): PathId<NamespaceName>,
    Extension(principal): Extension<Principal>,
    params: Params,
) -> Result<Response, ApiError> {
    params.allow(&[SCOPE_PARAMS.as_slice(), &["at", "position"]].concat())?;
    let scope = params.scope()?;
    principal.check(principal.role.read_layer(&ns, &scope), || {
        layer_not_found(&ns, &scope)
    })?;
    let position = position_of(&app, params.point_in_time()?).await?;
    let schema = require_namespace(&app, &ns).await?;
    let layer = app
        .read
        .layer(&ns, &scope, position)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(
                "layer-not-found",
                format!("the layer at {scope} of namespace {ns} has no revisions then"),
            )
        })?;
    let etag = HeaderValue::from_str(&format!("\"{}\"", layer.state.revision)).ok();
    let mut body = LayerBody::from(layer);
    mask_for(
        &principal.role,
        Reading::Record,
        schema.as_ref(),
        &mut body.values,
    );
    let mut response = Json(body).into_response();
    if let Some(etag) = etag {
        response.headers_mut().insert(header::ETAG, etag);
    }
    Ok(response)
}

/// Replace a layer's values (and locks).
#[utoipa::path(put, path = "/v1/namespaces/{ns}/layer", tag = "layers",
    params(("ns" = String, Path, description = "namespace name"), ScopeParams, ConditionalWrite),
    request_body = LayerPut,
    responses(
        (status = 200, body = WriteResult), (status = 201, body = WriteResult),
        (status = 400, body = Problem), (status = 404, body = Problem), (status = 412, body = Problem),
        (status = 413, body = Problem), (status = 422, description = "fails the schema or a lock", body = Problem),
    ))]
pub async fn put_layer(
    State(app): State<AppState>,
    PathId(ns): PathId<NamespaceName>,
    params: Params,
    write: WriteContext,
    AppJson(body): AppJson<LayerPut>,
) -> Result<Response, ApiError> {
    params.allow(&SCOPE_PARAMS)?;
    let action = LayerAction::Replace {
        values: body.values,
        lock: body.lock,
    };
    run(&app, ns, params.scope()?, write, action, body.message).await
}

/// Merge-patch a layer's values (RFC 7386).
#[utoipa::path(patch, path = "/v1/namespaces/{ns}/layer", tag = "layers",
    params(("ns" = String, Path, description = "namespace name"), ScopeParams, ConditionalWrite),
    request_body = LayerPatch,
    responses(
        (status = 200, body = WriteResult), (status = 201, body = WriteResult),
        (status = 400, body = Problem), (status = 404, body = Problem), (status = 412, body = Problem),
        (status = 422, body = Problem),
    ))]
pub async fn patch_layer(
    State(app): State<AppState>,
    PathId(ns): PathId<NamespaceName>,
    params: Params,
    write: WriteContext,
    AppJson(body): AppJson<LayerPatch>,
) -> Result<Response, ApiError> {
    params.allow(&SCOPE_PARAMS)?;
    let action = LayerAction::Patch { patch: body.values };
    run(&app, ns, params.scope()?, write, action, body.message).await
}

/// Clear a layer: a new, empty revision; history stays.
#[utoipa::path(delete, path = "/v1/namespaces/{ns}/layer", tag = "layers",
    params(("ns" = String, Path, description = "namespace name"), ScopeParams,
        ("message" = Option<String>, Query, description = "why"), ConditionalWrite),
    responses((status = 200, body = WriteResult), (status = 404, body = Problem), (status = 412, body = Problem)))]
pub async fn delete_layer(
    State(app): State<AppState>,
    PathId(ns): PathId<NamespaceName>,
    params: Params,
    write: WriteContext,
) -> Result<Response, ApiError> {
    params.allow(&[SCOPE_PARAMS.as_slice(), &["message"]].concat())?;
    let message = params.get("message").unwrap_or_default().to_owned();
    run(
        &app,
        ns,
        params.scope()?,
        write,
        LayerAction::Clear,
        message,
    )
    .await
}

/// The revisions of a layer, oldest first, a page at a time (`limit`, and
/// `cursor` from the page before). Sensitive values are masked as in a layer
/// read.
#[utoipa::path(get, path = "/v1/namespaces/{ns}/layer/history", tag = "layers",
    params(("ns" = String, Path, description = "namespace name"), ScopeParams, HistoryPageParams),
    responses(
        (status = 200, description = "a page of revisions, oldest first", body = LayerHistory),
        (status = 400, description = "a malformed parameter (the problem names it)", body = Problem),
        (status = 404, body = Problem),
    ))]
pub async fn layer_history(
    State(app): State<AppState>,
    PathId(ns): PathId<NamespaceName>,
    Extension(principal): Extension<Principal>,
    params: Params,
) -> Result<Json<LayerHistory>, ApiError> {
    params.allow(&[SCOPE_PARAMS.as_slice(), &["limit", "cursor"]].concat())?;
    let scope = params.scope()?;
    principal.check(principal.role.read_layer(&ns, &scope), || {
        layer_not_found(&ns, &scope)
    })?;
    let limit = history_limit(&params)?;
    let after = params
        .get("cursor")
        .map(decode_history_cursor)
        .transpose()?;
    let schema = require_namespace(&app, &ns).await?;
    let page = app
        .read
        .layer_history_page(&ns, &scope, after, limit)
        .await?;
    // What the schema marks, read once for the whole page.
    let sensitivity =
        (!Reading::Record.reveals_to(&principal.role)).then(|| Sensitivity::of(schema.as_ref()));
    let revisions = page
        .revisions
        .into_iter()
        .map(|revision| {
            let mut body = LayerBody::from(revision);
            if let Some(sensitivity) = &sensitivity {
                sensitivity.mask(&mut body.values);
            }
            body
        })
        .collect();
    Ok(Json(LayerHistory {
        scope,
        revisions,
        next_cursor: page.next.map(encode_history_cursor),
    }))
}

/// A new revision whose values and locks equal an earlier one's.
#[utoipa::path(post, path = "/v1/namespaces/{ns}/layer/rollback", tag = "layers",
    params(("ns" = String, Path, description = "namespace name"), ScopeParams, ConditionalWrite),
    request_body = RollbackBody,
    responses(
        (status = 200, body = WriteResult), (status = 404, body = Problem), (status = 412, body = Problem),
        (status = 422, description = "no such revision, or it fails the schema or a lock now", body = Problem),
    ))]
pub async fn rollback_layer(
    State(app): State<AppState>,
    PathId(ns): PathId<NamespaceName>,
    params: Params,
    write: WriteContext,
    AppJson(body): AppJson<RollbackBody>,
) -> Result<Response, ApiError> {
    params.allow(&SCOPE_PARAMS)?;
    let action = LayerAction::RollBack {
        revision: body.revision,
    };
    let answer = run(&app, ns, params.scope()?, write, action, body.message).await?;
    if answer.status().is_success() {
        metrics::counter!("ecs_rollbacks_total").increment(1);
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_cursors_round_trip_and_refuse_anything_else() {
        for revision in [0, 1, 42, u64::MAX] {
            assert_eq!(
                decode_history_cursor(&encode_history_cursor(revision)).ok(),
                Some(revision)
            );
        }
        for bad in [
            "",
            "zz",
            "7a31",
            &hex::encode("r"),
            &hex::encode("r-1"),
            &hex::encode("12"),
        ] {
            assert!(decode_history_cursor(bad).is_err(), "{bad}");
        }
    }
}
