//! Authentication at the edge: every request's bearer credential becomes a
//! typed [`Principal`] carrying its [`Role`], once; handlers then ask the role
//! for a [`Decision`] on each action.
//!
//! Credentials: the bootstrap admin token (`ECS_ADMIN_TOKEN`), API keys that
//! ECS issues (`ecs_<id>_<secret>`, only the secret's SHA-256 is stored), and
//! JWTs from configured issuers (HS256 with a shared secret for development,
//! RS256/ES256 with a JWKS in production) whose `ecs_role` claim holds the role.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ecs_domain::{Actor, Decision, Identity, Role, TokenId};
use ecs_projections::queries::TokenRow;
use ecs_projections::{ProjectionHandle, ReadModel};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::problem::ApiError;

/// How the caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Bootstrap,
    ApiKey,
    Jwt,
}

/// The authenticated caller, established once per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Recorded as the actor of every change: `admin`, `token:<id>` or `jwt:<sub>`.
    pub name: String,
    pub role: Role,
    pub via: Via,
    /// Who holds the credential: the root of its issuing chain. The approval
    /// rules compare identities, never credential names.
    pub identity: Identity,
}

impl Principal {
    /// The principal as the sender of a command.
    pub fn actor(&self) -> Actor {
        Actor {
            name: self.name.clone(),
            role: self.role.clone(),
            identity: self.identity.clone(),
        }
    }

    /// Requires an action the caller knows exists: anything but `Allow` is 403.
    pub fn allow(&self, decision: Decision) -> Result<(), ApiError> {
        self.check(decision, || ApiError::Forbidden(String::new()))
            .map_err(|e| match e {
                ApiError::Denied(_) => {
                    ApiError::Forbidden(format!("the {} role may not do this", self.role.name()))
                }
                other => other,
            })
    }

    /// Turns a decision into a result: 403 when forbidden, `hidden` (a 404)
    /// when the caller may not know the resource exists.
    pub fn check(
        &self,
        decision: Decision,
        hidden: impl FnOnce() -> ApiError,
    ) -> Result<(), ApiError> {
        match decision {
            Decision::Allow => Ok(()),
            Decision::Forbidden => Err(ApiError::Forbidden(format!(
                "the {} role may not do this here",
                self.role.name()
            ))),
            Decision::Hidden => Err(ApiError::Denied(Box::new(hidden()))),
        }
    }
}

/// Why a credential was refused (recorded in the audit log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("no bearer credential")]
    Missing,
    #[error("malformed credential")]
    Malformed,
    #[error("unknown credential")]
    Unknown,
    #[error("revoked credential")]
    Revoked,
    #[error("expired credential")]
    Expired,
    #[error("invalid JWT: {0}")]
    InvalidJwt(String),
    #[error("credential store unavailable")]
    Unavailable,
}

impl AuthFailure {
    /// A stable name of the reason, for tallies and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing",
            AuthFailure::Malformed => "malformed",
            AuthFailure::Unknown => "unknown",
            AuthFailure::Revoked => "revoked",
            AuthFailure::Expired => "expired",
            AuthFailure::InvalidJwt(_) => "invalid-jwt",
            AuthFailure::Unavailable => "unavailable",
        }
    }
}

/// JWT validation settings.
#[derive(Debug, Clone, Default)]
pub struct JwtSettings {
    pub hs256_secret: Option<crate::secret::Secret>,
    pub jwks: Option<JwkSet>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    ecs_role: serde_json::Value,
}

/// The prefix of API keys that ECS issues.
pub const API_KEY_PREFIX: &str = "ecs_";

/// Hex SHA-256 of a secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The credentials the server accepts.
pub struct Authenticator {
    admin_token_hash: [u8; 32],
    read: ReadModel,
    projections: ProjectionHandle,
    jwt: JwtSettings,
    tokens: Mutex<TokenCache>,
}

/// Issued tokens as last read from PostgreSQL, so an API key costs no query
/// per request. Emptied whenever the projection applies anything (an issue or
/// a revocation takes effect as soon as it is projected, as without the
/// cache); an entry is also re-read after [`TOKEN_CACHE_TTL`].
#[derive(Default)]
struct TokenCache {
    position: u64,
    entries: HashMap<String, (Option<TokenRow>, Instant)>,
}

/// The most an entry of the token cache is trusted without re-reading it.
const TOKEN_CACHE_TTL: Duration = Duration::from_secs(1);
/// The most tokens remembered; beyond it the cache starts over.
const TOKEN_CACHE_MAX: usize = 10_000;

impl Authenticator {
    pub fn new(
        admin_token: &str,
        read: ReadModel,
        projections: ProjectionHandle,
        jwt: JwtSettings,
    ) -> Self {
        Authenticator {
            admin_token_hash: Sha256::digest(admin_token.as_bytes()).into(),
            read,
            projections,
            jwt,
            tokens: Mutex::default(),
        }
    }

    /// The issued token `id`, from the cache when it is fresh.
    async fn token(&self, id: &str) -> sqlx::Result<Option<TokenRow>> {
        let position = self.projections.status().applied;
        {
            let mut cache = self.lock_tokens();
            if cache.position != position {
                *cache = TokenCache {
                    position,
                    ..TokenCache::default()
                };
            }
            if let Some((token, read_at)) = cache.entries.get(id)
                && read_at.elapsed() < TOKEN_CACHE_TTL
            {
                return Ok(token.clone());
            }
        }
        let token = self.read.token(id).await?;
        let mut cache = self.lock_tokens();
        if cache.position == position {
            if cache.entries.len() >= TOKEN_CACHE_MAX {
                cache.entries.clear();
            }
            cache
                .entries
                .insert(id.to_owned(), (token.clone(), Instant::now()));
        }
        Ok(token)
    }

    fn lock_tokens(&self) -> std::sync::MutexGuard<'_, TokenCache> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub async fn authenticate(&self, credential: &str) -> Result<Principal, AuthFailure> {
        if let Some(key) = credential.strip_prefix(API_KEY_PREFIX) {
            return self.api_key(key).await;
        }
        if credential.matches('.').count() == 2 {
            return self.jwt(credential);
        }
        let digest: [u8; 32] = Sha256::digest(credential.as_bytes()).into();
        if bool::from(digest.ct_eq(&self.admin_token_hash)) {
            return Ok(Principal {
                name: "admin".to_owned(),
                role: Role::Admin,
                via: Via::Bootstrap,
                identity: Identity::new("admin"),
            });
        }
        Err(AuthFailure::Unknown)
    }

    async fn api_key(&self, key: &str) -> Result<Principal, AuthFailure> {
        let (id, secret) = key.split_once('_').ok_or(AuthFailure::Malformed)?;
        let id = TokenId::parse(id).map_err(|_| AuthFailure::Malformed)?;
        let token = self
            .token(id.as_str())
            .await
            .map_err(|_| AuthFailure::Unavailable)?
            .ok_or(AuthFailure::Unknown)?;
        let presented = hash_secret(secret);
        if !bool::from(presented.as_bytes().ct_eq(token.secret_hash.as_bytes())) {
            return Err(AuthFailure::Unknown);
        }
        if token.revoked_at.is_some() {
            return Err(AuthFailure::Revoked);
        }
        if token
            .expires_at
            .is_some_and(|e| e <= time::OffsetDateTime::now_utc().unix_timestamp())
        {
            return Err(AuthFailure::Expired);
        }
        Ok(Principal {
            name: format!("token:{id}"),
            role: token.role,
            via: Via::ApiKey,
            identity: token.identity,
        })
    }

    fn jwt(&self, credential: &str) -> Result<Principal, AuthFailure> {
        let header = jsonwebtoken::decode_header(credential).map_err(|_| AuthFailure::Malformed)?;
        let key = match header.alg {
            Algorithm::HS256 => {
                let secret =
                    self.jwt.hs256_secret.as_ref().ok_or_else(|| {
                        AuthFailure::InvalidJwt("HS256 is not accepted here".into())
                    })?;
                DecodingKey::from_secret(secret.as_bytes())
            }
            Algorithm::RS256 | Algorithm::ES256 => {
                let jwks = self
                    .jwt
                    .jwks
                    .as_ref()
                    .ok_or_else(|| AuthFailure::InvalidJwt("no JWKS is configured".into()))?;
                let jwk = match &header.kid {
                    Some(kid) => jwks.find(kid),
                    None if jwks.keys.len() == 1 => jwks.keys.first(),
                    None => None,
                }
                .ok_or_else(|| {
                    AuthFailure::InvalidJwt("no key in the JWKS matches the token's kid".into())
                })?;
                DecodingKey::from_jwk(jwk).map_err(|e| AuthFailure::InvalidJwt(e.to_string()))?
            }
            other => {
                return Err(AuthFailure::InvalidJwt(format!(
                    "algorithm {other:?} is not accepted"
                )));
            }
        };
        let mut validation = Validation::new(header.alg);
        let mut required = vec!["exp", "sub"];
        if self.jwt.issuer.is_some() {
            required.push("iss");
        }
        if self.jwt.audience.is_some() {
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        validation.validate_nbf = true;
        validation.leeway = 30;
        if let Some(issuer) = &self.jwt.issuer {
            validation.set_issuer(&[issuer]);
        }
        match &self.jwt.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        let data = jsonwebtoken::decode::<Claims>(credential, &key, &validation).map_err(|e| {
            match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthFailure::Expired,
                _ => AuthFailure::InvalidJwt(e.to_string()),
            }
        })?;
        let role = Role::from_claim(&data.claims.ecs_role).map_err(AuthFailure::InvalidJwt)?;
        let name = format!("jwt:{}", data.claims.sub);
        Ok(Principal {
            identity: Identity::new(name.clone()),
            name,
            role,
            via: Via::Jwt,
        })
    }
}

/// Shared handle type.
pub type SharedAuthenticator = Arc<Authenticator>;
