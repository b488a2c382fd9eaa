//! `/v1/tenants`: tenants and their editions.

use axum::extract::State;
use axum::response::Response;
use axum::{Extension, Json};
use ecs_domain::role::VisibleTenants;
use ecs_domain::{EditionName, Tenant, TenantCommand, TenantId};
use ecs_projections::queries::TenantRow;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::extract::ConditionalWrite;
use crate::extract::{AppJson, Params, PathId, WriteContext};
use crate::problem::ApiError;
use crate::routes::{Problem, WriteResult};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantPut {
    #[schema(value_type = String)]
    pub edition: EditionName,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantBody {
    pub id: String,
    pub name: Option<String>,
    pub edition: String,
    pub revision: u64,
    pub position: u64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: time::OffsetDateTime,
}

impl From<TenantRow> for TenantBody {
    fn from(row: TenantRow) -> Self {
        TenantBody {
            id: row.state.id.to_string(),
            name: row.state.name,
            edition: row.state.edition.to_string(),
            revision: row.state.revision,
            position: row.position,
            updated_at: row.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantList {
    pub tenants: Vec<TenantBody>,
}

/// Create or update a tenant and its edition.
#[utoipa::path(put, path = "/v1/tenants/{tenant}", tag = "tenants",
    params(("tenant" = String, Path, description = "tenant id"), ConditionalWrite),
    request_body = TenantPut,
    responses(
        (status = 201, description = "created", body = WriteResult),
        (status = 200, description = "updated (or unchanged)", body = WriteResult),
        (status = 400, description = "malformed", body = Problem),
        (status = 412, description = "stale If-Match", body = Problem),
    ))]
pub async fn put_tenant(
    State(app): State<AppState>,
    PathId(id): PathId<TenantId>,
    params: Params,
    write: WriteContext,
    AppJson(body): AppJson<TenantPut>,
) -> Result<Response, ApiError> {
    params.allow(&[])?;
    write.principal.allow(write.principal.role.administer())?;
    let command = TenantCommand::DefineTenant {
        id: id.clone(),
        name: body.name,
        edition: body.edition,
        expected_revision: write.expected_revision,
    };
    let committed = app
        .write::<Tenant>(&write, id.as_str(), command, &())
        .await?;
    Ok(WriteResult::respond(committed))
}

/// List the tenants the caller may know: every tenant for admins, auditors
/// and unbound viewers and editors; its own for a tenant-bound role; none for
/// a service.
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", responses((status = 200, body = TenantList)))]
pub async fn list_tenants(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    params: Params,
) -> Result<Json<TenantList>, ApiError> {
    params.allow(&[])?;
    // A role sees only the tenants its binding allows: one tenant's row, or
    // none at all (a service).
    let rows = match principal.role.tenants() {
        VisibleTenants::All => app.read.tenants().await?,
        VisibleTenants::One(own) => app.read.tenant(own).await?.into_iter().collect(),
        VisibleTenants::None => Vec::new(),
    };
    let tenants = rows.into_iter().map(Into::into).collect();
    Ok(Json(TenantList { tenants }))
}

/// Read a tenant.
#[utoipa::path(get, path = "/v1/tenants/{tenant}", tag = "tenants",
    params(("tenant" = String, Path, description = "tenant id")),
    responses((status = 200, body = TenantBody), (status = 404, body = Problem)))]
pub async fn get_tenant(
    State(app): State<AppState>,
    PathId(id): PathId<TenantId>,
    Extension(principal): Extension<Principal>,
    params: Params,
) -> Result<Json<TenantBody>, ApiError> {
    params.allow(&[])?;
    let not_found =
        || ApiError::not_found("tenant-not-found", format!("tenant {id} does not exist"));
    principal.check(principal.role.read_tenant(&id), not_found)?;
    let row = app.read.tenant(&id).await?.ok_or_else(not_found)?;
    Ok(Json(row.into()))
}
