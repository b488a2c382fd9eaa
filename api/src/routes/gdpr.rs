//! `/v1/tenants/{tenant}/export` and `/erase`: a tenant's data, all of it, out
//! or gone.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ecs_domain::{Reading, Tenant, TenantCommand, TenantId};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::auth::Principal;
use crate::extract::IdempotentWrite;
use crate::extract::{Params, PathId, WriteContext};
use crate::masking::Masker;
use crate::problem::ApiError;
use crate::routes::Problem;
use crate::state::AppState;

fn not_found(tenant: &TenantId) -> ApiError {
    ApiError::not_found(
        "tenant-not-found",
        format!("tenant {tenant} does not exist"),
    )
}

/// Everything ECS holds about a tenant, as one JSON archive: the tenant, its
/// layers and their full history, its change requests, its API keys (never
/// their secrets) and its audit entries. Values the namespaces' schemas mark
/// sensitive are masked for roles that may not read them (an auditor).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/export", tag = "tenants",
    params(("tenant" = String, Path, description = "tenant id")),
    responses((status = 200, description = "the archive", body = Object), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn export(
    State(app): State<AppState>,
    PathId(tenant): PathId<TenantId>,
    Extension(principal): Extension<Principal>,
    params: Params,
) -> Result<Response, ApiError> {
    params.allow(&[])?;
    principal.check(principal.role.export_tenant(&tenant), || not_found(&tenant))?;
    if app.read.tenant(&tenant).await?.is_none() {
        return Err(not_found(&tenant));
    }
    let mut archive = app.read.tenant_export(&tenant).await?;
    let audit = app.read.audit_of_tenant(&tenant).await?;
    archive.insert("audit".to_owned(), Value::Array(audit));
    Masker::new(&app.read, &principal.role, Reading::Record)
        .export(&mut archive)
        .await?;
    let mut body = serde_json::Map::new();
    body.insert("format".to_owned(), json!("ecs-tenant-export/1"));
    body.insert("tenant_id".to_owned(), json!(tenant.as_str()));
    body.insert(
        "exported_at".to_owned(),
        json!(
            OffsetDateTime::now_utc()
                .format(&Rfc3339)
                .unwrap_or_default()
        ),
    );
    body.insert("exported_by".to_owned(), json!(principal.name));
    body.extend(archive);
    let mut response = Json(Value::Object(body)).into_response();
    if let Ok(disposition) = HeaderValue::from_str(&format!(
        "attachment; filename=\"ecs-tenant-{tenant}.json\""
    )) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, disposition);
    }
    Ok(response)
}

/// Erase a tenant: its data key is destroyed, so its values cannot be read
/// anywhere, the immutable events stream included; every projection forgets
/// them and the feed drops them. What was erased, when and by whom stays.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/erase", tag = "tenants",
    params(("tenant" = String, Path, description = "tenant id"), IdempotentWrite),
    responses((status = 200, body = Object), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 503, description = "stored but not in effect yet; repeat to confirm", body = Problem)))]
pub async fn erase(
    State(app): State<AppState>,
    PathId(tenant): PathId<TenantId>,
    params: Params,
    write: WriteContext,
) -> Result<Response, ApiError> {
    params.allow(&[])?;
    write.principal.allow(write.principal.role.administer())?;
    if app.read.tenant(&tenant).await?.is_none() {
        return Err(not_found(&tenant));
    }
    let committed = app
        .write_in_effect::<Tenant>(&write, tenant.as_str(), TenantCommand::EraseTenant, &())
        .await?;
    // The feed publisher also destroys the key when it sees the erasure, so a
    // crash here loses nothing; doing it now makes the erasure immediate.
    app.keyring
        .destroy(tenant.as_str())
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(Json(json!({
        "erased": tenant.as_str(),
        "position": committed.position,
        "by": write.principal.name,
    }))
    .into_response())
}
