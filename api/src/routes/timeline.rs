//! `/v1/tenants/{tenant}/history`: a tenant's timeline, every change to its
//! layers across the namespaces the caller may see, newest first.

use axum::Json;
use axum::extract::{Extension, State};
use ecs_domain::{Reading, TenantId};
use ecs_projections::queries::TimelineKey;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::extract::{Params, PathId};
use crate::masking::Masker;
use crate::problem::ApiError;
use crate::routes::Problem;
use crate::routes::layers::LayerBody;
use crate::state::AppState;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// Paging of a tenant's timeline (documentation only).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimelineParams {
    /// 1 to 1000; 100 when absent.
    pub limit: Option<u32>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// A page of a tenant's timeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct Timeline {
    pub tenant: String,
    /// Newest first; each a layer revision with its namespace.
    pub revisions: Vec<TimelineEntry>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineEntry {
    pub namespace: String,
    #[serde(flatten)]
    pub revision: LayerBody,
}

fn invalid(field: &str, detail: impl Into<String>) -> ApiError {
    ApiError::bad("invalid-parameter", field, detail)
}

fn encode_cursor(key: &TimelineKey) -> String {
    hex::encode(serde_json::to_vec(key).unwrap_or_default())
}

fn decode_cursor(text: &str) -> Result<TimelineKey, ApiError> {
    hex::decode(text)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| invalid("cursor", "cursor must be a next_cursor this route answered"))
}

/// Every change to a tenant's layers (layers whose scope names the tenant),
/// across the namespaces the caller may see, newest first, a page at a time.
/// Sensitive values are masked as in a layer read.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/history", tag = "tenants",
    params(("tenant" = String, Path, description = "tenant id"), TimelineParams),
    responses(
        (status = 200, description = "a page of the tenant's layer revisions, newest first", body = Timeline),
        (status = 400, description = "a malformed parameter (the problem names it)", body = Problem),
        (status = 404, description = "no such tenant, or the caller may not know it", body = Problem),
    ))]
pub async fn tenant_history(
    State(app): State<AppState>,
    PathId(tenant): PathId<TenantId>,
    Extension(principal): Extension<Principal>,
    params: Params,
) -> Result<Json<Timeline>, ApiError> {
    params.allow(&["limit", "cursor"])?;
    let not_found = || {
        ApiError::not_found(
            "tenant-not-found",
            format!("tenant {tenant} does not exist"),
        )
    };
    principal.check(principal.role.read_tenant(&tenant), not_found)?;
    app.read.tenant(&tenant).await?.ok_or_else(not_found)?;
    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| invalid("limit", format!("limit must be 1 to {MAX_LIMIT}")))?,
    };
    let before = params.get("cursor").map(decode_cursor).transpose()?;
    // The namespaces the role may see, chosen in the query so that every
    // page is full until the last.
    let namespaces: Vec<String> = app
        .read
        .namespaces()
        .await?
        .into_iter()
        .filter(|n| principal.role.sees_namespace(&n.state.name))
        .map(|n| n.state.name.to_string())
        .collect();
    let page = app
        .read
        .tenant_history_page(&tenant, &namespaces, before.as_ref(), limit)
        .await?;
    let mut masker = Masker::new(&app.read, &principal.role, Reading::Record);
    let mut revisions = Vec::with_capacity(page.revisions.len());
    for revision in page.revisions {
        let namespace = revision.state.namespace.to_string();
        let mut body = LayerBody::from(revision);
        masker.values(&namespace, &mut body.values).await?;
        revisions.push(TimelineEntry {
            namespace,
            revision: body,
        });
    }
    Ok(Json(Timeline {
        tenant: tenant.to_string(),
        revisions,
        next_cursor: page.next.as_ref().map(encode_cursor),
    }))
}
