//! `GET /v1/whoami`: the signed-in principal, its role bound to its scope and
//! what it may do, so a client (Config Studio) shows the role and offers only
//! the actions the server would accept. The rights come from the same
//! [`Role`] rules every handler asks; a client never re-derives them.

use axum::{Extension, Json};
use ecs_domain::{Decision, Role};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::{Principal, Via};
use crate::extract::Params;
use crate::problem::ApiError;

/// What the principal may do anywhere within its scope. Each right is a
/// hint for what to offer; the server still decides every request.
#[derive(Debug, Serialize, ToSchema)]
pub struct Rights {
    /// Define namespaces and tenants, rebuild projections.
    pub administer: bool,
    /// Set, patch, clear and roll back layers within its scope.
    pub write_layers: bool,
    /// Read and export the audit log.
    pub read_audit: bool,
    /// Issue and revoke tokens (a tenant admin: its tenant's).
    pub manage_tokens: bool,
    /// Read values the schema marks sensitive unmasked.
    pub read_sensitive: bool,
}

impl From<&Role> for Rights {
    fn from(role: &Role) -> Self {
        Rights {
            administer: role.administer() == Decision::Allow,
            write_layers: role.writes_layers(),
            read_audit: role.read_audit() == Decision::Allow,
            manage_tokens: role.manages_tokens(),
            read_sensitive: role.reads_sensitive(),
        }
    }
}

/// The authenticated caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmI {
    /// The name recorded as the actor of its changes: `admin`,
    /// `token:<id>` or `jwt:<sub>`.
    pub principal: String,
    /// How it proved who it is: `bootstrap`, `api-key` or `jwt`.
    pub via: &'static str,
    /// The role and the scope it is bound to, as tokens grant it:
    /// `{"role": "tenant-admin", "tenant": "acme"}`.
    #[schema(value_type = Object)]
    pub role: Role,
    pub may: Rights,
}

fn via_name(via: Via) -> &'static str {
    match via {
        Via::Bootstrap => "bootstrap",
        Via::ApiKey => "api-key",
        Via::Jwt => "jwt",
    }
}

/// Who the bearer credential belongs to, its role and scope, and what it may do.
#[utoipa::path(get, path = "/v1/whoami", tag = "system",
    responses((status = 200, body = WhoAmI), (status = 401, body = crate::routes::Problem)))]
pub async fn whoami(
    Extension(principal): Extension<Principal>,
    params: Params,
) -> Result<Json<WhoAmI>, ApiError> {
    params.allow(&[])?;
    Ok(Json(WhoAmI {
        principal: principal.name.clone(),
        via: via_name(principal.via),
        may: Rights::from(&principal.role),
        role: principal.role,
    }))
}
