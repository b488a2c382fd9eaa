//! Recording refused attempts and rollout plans' lifecycle in the audit
//! stream. Accepted changes of the events stream are audited from that stream
//! itself (the projector writes their audit entries, with the request
//! metadata each command carries).

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use axum::extract::Request;
use ecs_domain::audit::{AUDIT_SUBJECTS, AuditRecord, Outcome};
use time::format_description::well_known::Rfc3339;

/// The audit stream's name.
pub const AUDIT_STREAM: &str = "ECS_AUDIT";

/// The audit stream's storage limits. Above them JetStream drops the oldest
/// records (already projected into the `audit` table, which keeps them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AuditLimits {
    pub max_bytes: i64,
    /// `Duration::ZERO`: no age limit.
    pub max_age: Duration,
    /// The usage ratio above which a warning is logged.
    pub warn_ratio: f64,
}

impl AuditLimits {
    pub fn of(settings: &crate::settings::Settings) -> Self {
        AuditLimits {
            max_bytes: settings.audit_max_bytes,
            max_age: Duration::from_secs(settings.audit_max_age_days * 24 * 60 * 60),
            warn_ratio: settings.audit_warn_ratio,
        }
    }
}

/// Creates the audit stream when absent (file storage, delete and purge
/// denied) and gives it `limits`, also when it exists with other limits.
pub async fn ensure_audit_stream(
    js: &jetstream::Context,
    replicas: usize,
    limits: AuditLimits,
) -> anyhow::Result<()> {
    let config = stream::Config {
        name: AUDIT_STREAM.to_owned(),
        subjects: vec![AUDIT_SUBJECTS.to_owned()],
        storage: stream::StorageType::File,
        num_replicas: replicas,
        deny_delete: true,
        deny_purge: true,
        allow_direct: true,
        duplicate_window: Duration::from_secs(120),
        max_bytes: limits.max_bytes,
        max_age: limits.max_age,
        discard: stream::DiscardPolicy::Old,
        ..Default::default()
    };
    // JetStream reserves a stream's `max_bytes` in its storage up front, so a
    // limit larger than the storage left is refused here, at start.
    let mut existing = js.get_or_create_stream(config.clone()).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot create or open the audit stream (ECS_AUDIT_MAX_BYTES={} must fit in \
                 JetStream's storage): {e}",
            limits.max_bytes
        )
    })?;
    let current = existing
        .info()
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the audit stream: {e}"))?
        .config
        .clone();
    if current.max_bytes != config.max_bytes
        || current.max_age != config.max_age
        || current.discard != config.discard
    {
        js.update_stream(stream::Config {
            max_bytes: config.max_bytes,
            max_age: config.max_age,
            discard: config.discard,
            ..current
        })
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot set the audit stream's limits (ECS_AUDIT_MAX_BYTES={} must fit in \
                 JetStream's storage): {e}",
                limits.max_bytes
            )
        })?;
        tracing::info!(
            max_bytes = limits.max_bytes,
            max_age_secs = limits.max_age.as_secs(),
            "the audit stream's limits were updated"
        );
    }
    Ok(())
}

/// How often the audit stream's usage is measured.
const USAGE_EVERY: Duration = Duration::from_secs(15);

/// Publishes the audit stream's usage (bytes over `ECS_AUDIT_MAX_BYTES`) as
/// the gauge `ecs_audit_stream_usage_ratio` and warns above
/// `ECS_AUDIT_WARN_RATIO`, until `shutdown`.
pub async fn watch_audit_usage(
    js: jetstream::Context,
    limits: AuditLimits,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut ticks = tokio::time::interval(USAGE_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match audit_usage(&js, limits).await {
            Ok(ratio) => {
                metrics::gauge!("ecs_audit_stream_usage_ratio").set(ratio);
                if ratio >= limits.warn_ratio {
                    tracing::warn!(
                        usage = ratio,
                        "the audit stream is close to ECS_AUDIT_MAX_BYTES; its oldest records \
                         will be dropped from the stream (the audit table keeps them)"
                    );
                }
            }
            Err(error) => tracing::debug!(%error, "cannot read the audit stream's usage"),
        }
    }
}

/// The audit stream's bytes over its size limit.
pub async fn audit_usage(js: &jetstream::Context, limits: AuditLimits) -> anyhow::Result<f64> {
    let mut stream = js.get_stream(AUDIT_STREAM).await?;
    let bytes = stream.info().await?.state.bytes;
    Ok(bytes as f64 / limits.max_bytes.max(1) as f64)
}

/// Subject-safe token for a tenant named by a request (which may be invalid).
fn tenant_token(tenant: Option<&str>) -> String {
    match tenant.map(ecs_domain::TenantId::parse) {
        Some(Ok(t)) => t.to_string(),
        _ => "_".to_owned(),
    }
}

/// Publishes `record` to the audit stream on `ecs.audit.<tenant or _>.<outcome>`,
/// de-duplicated by its id, and waits for the stream to store it.
pub async fn publish_record(nats: &async_nats::Client, record: &AuditRecord) -> anyhow::Result<()> {
    let outcome = match record.outcome {
        Outcome::Accepted => "accepted",
        Outcome::Refused => "refused",
    };
    let subject = format!(
        "ecs.audit.{}.{outcome}",
        tenant_token(record.tenant.as_deref())
    );
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", record.id.as_str());
    let payload = serde_json::to_vec(record)?;
    jetstream::new(nats.clone())
        .publish_with_headers(subject, headers, payload.into())
        .await
        .map_err(|e| anyhow::anyhow!("cannot publish to the audit stream: {e}"))?
        .await
        .map_err(|e| anyhow::anyhow!("the audit stream did not store the record: {e}"))?;
    Ok(())
}

/// A time as RFC 3339, as audit records carry it.
pub fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// The ids a request carries, for its audit record.
#[derive(Debug, Clone, Default)]
pub struct RequestIds {
    /// `x-request-id` (set by the server when the client sent none).
    pub request_id: Option<String>,
    /// `x-correlation-id`, as the client sent it.
    pub correlation_id: Option<String>,
}

impl RequestIds {
    pub fn of(headers: &axum::http::HeaderMap) -> RequestIds {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(200).collect::<String>())
        };
        RequestIds {
            request_id: header("x-request-id"),
            correlation_id: header("x-correlation-id"),
        }
    }
}

/// What a request names, for the audit record.
#[derive(Debug, Clone, Default)]
pub struct RequestFacts {
    pub action: String,
    pub request_id: Option<String>,
    pub correlation_id: Option<String>,
    pub tenant: Option<String>,
    pub namespace: Option<String>,
}

impl RequestFacts {
    pub fn of(request: &Request) -> RequestFacts {
        let ids = RequestIds::of(request.headers());
        let path = request.uri().path();
        let segments: Vec<&str> = path.split('/').collect();
        let namespace = match segments.as_slice() {
            ["", "v1", "namespaces", ns, ..] => Some((*ns).to_owned()),
            _ => None,
        };
        let path_tenant = match segments.as_slice() {
            ["", "v1", "tenants", tenant, ..] => Some((*tenant).to_owned()),
            _ => None,
        };
        let query_tenant = request.uri().query().and_then(|q| {
            q.split('&')
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| *k == "tenant")
                .map(|(_, v)| v.to_owned())
        });
        let route = request
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .map_or(path, |p| p.as_str());
        RequestFacts {
            action: format!(
                "http:{} {}",
                request.method(),
                route.chars().take(200).collect::<String>()
            ),
            request_id: ids.request_id,
            correlation_id: ids.correlation_id,
            tenant: path_tenant
                .or(query_tenant)
                .map(|t| t.chars().take(64).collect()),
            namespace: namespace.map(|n| n.chars().take(64).collect()),
        }
    }
}
