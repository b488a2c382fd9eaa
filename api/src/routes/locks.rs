//! `GET /v1/namespaces/{ns}/locks`: the locks that bind a layer, so an editor
//! (Config Studio) shows a locked value locked before anyone types a change
//! the server would refuse.

use axum::extract::State;
use axum::{Extension, Json};
use ecs_domain::{BindingLock, NamespaceName, Scope, binding_locks};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::extract::{Params, PathId, SCOPE_PARAMS};
use crate::problem::ApiError;
use crate::routes::{Problem, ScopeParams};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct LocksBody {
    #[schema(value_type = Object)]
    pub scope: Scope,
    /// Each pointer the layer may not set (nor anything below it), with the
    /// scope of the layer holding the lock.
    #[schema(value_type = Vec<Object>)]
    pub locks: Vec<BindingLock>,
}

/// The locks held by weaker layers that apply together with the layer at
/// this scope: what a write to it may not set. Only the pointers and the
/// locking scopes are shown, never the locking layers' values.
#[utoipa::path(get, path = "/v1/namespaces/{ns}/locks", tag = "layers",
    params(("ns" = String, Path, description = "namespace name"), ScopeParams),
    responses((status = 200, body = LocksBody), (status = 404, body = Problem)))]
pub async fn binding(
    State(app): State<AppState>,
    PathId(ns): PathId<NamespaceName>,
    Extension(principal): Extension<Principal>,
    params: Params,
) -> Result<Json<LocksBody>, ApiError> {
    params.allow(SCOPE_PARAMS.as_slice())?;
    let scope = params.scope()?;
    let not_found = || {
        ApiError::not_found(
            "namespace-not-found",
            format!("namespace {ns} does not exist"),
        )
    };
    principal.check(principal.role.read_layer(&ns, &scope), not_found)?;
    app.read.namespace(&ns).await?.ok_or_else(not_found)?;
    let layers = ecs_domain::ports::ConfigReader::layers(&app.read, &ns).await?;
    let refs: Vec<_> = layers.iter().map(|l| l.as_ref()).collect();
    let locks = binding_locks(&scope, &refs, &app.services.precedence);
    Ok(Json(LocksBody { scope, locks }))
}
