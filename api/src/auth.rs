//! Authentication at the edge: the caller becomes a typed [`Principal`].

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::problem::ApiError;

/// A role a principal holds. Only `Admin` exists so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
}

/// The authenticated caller, established once per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Recorded as the actor of every change.
    pub name: String,
    pub role: Role,
}

/// The credentials the server accepts.
pub struct Authenticator {
    admin_token_hash: [u8; 32],
}

impl Authenticator {
    pub fn new(admin_token: &str) -> Self {
        Authenticator {
            admin_token_hash: Sha256::digest(admin_token.as_bytes()).into(),
        }
    }

    /// Compares digests in constant time, so timing reveals nothing.
    pub fn authenticate(&self, token: &str) -> Option<Principal> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        bool::from(digest.ct_eq(&self.admin_token_hash)).then(|| Principal {
            name: "admin".to_owned(),
            role: Role::Admin,
        })
    }
}

/// Middleware: requires `Authorization: Bearer <token>` and stores the
/// principal in the request's extensions.
pub async fn require_bearer(
    State(auth): State<Arc<Authenticator>>,
    mut request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    match token.and_then(|t| auth.authenticate(t)) {
        Some(principal) => {
            tracing::Span::current().record("actor", principal.name.as_str());
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        None => {
            metrics::counter!("ecs_auth_failures_total").increment(1);
            ApiError::Unauthorized.into_response()
        }
    }
}
