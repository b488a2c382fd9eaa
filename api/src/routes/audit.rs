//! `/v1/audit`: the audit log — every accepted change and every refused
//! attempt — for admins and auditors, as pages or as a JSON Lines export.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ecs_domain::audit::{AuditRecord, Outcome};
use ecs_domain::{NamespaceName, Reading, TenantId};
use ecs_projections::ReadModel;
use ecs_projections::audit::{AuditCursor, AuditFilter};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::extract::Params;
use crate::masking::Masker;
use crate::problem::ApiError;
use crate::routes::Problem;
use crate::state::AppState;

/// The page size when `limit` is absent.
const DEFAULT_LIMIT: u32 = 100;
/// The largest page.
const MAX_LIMIT: u32 = 1000;
/// The page size the export reads the table with.
const EXPORT_CHUNK: u32 = 500;
/// The longest `actor` or `action` filter accepted.
const MAX_TEXT: usize = 300;

const FILTERS: [&str; 7] = [
    "tenant",
    "namespace",
    "actor",
    "action",
    "outcome",
    "since",
    "until",
];

/// Filters of the audit log (documentation only).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only entries about this tenant.
    pub tenant: Option<String>,
    /// Only entries about this namespace.
    pub namespace: Option<String>,
    /// Only entries of this actor (`admin`, `token:<id>`, `jwt:<sub>`).
    pub actor: Option<String>,
    /// Only this action, such as `layer.replaced` or `http:PUT /v1/namespaces/{ns}/layer`.
    pub action: Option<String>,
    /// `accepted` or `refused`.
    pub outcome: Option<String>,
    /// RFC 3339; entries at or after this time.
    pub since: Option<String>,
    /// RFC 3339; entries before this time.
    pub until: Option<String>,
}

/// Paging of the audit log (documentation only).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// 1 to 1000; 100 when absent.
    pub limit: Option<u32>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// One audit record.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    /// Unique: `accepted:<position>`, `refused:<record id>` or
    /// `rollout:<plan id>-<revision>`.
    pub id: String,
    /// RFC 3339.
    pub at: String,
    /// `accepted` or `refused`.
    pub outcome: String,
    /// `layer.replaced`, `layer.patched`, `layer.cleared`, `layer.rolled-back`,
    /// `namespace.defined`, `tenant.defined`, `token.issued`, `token.revoked`,
    /// `change-request.<opened|applying|approved|rejected|withdrawn|failed>`,
    /// `rollout.<created|paused|resumed|cancelled|completed>`; for a
    /// refusal the request, such as `http:PUT /v1/namespaces/{ns}/layer`.
    pub action: String,
    pub actor: Option<String>,
    pub role: Option<String>,
    pub request_id: Option<String>,
    pub correlation_id: Option<String>,
    pub tenant: Option<String>,
    pub namespace: Option<String>,
    /// The layer's scope.
    #[schema(value_type = Option<Object>)]
    pub scope: Option<serde_json::Value>,
    /// For a refusal: `authentication`, `authorization` or `validation`, a
    /// colon, and why.
    pub reason: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
    pub message: Option<String>,
    /// The change's position in the events stream.
    pub position: Option<u64>,
}

/// A page of the audit log, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditList {
    #[schema(value_type = Vec<AuditEntry>)]
    pub entries: Vec<AuditRecord>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    pub next_cursor: Option<String>,
}

fn invalid(field: &str, detail: impl Into<String>) -> ApiError {
    ApiError::bad("invalid-parameter", field, detail)
}

fn time_param(params: &Params, field: &str) -> Result<Option<OffsetDateTime>, ApiError> {
    params
        .get(field)
        .map(|v| {
            OffsetDateTime::parse(v, &Rfc3339)
                .map_err(|e| invalid(field, format!("{field} must be an RFC 3339 time: {e}")))
        })
        .transpose()
}

fn text_param(params: &Params, field: &str) -> Result<Option<String>, ApiError> {
    match params.get(field) {
        None => Ok(None),
        Some(v) if v.is_empty() || v.chars().count() > MAX_TEXT => Err(invalid(
            field,
            format!("{field} must be 1 to {MAX_TEXT} characters"),
        )),
        Some(v) => Ok(Some(v.to_owned())),
    }
}

/// The filters a request names, each checked (400 naming the field).
fn filter_of(params: &Params) -> Result<AuditFilter, ApiError> {
    let outcome = match params.get("outcome") {
        None => None,
        Some("accepted") => Some(Outcome::Accepted),
        Some("refused") => Some(Outcome::Refused),
        Some(other) => {
            return Err(invalid(
                "outcome",
                format!("outcome must be accepted or refused, not {other:?}"),
            ));
        }
    };
    Ok(AuditFilter {
        tenant: params
            .get("tenant")
            .map(TenantId::parse)
            .transpose()?
            .map(|t| t.to_string()),
        namespace: params
            .get("namespace")
            .map(NamespaceName::parse)
            .transpose()?
            .map(|n| n.to_string()),
        actor: text_param(params, "actor")?,
        action: text_param(params, "action")?,
        outcome,
        since: time_param(params, "since")?,
        until: time_param(params, "until")?,
    })
}

/// Cursors are opaque to clients: hex of `<unix nanoseconds>:<key>`.
fn encode_cursor(cursor: &AuditCursor) -> String {
    hex::encode(format!(
        "{}:{}",
        cursor.at.unix_timestamp_nanos(),
        cursor.key
    ))
}

fn decode_cursor(text: &str) -> Result<AuditCursor, ApiError> {
    let bad = || invalid("cursor", "cursor must be a next_cursor of an earlier page");
    let bytes = hex::decode(text).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (nanos, key) = text.split_once(':').ok_or_else(bad)?;
    let nanos: i128 = nanos.parse().map_err(|_| bad())?;
    let at = OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| bad())?;
    if key.is_empty() {
        return Err(bad());
    }
    Ok(AuditCursor {
        at,
        key: key.to_owned(),
    })
}

/// Read the audit log, newest first, a page at a time.
#[utoipa::path(get, path = "/v1/audit", tag = "audit",
    params(AuditParams, PageParams),
    responses(
        (status = 200, description = "a page of entries, newest first", body = AuditList),
        (status = 400, description = "a malformed parameter (the problem names it)", body = Problem),
        (status = 403, description = "only admins and auditors read the audit log", body = Problem),
    ))]
pub async fn list_audit(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    params: Params,
) -> Result<Json<AuditList>, ApiError> {
    let mut known = FILTERS.to_vec();
    known.extend(["limit", "cursor"]);
    params.allow(&known)?;
    principal.allow(principal.role.read_audit())?;
    let filter = filter_of(&params)?;
    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| invalid("limit", format!("limit must be 1 to {MAX_LIMIT}")))?,
    };
    let cursor = params.get("cursor").map(decode_cursor).transpose()?;
    let mut page = app.read.audit_page(&filter, cursor.as_ref(), limit).await?;
    let mut masker = Masker::new(&app.read, &principal.role, Reading::Record);
    mask_entries(&mut masker, &mut page.entries).await?;
    Ok(Json(AuditList {
        entries: page.entries,
        next_cursor: page.next.as_ref().map(encode_cursor),
    }))
}

/// Masks the sensitive values of each entry for roles that may not read them.
async fn mask_entries(masker: &mut Masker, entries: &mut [AuditRecord]) -> sqlx::Result<()> {
    for entry in entries {
        masker.audit(entry).await?;
    }
    Ok(())
}

/// Where an export stands: the next chunk starts after `cursor`.
struct Export {
    masker: Masker,
    read: ReadModel,
    filter: AuditFilter,
    cursor: Option<AuditCursor>,
    done: bool,
}

impl Export {
    /// The next chunk of lines, or `None` at the end.
    async fn next(mut self) -> Option<(Result<Bytes, std::io::Error>, Export)> {
        if self.done {
            return None;
        }
        let page = match self
            .read
            .audit_page(&self.filter, self.cursor.as_ref(), EXPORT_CHUNK)
            .await
        {
            Ok(mut page) => {
                if let Err(error) = mask_entries(&mut self.masker, &mut page.entries).await {
                    tracing::error!(%error, "audit export ends: cannot read a schema");
                    self.done = true;
                    return Some((Err(std::io::Error::other(error)), self));
                }
                page
            }
            Err(error) => {
                tracing::error!(%error, "audit export ends: cannot read the audit log");
                self.done = true;
                return Some((Err(std::io::Error::other(error)), self));
            }
        };
        let mut lines = Vec::new();
        for entry in &page.entries {
            if serde_json::to_writer(&mut lines, entry).is_ok() {
                lines.push(b'\n');
            }
        }
        self.done = page.next.is_none();
        self.cursor = page.next;
        Some((Ok(Bytes::from(lines)), self))
    }
}

/// Export every matching entry as JSON Lines (`application/x-ndjson`), newest
/// first, streamed.
#[utoipa::path(get, path = "/v1/audit/export", tag = "audit",
    params(AuditParams),
    responses(
        (status = 200, description = "one audit entry (as in /v1/audit) per line, newest first",
            content_type = "application/x-ndjson", body = AuditEntry),
        (status = 400, description = "a malformed parameter (the problem names it)", body = Problem),
        (status = 403, description = "only admins and auditors read the audit log", body = Problem),
    ))]
pub async fn export_audit(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    params: Params,
) -> Result<Response, ApiError> {
    params.allow(&FILTERS)?;
    principal.allow(principal.role.read_audit())?;
    let export = Export {
        masker: Masker::new(&app.read, &principal.role, Reading::Record),
        read: app.read.clone(),
        filter: filter_of(&params)?,
        cursor: None,
        done: false,
    };
    let body = Body::from_stream(futures::stream::unfold(export, Export::next));
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() -> Result<(), ApiError> {
        let cursor = AuditCursor {
            at: time::macros::datetime!(2024-05-01 12:00:00.123456 UTC),
            key: "refused:0192-abc:x".to_owned(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&cursor))?, cursor);
        assert!(decode_cursor("zz").is_err());
        assert!(decode_cursor(&hex::encode("12")).is_err());
        Ok(())
    }
}
