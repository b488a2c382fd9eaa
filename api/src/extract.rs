//! Extractors that answer bad input in the problem format, naming the field.

use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::{HeaderMap, StatusCode, header, request::Parts};
use ecs_domain::{EditionName, EnvName, IdError, Scope, ServiceName, TenantId};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::auth::Principal;
use crate::body_limit::BodyLimit;
use crate::problem::ApiError;

/// A JSON body. Malformed JSON, a wrong type or an unknown field answers 400
/// naming the field; a body over the limit 413; another media type 415.
pub struct AppJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| {
                let v = v.trim().to_ascii_lowercase();
                v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let limit = req.extensions().get::<BodyLimit>().copied();
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge(limit.map_or_else(|| rejection.body_text(), BodyLimit::exceeded))
            } else {
                ApiError::bad("unreadable-body", "body", rejection.body_text())
            }
        })?;
        // Every body is a JSON object; serde would also take a struct's
        // positional (array) form.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(match serde_json::from_slice::<serde_json::Value>(&bytes) {
                Ok(_) => ApiError::bad("invalid-field", "body", "the body must be a JSON object"),
                Err(e) => ApiError::bad("malformed-json", "body", e.to_string()),
            });
        }
        // PostgreSQL cannot store U+0000 in text or JSON: refuse it here so
        // nothing accepted can fail to project.
        if contains_nul_escape(&bytes) {
            return Err(ApiError::bad(
                "invalid-field",
                "body",
                "strings may not contain the NUL character (\\u0000)",
            ));
        }
        let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
            let path = error.path().to_string();
            let inner = error.into_inner();
            let code = if inner.is_data() {
                "invalid-field"
            } else {
                "malformed-json"
            };
            let field = if path == "." || path == "?" || inner.is_syntax() || inner.is_eof() {
                "body".to_owned()
            } else {
                path.chars().take(200).collect()
            };
            ApiError::bad(code, field, inner.to_string())
        })?;
        deserializer
            .end()
            .map_err(|e| ApiError::bad("malformed-json", "body", e.to_string()))?;
        Ok(AppJson(value))
    }
}

/// Whether a JSON text holds a `\u0000` escape (the only way JSON can carry
/// NUL). A backslash escaping a backslash does not start an escape.
fn contains_nul_escape(bytes: &[u8]) -> bool {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if bytes.get(i + 1) == Some(&b'u') && bytes.get(i + 2..i + 6) == Some(b"0000") {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

/// A validated identifier from the path.
pub struct PathId<T>(pub T);

impl<S: Send + Sync, T: FromStr<Err = IdError>> FromRequestParts<S> for PathId<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|r| ApiError::bad("invalid-path", "path", r.body_text()))?;
        Ok(PathId(raw.parse()?))
    }
}

/// A point in the past to read at.
#[derive(Debug, Clone, Copy)]
pub enum PointInTime {
    Position(u64),
    At(OffsetDateTime),
}

/// The query parameters, checked against the ones an endpoint knows.
pub struct Params(Vec<(String, String)>);

pub const SCOPE_PARAMS: [&str; 4] = ["env", "service", "tenant", "edition"];

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map_err(|r| ApiError::bad("invalid-query", "query", r.body_text()))?;
        if let Some((key, _)) = pairs
            .iter()
            .find(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(ApiError::bad(
                "invalid-parameter",
                key.replace('\0', ""),
                "query parameters may not contain the NUL character",
            ));
        }
        Ok(Params(pairs))
    }
}

impl Params {
    /// Refuses unknown and repeated parameters.
    pub fn allow(&self, known: &[&str]) -> Result<(), ApiError> {
        for (i, (key, _)) in self.0.iter().enumerate() {
            if !known.contains(&key.as_str()) {
                return Err(ApiError::bad(
                    "unknown-parameter",
                    key.clone(),
                    format!(
                        "unknown query parameter {key:?}; known: {}",
                        known.join(", ")
                    ),
                ));
            }
            if self.0[..i].iter().any(|(k, _)| k == key) {
                return Err(ApiError::bad(
                    "repeated-parameter",
                    key.clone(),
                    format!("{key} is given twice"),
                ));
            }
        }
        Ok(())
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn id<T: FromStr<Err = IdError>>(&self, key: &str) -> Result<Option<T>, ApiError> {
        Ok(self.get(key).map(str::parse).transpose()?)
    }

    /// The scope (or context) named by `env`, `service`, `tenant`, `edition`.
    pub fn scope(&self) -> Result<Scope, ApiError> {
        Ok(Scope {
            env: self.id::<EnvName>("env")?,
            service: self.id::<ServiceName>("service")?,
            tenant: self.id::<TenantId>("tenant")?,
            edition: self.id::<EditionName>("edition")?,
        })
    }

    pub fn flag(&self, key: &str) -> Result<bool, ApiError> {
        match self.get(key) {
            None | Some("false") => Ok(false),
            Some("true") | Some("") => Ok(true),
            Some(other) => Err(ApiError::bad(
                "invalid-parameter",
                key,
                format!("{key} must be true or false, not {other:?}"),
            )),
        }
    }

    /// `at=<RFC 3339>` or `position=<n>`, at most one of them.
    pub fn point_in_time(&self) -> Result<Option<PointInTime>, ApiError> {
        match (self.get("at"), self.get("position")) {
            (Some(_), Some(_)) => Err(ApiError::bad(
                "invalid-parameter",
                "at",
                "give either at or position, not both",
            )),
            (Some(at), None) => OffsetDateTime::parse(at, &Rfc3339)
                .map(|t| Some(PointInTime::At(t)))
                .map_err(|e| {
                    ApiError::bad(
                        "invalid-parameter",
                        "at",
                        format!("at must be an RFC 3339 time: {e}"),
                    )
                }),
            (None, Some(p)) => p
                .parse::<u64>()
                .map(|p| Some(PointInTime::Position(p)))
                .map_err(|_| {
                    ApiError::bad(
                        "invalid-parameter",
                        "position",
                        "position must be a non-negative integer",
                    )
                }),
            (None, None) => Ok(None),
        }
    }
}

/// The header every write takes: `Idempotency-Key`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotentWrite {
    /// Makes a retried request apply once: the same key on the same method and
    /// target answers the first attempt's outcome (at most 255 characters).
    #[param(rename = "Idempotency-Key")]
    _idempotency_key: Option<String>,
}

/// The headers of a write that can be conditional: `If-Match` and
/// `Idempotency-Key`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct ConditionalWrite {
    /// The revision the write expects the item to be at, in quotes (`"3"`); a
    /// write over another revision is refused with 412 and changes nothing.
    #[param(rename = "If-Match")]
    _if_match: Option<String>,
    /// Makes a retried request apply once: the same key on the same method and
    /// target answers the first attempt's outcome (at most 255 characters).
    #[param(rename = "Idempotency-Key")]
    _idempotency_key: Option<String>,
}

/// What every write carries besides its body: who sends it, its
/// `If-Match` revision and its de-duplication id.
#[derive(Clone)]
pub struct WriteContext {
    pub principal: Principal,
    pub expected_revision: Option<u64>,
    /// Derived from `Idempotency-Key` with the method and target, so the same
    /// key on another request is another command.
    pub idempotency_id: Option<String>,
    /// `x-request-id` (set by the server when the client sent none).
    pub request_id: Option<String>,
    /// `x-correlation-id`, as the client sent it.
    pub correlation_id: Option<String>,
}

/// The longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY: usize = 255;

fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::bad(
            "invalid-header",
            "If-Match",
            "If-Match must be a revision in quotes, such as \"3\"",
        )
    };
    let text = value.to_str().map_err(|_| bad())?.trim();
    let text = text.strip_prefix("W/").unwrap_or(text);
    let inner = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    inner.parse::<u64>().map(Some).map_err(|_| bad())
}

impl<S: Send + Sync> FromRequestParts<S> for WriteContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let principal = parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or(ApiError::Unauthorized)?;
        let expected_revision = if_match(&parts.headers)?;
        let idempotency_id = match parts.headers.get("idempotency-key") {
            None => None,
            Some(value) => {
                let key = value
                    .to_str()
                    .ok()
                    .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY)
                    .ok_or_else(|| {
                        ApiError::bad(
                            "invalid-header",
                            "Idempotency-Key",
                            "Idempotency-Key must be 1 to 255 visible ASCII characters",
                        )
                    })?;
                let mut hash = Sha256::new();
                for part in [
                    parts.method.as_str(),
                    &parts.uri.to_string(),
                    &principal.name,
                    key,
                ] {
                    hash.update(part.as_bytes());
                    hash.update([0]);
                }
                Some(format!("idem-{}", hex::encode(hash.finalize())))
            }
        };
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(200).collect::<String>())
        };
        Ok(WriteContext {
            principal,
            expected_revision,
            idempotency_id,
            request_id: header("x-request-id"),
            correlation_id: header("x-correlation-id"),
        })
    }
}
