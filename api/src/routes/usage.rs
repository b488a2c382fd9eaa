//! `GET /v1/usage`: which keys of a namespace SDK clients read in a window,
//! by which services, and which keys nobody read (ADR 25). A key is a
//! top-level property of the namespace's document: one its schema declares
//! or a layer sets.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::{Extension, State};
use ecs_domain::NamespaceName;
use ecs_domain::drift::parse_window;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::extract::Params;
use crate::problem::ApiError;
use crate::routes::Problem;
use crate::state::AppState;

const DEFAULT_WINDOW: &str = "24h";

/// Which namespace and window (documentation only).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    /// The namespace.
    pub namespace: String,
    /// `30m`, `24h`, `7d`… (1m to 90d, counted in whole hours); 24h when absent.
    pub window: Option<String>,
}

/// The reads of one key in the window.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyUsage {
    pub key: String,
    pub reads: u64,
    /// Each service that read it, with its env and reads.
    pub read_by: Vec<ServiceReads>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceReads {
    pub env: String,
    pub service: String,
    pub reads: u64,
}

/// A namespace's key usage.
#[derive(Debug, Serialize, ToSchema)]
pub struct Usage {
    pub namespace: String,
    pub window: String,
    /// The start of the window (rounded down to the hour reads are summed in).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub since: OffsetDateTime,
    /// The keys read in the window, most read first.
    pub read: Vec<KeyUsage>,
    /// The namespace's keys nobody read in the window: stale configuration,
    /// or keys only read by clients that do not report.
    pub never_read: Vec<String>,
}

fn invalid(field: &str, detail: impl Into<String>) -> ApiError {
    ApiError::bad("invalid-parameter", field, detail)
}

/// The keys of a namespace read by SDK clients in a window, with the
/// services that read each, and the keys never read.
#[utoipa::path(get, path = "/v1/usage", tag = "observability",
    params(UsageParams),
    responses(
        (status = 200, description = "the keys read and never read", body = Usage),
        (status = 400, description = "a malformed parameter (the problem names it)", body = Problem),
        (status = 404, description = "no such namespace, or the caller may not know it", body = Problem),
    ))]
pub async fn usage(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    params: Params,
) -> Result<Json<Usage>, ApiError> {
    params.allow(&["namespace", "window"])?;
    let namespace = params
        .get("namespace")
        .ok_or_else(|| invalid("namespace", "namespace is required"))?;
    let namespace = NamespaceName::parse(namespace)?;
    let window = params.get("window").unwrap_or(DEFAULT_WINDOW).to_owned();
    let seconds =
        parse_window(&window).map_err(|e| invalid("window", format!("window must be {e}")))?;
    let not_found = || {
        ApiError::not_found(
            "namespace-not-found",
            format!("namespace {namespace} does not exist"),
        )
    };
    principal.check(principal.role.read_namespace(&namespace), not_found)?;
    app.read
        .namespace(&namespace)
        .await?
        .ok_or_else(not_found)?;
    let since = OffsetDateTime::now_utc()
        - time::Duration::seconds(i64::try_from(seconds).unwrap_or(i64::MAX));
    let since = time::Time::from_hms(since.hour(), 0, 0).map_or(since, |t| since.replace_time(t));
    let mut read: BTreeMap<String, KeyUsage> = BTreeMap::new();
    for row in app.read.key_reads_since(&namespace, since).await? {
        let entry = read.entry(row.key.clone()).or_insert_with(|| KeyUsage {
            key: row.key,
            reads: 0,
            read_by: Vec::new(),
        });
        entry.reads = entry.reads.saturating_add(row.reads);
        entry.read_by.push(ServiceReads {
            env: row.env,
            service: row.service,
            reads: row.reads,
        });
    }
    let keys: BTreeSet<String> = app
        .read
        .namespace_keys(&namespace, principal.role.tenant())
        .await?
        .into_iter()
        .collect();
    let never_read = keys.into_iter().filter(|k| !read.contains_key(k)).collect();
    let mut read: Vec<KeyUsage> = read.into_values().collect();
    read.sort_by(|a, b| b.reads.cmp(&a.reads).then_with(|| a.key.cmp(&b.key)));
    Ok(Json(Usage {
        namespace: namespace.to_string(),
        window,
        since,
        read,
        never_read,
    }))
}
