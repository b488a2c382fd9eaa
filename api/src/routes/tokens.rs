//! `/v1/tokens`: API keys that ECS issues. The secret is shown once, in the
//! answer to `POST`; only its SHA-256 is stored.

use std::collections::BTreeSet;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ecs_domain::{
    EnvName, NamespaceName, Role, ServiceName, TenantId, Token, TokenCommand, TokenId,
};
use ecs_projections::queries::TokenRow;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

use crate::auth::{API_KEY_PREFIX, Principal, hash_secret};
use crate::extract::IdempotentWrite;
use crate::extract::{AppJson, Params, WriteContext};
use crate::problem::ApiError;
use crate::routes::{Problem, WriteResult};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub name: String,
    /// `admin`, `tenant-admin`, `editor`, `viewer`, `service` or `auditor`.
    pub role: String,
    /// The tenant of a `tenant-admin`, or the one tenant of an `editor`/`viewer`.
    #[schema(value_type = Option<String>)]
    pub tenant: Option<TenantId>,
    /// The namespaces of an `editor` or `viewer`.
    #[schema(value_type = Option<Vec<String>>)]
    pub namespaces: Option<Vec<NamespaceName>>,
    /// The env of a `service`.
    #[schema(value_type = Option<String>)]
    pub env: Option<EnvName>,
    /// The service of a `service`.
    #[schema(value_type = Option<String>)]
    pub service: Option<ServiceName>,
    /// RFC 3339; absent: never expires.
    pub expires_at: Option<String>,
}

/// The answer to issuing a token: the only time the secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedToken {
    pub id: String,
    /// The bearer credential; store it now, it cannot be shown again.
    pub token: String,
    pub position: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    #[schema(value_type = Vec<Object>)]
    pub tokens: Vec<TokenRow>,
}

fn unexpected(field: &str, role: &str) -> ApiError {
    ApiError::bad(
        "invalid-field",
        field,
        format!("{field} does not apply to the {role} role"),
    )
}

/// The role a request describes, each dimension checked against the role.
fn role_of(request: &TokenRequest) -> Result<Role, ApiError> {
    let name = request.role.as_str();
    let require = |present: bool, field: &str| {
        if present {
            Ok(())
        } else {
            Err(ApiError::bad(
                "invalid-field",
                field,
                format!("the {name} role needs {field}"),
            ))
        }
    };
    let forbid = |present: bool, field: &str| {
        if present {
            Err(unexpected(field, name))
        } else {
            Ok(())
        }
    };
    let role = match name {
        "admin" | "auditor" => {
            forbid(request.tenant.is_some(), "tenant")?;
            forbid(request.namespaces.is_some(), "namespaces")?;
            forbid(request.env.is_some(), "env")?;
            forbid(request.service.is_some(), "service")?;
            if name == "admin" {
                Role::Admin
            } else {
                Role::Auditor
            }
        }
        "tenant-admin" => {
            forbid(request.namespaces.is_some(), "namespaces")?;
            forbid(request.env.is_some(), "env")?;
            forbid(request.service.is_some(), "service")?;
            let tenant = request.tenant.clone();
            require(tenant.is_some(), "tenant")?;
            Role::TenantAdmin {
                tenant: tenant.ok_or_else(|| unexpected("tenant", name))?,
            }
        }
        "editor" | "viewer" => {
            forbid(request.env.is_some(), "env")?;
            forbid(request.service.is_some(), "service")?;
            let namespaces: BTreeSet<NamespaceName> =
                request.namespaces.iter().flatten().cloned().collect();
            require(!namespaces.is_empty(), "namespaces")?;
            let tenant = request.tenant.clone();
            if name == "editor" {
                Role::Editor { namespaces, tenant }
            } else {
                Role::Viewer { namespaces, tenant }
            }
        }
        "service" => {
            forbid(request.tenant.is_some(), "tenant")?;
            forbid(request.namespaces.is_some(), "namespaces")?;
            match (&request.env, &request.service) {
                (Some(env), Some(service)) => Role::Service {
                    env: env.clone(),
                    service: service.clone(),
                },
                (None, _) => {
                    return Err(ApiError::bad(
                        "invalid-field",
                        "env",
                        "the service role needs env",
                    ));
                }
                (_, None) => {
                    return Err(ApiError::bad(
                        "invalid-field",
                        "service",
                        "the service role needs service",
                    ));
                }
            }
        }
        other => {
            return Err(ApiError::bad(
                "invalid-field",
                "role",
                format!(
                    "unknown role {other:?}: admin, tenant-admin, editor, viewer, service or auditor"
                ),
            ));
        }
    };
    Ok(role)
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buffer);
    hex::encode(buffer)
}

/// Issue an API key for a role.
#[utoipa::path(post, path = "/v1/tokens", params(IdempotentWrite), tag = "tokens", request_body = TokenRequest,
    responses(
        (status = 201, body = IssuedToken), (status = 400, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem),
    ))]
pub async fn issue_token(
    State(app): State<AppState>,
    params: Params,
    mut write: WriteContext,
    AppJson(body): AppJson<TokenRequest>,
) -> Result<Response, ApiError> {
    params.allow(&[])?;
    let role = role_of(&body)?;
    let principal = write.principal.clone();
    principal.allow(principal.role.manage_tokens(role.tenant()))?;
    if !principal.role.may_grant(&role) {
        return Err(ApiError::Forbidden(format!(
            "a {} may not grant the {} role",
            principal.role.name(),
            role.name()
        )));
    }
    if let Some(tenant) = role.tenant()
        && app.read.tenant(tenant).await?.is_none()
    {
        return Err(ApiError::not_found(
            "tenant-not-found",
            format!("tenant {tenant} does not exist"),
        ));
    }
    let now = OffsetDateTime::now_utc();
    let expires_at = body
        .expires_at
        .as_deref()
        .map(|t| OffsetDateTime::parse(t, &Rfc3339))
        .transpose()
        .map_err(|e| {
            ApiError::bad(
                "invalid-field",
                "expires_at",
                format!("expires_at must be RFC 3339: {e}"),
            )
        })?
        .map(|t| t.unix_timestamp());
    let id = random_hex(8);
    let secret = random_hex(32);
    // A retry cannot show the secret again, so issuing is never de-duplicated.
    write.idempotency_id = None;
    let command = TokenCommand::IssueToken {
        id: id.clone(),
        name: body.name,
        role,
        secret_hash: hash_secret(&secret),
        expires_at,
        issued_by: principal.actor(),
        now: now.unix_timestamp(),
    };
    let committed = app.write::<Token>(&write, &id, command, &()).await?;
    let token = format!("{API_KEY_PREFIX}{id}_{secret}");
    Ok((
        StatusCode::CREATED,
        Json(IssuedToken {
            id,
            token,
            position: committed.position,
        }),
    )
        .into_response())
}

/// List tokens: every token for an admin, the tenant's for a tenant admin.
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens",
    responses((status = 200, body = TokenList), (status = 403, body = Problem)))]
pub async fn list_tokens(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    params: Params,
) -> Result<Json<TokenList>, ApiError> {
    params.allow(&[])?;
    let tenant = principal.role.tenant().cloned();
    principal.allow(principal.role.manage_tokens(tenant.as_ref()))?;
    let tokens = app.read.tokens(tenant.as_ref()).await?;
    Ok(Json(TokenList { tokens }))
}

/// Revoke a token: it stops working at once. The answer comes only once the
/// revocation is in effect (503 `not-in-effect` otherwise); revoking a revoked
/// token again answers 200 with the same revision.
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "token id"), IdempotentWrite),
    responses((status = 200, body = WriteResult), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 503, description = "stored but not in effect yet; repeat to confirm", body = Problem)))]
pub async fn revoke_token(
    State(app): State<AppState>,
    Path(id): Path<String>,
    params: Params,
    write: WriteContext,
) -> Result<Response, ApiError> {
    params.allow(&[])?;
    let not_found = || ApiError::not_found("token-not-found", "the token does not exist");
    let principal = write.principal.clone();
    if !principal.role.manages_tokens() {
        return Err(ApiError::Forbidden(format!(
            "the {} role may not revoke tokens",
            principal.role.name()
        )));
    }
    let id = TokenId::parse(id).map_err(|_| not_found())?;
    let token = app.read.token(id.as_str()).await?.ok_or_else(not_found)?;
    principal.check(principal.role.revoke_token(token.role.tenant()), not_found)?;
    let committed = app
        .write_in_effect::<Token>(&write, id.as_str(), TokenCommand::RevokeToken, &())
        .await?;
    Ok(WriteResult::respond(committed))
}
