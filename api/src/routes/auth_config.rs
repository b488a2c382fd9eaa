//! `GET /v1/auth/config`: how a person signs in, for Config Studio's sign-in
//! screen before anyone is signed in, so it needs no credential. It names the
//! OIDC issuer (`ECS_JWT_ISSUER`), Studio's client id there
//! (`ECS_OIDC_CLIENT_ID`) and the scopes to ask for, or `null` when OIDC
//! sign-in is not configured. Nothing in it is secret: an OIDC public client
//! (authorization code with PKCE) has no secret.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::extract::Params;
use crate::problem::ApiError;
use crate::state::AppState;

/// An OIDC issuer Studio signs in with (authorization code + PKCE).
#[derive(Debug, Serialize, ToSchema)]
pub struct OidcConfig {
    /// The issuer's URL; its discovery document is at
    /// `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// Studio's client id at the issuer.
    pub client_id: String,
    /// The scopes to ask for, separated by spaces.
    pub scopes: String,
}

/// How to sign in besides a token.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthConfig {
    /// The OIDC issuer, or null when only tokens sign in.
    pub oidc: Option<OidcConfig>,
}

/// How a person signs in (no credential needed).
#[utoipa::path(get, path = "/v1/auth/config", tag = "system", security(()),
    responses((status = 200, body = AuthConfig), (status = 400, body = crate::routes::Problem)))]
pub async fn auth_config(
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<AuthConfig>, ApiError> {
    params.allow(&[])?;
    let settings = &state.settings;
    let oidc = match (&settings.oidc_client_id, &settings.jwt_issuer) {
        (Some(client_id), Some(issuer)) => Some(OidcConfig {
            issuer: issuer.clone(),
            client_id: client_id.clone(),
            scopes: settings.oidc_scopes.clone(),
        }),
        _ => None,
    };
    Ok(Json(AuthConfig { oidc }))
}
