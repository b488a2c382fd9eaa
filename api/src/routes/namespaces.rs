//! `/v1/namespaces`: namespaces and their JSON Schemas.

use axum::extract::State;
use axum::response::Response;
use axum::{Extension, Json};
use ecs_domain::ApprovalPolicy;
use ecs_domain::{
    Namespace, NamespaceCommand, NamespaceKind, NamespaceName, Reading, mask_schema_for,
};
use ecs_projections::queries::NamespaceRow;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::extract::ConditionalWrite;
use crate::extract::{AppJson, Params, PathId, WriteContext};
use crate::problem::ApiError;
use crate::routes::{Problem, WriteResult};
use crate::state::AppState;

/// The longest namespace description accepted, in characters.
const MAX_DESCRIPTION: usize = 1000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NamespacePut {
    #[serde(default)]
    pub description: String,
    /// `config` (the default) or `flags`: a flags namespace's documents are
    /// `{"flags": {...}}` in flagd's format, validated at every write
    /// (docs/flags.md).
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "flags")]
    pub kind: NamespaceKind,
    /// A JSON Schema (2020-12 unless `$schema` says otherwise); `null` or
    /// absent: no schema.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub schema: Option<Value>,
    /// Require approval for writes: `{"scopes": [{"env": "prod"}]}` covers
    /// every layer that applies to some context inside those scopes (within
    /// them, overriding them, showing through them); `{"scopes": []}` every
    /// layer.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub approval: Option<ApprovalPolicy>,
}

/// A namespace as read.
#[derive(Debug, Serialize, ToSchema)]
pub struct NamespaceBody {
    pub name: String,
    /// `config` or `flags`.
    #[schema(value_type = String)]
    pub kind: NamespaceKind,
    pub description: String,
    #[schema(value_type = Option<Object>)]
    pub schema: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub approval: Option<ApprovalPolicy>,
    pub revision: u64,
    pub position: u64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: time::OffsetDateTime,
}

impl From<NamespaceRow> for NamespaceBody {
    fn from(row: NamespaceRow) -> Self {
        NamespaceBody {
            name: row.state.name.to_string(),
            kind: row.state.kind,
            description: row.state.description,
            schema: row.state.schema,
            approval: row.state.approval,
            revision: row.state.revision,
            position: row.position,
            updated_at: row.updated_at,
        }
    }
}

/// A namespace as the caller may read it: the data its schema holds
/// (`default`s, examples) masked where the schema marks it sensitive.
fn readable(principal: &Principal, row: NamespaceRow) -> NamespaceBody {
    let mut body = NamespaceBody::from(row);
    if let Some(schema) = body.schema.as_mut() {
        mask_schema_for(&principal.role, Reading::Record, schema);
    }
    body
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NamespaceList {
    pub namespaces: Vec<NamespaceBody>,
}

/// Create or update a namespace and its JSON Schema.
#[utoipa::path(put, path = "/v1/namespaces/{ns}", tag = "namespaces",
    params(("ns" = String, Path, description = "namespace name"), ConditionalWrite),
    request_body = NamespacePut,
    responses(
        (status = 201, description = "created", body = WriteResult),
        (status = 200, description = "updated (or unchanged)", body = WriteResult),
        (status = 400, description = "malformed", body = Problem),
        (status = 412, description = "stale If-Match", body = Problem),
        (status = 422, description = "invalid schema, or an existing layer fails it (or, for `kind: flags`, is not a valid flags document)", body = Problem),
        (status = 503, description = "an approval policy stored but not in effect yet; repeat to confirm", body = Problem),
    ))]
pub async fn put_namespace(
    State(app): State<AppState>,
    PathId(name): PathId<NamespaceName>,
    params: Params,
    write: WriteContext,
    AppJson(body): AppJson<NamespacePut>,
) -> Result<Response, ApiError> {
    params.allow(&[])?;
    write.principal.allow(write.principal.role.administer())?;
    if body.description.chars().count() > MAX_DESCRIPTION {
        return Err(ApiError::bad(
            "invalid-field",
            "description",
            "must be at most 1000 characters",
        ));
    }
    let requires_approval = body.approval.is_some();
    let command = NamespaceCommand::DefineNamespace {
        name: name.clone(),
        kind: body.kind,
        description: body.description,
        schema: body.schema.filter(|s| !s.is_null()),
        approval: body.approval,
        expected_revision: write.expected_revision,
    };
    // An approval policy takes direct writes away: until it is in effect,
    // writes it covers would still change layers at once.
    let committed = if requires_approval {
        app.write_in_effect::<Namespace>(&write, name.as_str(), command, &app.services)
            .await?
    } else {
        app.write::<Namespace>(&write, name.as_str(), command, &app.services)
            .await?
    };
    Ok(WriteResult::respond(committed))
}

/// List namespaces.
#[utoipa::path(get, path = "/v1/namespaces", tag = "namespaces",
    responses((status = 200, body = NamespaceList)))]
pub async fn list_namespaces(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    params: Params,
) -> Result<Json<NamespaceList>, ApiError> {
    params.allow(&[])?;
    let namespaces = app
        .read
        .namespaces()
        .await?
        .into_iter()
        .filter(|n| principal.role.sees_namespace(&n.state.name))
        .map(|row| readable(&principal, row))
        .collect();
    Ok(Json(NamespaceList { namespaces }))
}

/// Read a namespace.
#[utoipa::path(get, path = "/v1/namespaces/{ns}", tag = "namespaces",
    params(("ns" = String, Path, description = "namespace name")),
    responses((status = 200, body = NamespaceBody), (status = 404, body = Problem)))]
pub async fn get_namespace(
    State(app): State<AppState>,
    PathId(name): PathId<NamespaceName>,
    Extension(principal): Extension<Principal>,
    params: Params,
) -> Result<Json<NamespaceBody>, ApiError> {
    params.allow(&[])?;
    let not_found = || {
        ApiError::not_found(
            "namespace-not-found",
            format!("namespace {name} does not exist"),
        )
    };
    principal.check(principal.role.read_namespace(&name), not_found)?;
    let row = app.read.namespace(&name).await?.ok_or_else(not_found)?;
    Ok(Json(readable(&principal, row)))
}
