//! `/v1/namespaces/{ns}/resolved`: the resolved document for a context.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ecs_domain::{LayerState, NamespaceName, Reading, Scope, Source, mask_for, resolve};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::extract::{Params, PathId, SCOPE_PARAMS};
use crate::problem::ApiError;
use crate::routes::{PastParams, Problem, ScopeParams, position_of};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct ResolvedBody {
    #[schema(value_type = Object)]
    pub values: Value,
    /// The global position this answer reflects.
    pub position: u64,
    /// With `explain=true`: per JSON pointer, where the value came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub sources: Option<BTreeMap<String, Source>>,
}

/// Query parameters of a resolved read (documentation only).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExplainParam {
    /// Add `sources`: the scope and revision behind every value.
    pub explain: Option<bool>,
}

fn etag_of(values: &Value, sources: Option<&BTreeMap<String, Source>>) -> String {
    let mut hash = Sha256::new();
    hash.update(values.to_string().as_bytes());
    if let Some(sources) = sources {
        hash.update(
            serde_json::to_string(sources)
                .unwrap_or_default()
                .as_bytes(),
        );
    }
    format!("\"{}\"", hex::encode(&hash.finalize()[..16]))
}

fn matches_etag(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().trim_start_matches("W/"))
        .any(|v| v == etag || v == "*")
}

/// A namespace resolved for a context at one position.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub values: Value,
    pub sources: BTreeMap<String, Source>,
    /// The global position the resolution reflects.
    pub position: u64,
}

/// Resolves `ns` for `context` as of `position` (`None`: now), the one
/// resolution step every read shares. 404 when the namespace, or the tenant the
/// context names, did not exist then.
pub async fn resolve_context(
    app: &AppState,
    ns: &NamespaceName,
    context: &Scope,
    position: Option<u64>,
) -> Result<Resolution, ApiError> {
    let (snapshot, edition) = match position {
        // Current reads come from memory.
        None => {
            let current = app.cache.current(ns, context.tenant.as_ref()).await?;
            (current.snapshot, current.edition)
        }
        Some(_) => match app
            .read
            .snapshot(
                ns,
                context.tenant.as_ref(),
                ecs_projections::Layers::Applicable,
                position,
            )
            .await?
        {
            Some((snapshot, edition)) => (Some(std::sync::Arc::new(snapshot)), edition),
            None => (None, None),
        },
    };
    let snapshot = snapshot.ok_or_else(|| {
        ApiError::not_found(
            "namespace-not-found",
            format!("namespace {ns} does not exist then"),
        )
    })?;
    if let (Some(tenant), None) = (&context.tenant, &edition) {
        return Err(ApiError::not_found(
            "tenant-not-found",
            format!("tenant {tenant} does not exist then"),
        ));
    }
    let context = context.clone().with_tenant_edition(edition);
    let refs: Vec<_> = snapshot.layers.iter().map(LayerState::as_ref).collect();
    let resolved = resolve(
        &snapshot.namespace.defaults(),
        &refs,
        &context,
        &app.services.precedence,
    );
    Ok(Resolution {
        values: resolved.values,
        sources: resolved.sources,
        position: snapshot.position,
    })
}

/// Whether the caller may read the resolved document of `ns` for `context`:
/// a namespace it may not see answers as unknown, and so does another tenant.
pub fn authorize(
    principal: &Principal,
    ns: &NamespaceName,
    context: &ecs_domain::Scope,
) -> Result<(), ApiError> {
    principal.check(principal.role.read_resolved(ns, context), || {
        if principal.role.sees_namespace(ns) {
            ApiError::not_found("tenant-not-found", "no such tenant")
        } else {
            ApiError::not_found(
                "namespace-not-found",
                format!("namespace {ns} does not exist"),
            )
        }
    })
}

/// Masks the values the namespace's current schema marks sensitive for a
/// caller that may not read them, except a service, which needs its
/// configuration to run.
pub async fn mask_sensitive(
    app: &AppState,
    principal: &Principal,
    ns: &NamespaceName,
    values: &mut Value,
) -> Result<(), ApiError> {
    if Reading::Configuration.reveals_to(&principal.role) {
        return Ok(());
    }
    // The current schema, from memory.
    if let Some(snapshot) = app.cache.current(ns, None).await?.snapshot {
        mask_for(
            &principal.role,
            Reading::Configuration,
            snapshot.namespace.schema.as_ref(),
            values,
        );
    }
    Ok(())
}

/// Resolve a namespace for a context: schema defaults, then every applicable
/// layer in precedence order.
#[utoipa::path(get, path = "/v1/namespaces/{ns}/resolved", tag = "resolution",
    params(("ns" = String, Path, description = "namespace name"), ScopeParams, PastParams, ExplainParam,
        ("If-None-Match" = Option<String>, Header, description = "an ETag from an earlier answer")),
    responses(
        (status = 200, body = ResolvedBody, headers(("ETag" = String))),
        (status = 304, description = "unchanged since the ETag"),
        (status = 400, body = Problem), (status = 404, body = Problem),
    ))]
pub async fn get_resolved(
    State(app): State<AppState>,
    PathId(ns): PathId<NamespaceName>,
    Extension(principal): Extension<Principal>,
    params: Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    params.allow(&[SCOPE_PARAMS.as_slice(), &["explain", "at", "position"]].concat())?;
    let context = params.scope()?;
    authorize(&principal, &ns, &context)?;
    let explain = params.flag("explain")?;
    let position = position_of(&app, params.point_in_time()?).await?;
    let mut resolved = resolve_context(&app, &ns, &context, position).await?;
    mask_sensitive(&app, &principal, &ns, &mut resolved.values).await?;
    let sources = explain.then_some(resolved.sources);
    let etag = etag_of(&resolved.values, sources.as_ref());
    let etag_header = HeaderValue::from_str(&etag).ok();
    let mut response = if matches_etag(&headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Json(ResolvedBody {
            values: resolved.values,
            position: resolved.position,
            sources,
        })
        .into_response()
    };
    if let Some(etag) = etag_header {
        response.headers_mut().insert(header::ETAG, etag);
    }
    Ok(response)
}
