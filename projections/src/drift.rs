//! Drift and usage: the reports SDK clients send (ADR 24, 25), recorded in
//! `drift_instances` and `key_reads`, and the positions they are judged
//! against. Not projections of the events stream: operational telemetry,
//! never replayed, which a rebuild leaves alone.

use ecs_domain::drift::{DriftReport, Followed};
use ecs_domain::{NamespaceName, TenantId};
use sqlx::types::Json;
use time::OffsetDateTime;

use crate::queries::ReadModel;

/// How a report arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportVia {
    Nats,
    Http,
}

impl ReportVia {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportVia::Nats => "nats",
            ReportVia::Http => "http",
        }
    }
}

/// An instance as last reported.
#[derive(Debug, Clone)]
pub struct InstanceRow {
    pub env: String,
    pub service: String,
    pub instance: String,
    pub sdk_version: String,
    pub via: String,
    pub interval_secs: u64,
    pub followed: Vec<Followed>,
    pub subscribers: u64,
    pub stopping: bool,
    /// When the client started, by its clock.
    pub started_at: Option<OffsetDateTime>,
    pub first_seen: OffsetDateTime,
    pub last_seen: OffsetDateTime,
}

/// The latest position of what a client follows, and when the first change
/// after a given position was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latest {
    pub position: u64,
    pub first_change_after: Option<OffsetDateTime>,
}

/// Reads of one key by one service in a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyReadRow {
    pub key: String,
    pub env: String,
    pub service: String,
    pub reads: u64,
}

fn tenant_names(tenants: &[TenantId]) -> Vec<String> {
    tenants.iter().map(|t| t.as_str().to_owned()).collect()
}

/// The positions a client's feed holds of a namespace: its definition, its
/// layers (of the followed tenants and the tenant-free ones) and the
/// followed tenants (every tenant when none is named); erased tenants'
/// items are gone from the feed.
const FOLLOWED_CHANGES: &str = "
    SELECT position, at FROM namespace_history WHERE name = $1 AND position > $3
    UNION ALL
    SELECT position, at FROM layer_history
     WHERE namespace = $1 AND position > $3
       AND (cardinality($2::text[]) = 0 OR tenant IS NULL OR tenant = ANY($2))
       AND (tenant IS NULL OR tenant NOT IN (SELECT id FROM tenants WHERE erased_at IS NOT NULL))
    UNION ALL
    SELECT position, at FROM tenant_history
     WHERE position > $3
       AND (cardinality($2::text[]) = 0 OR id = ANY($2))
       AND id NOT IN (SELECT id FROM tenants WHERE erased_at IS NOT NULL)";

impl ReadModel {
    /// Records a report received now: the instance's row is replaced, its
    /// key reads are added to the current hour's.
    pub async fn record_report(&self, report: &DriftReport, via: ReportVia) -> sqlx::Result<()> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO drift_instances (env, service, instance, sdk_version, via, interval_secs,
                 followed, subscribers, stopping, started_at, sent_at, first_seen, last_seen)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now(), now())
             ON CONFLICT (env, service, instance) DO UPDATE SET
                 sdk_version = EXCLUDED.sdk_version, via = EXCLUDED.via,
                 interval_secs = EXCLUDED.interval_secs, followed = EXCLUDED.followed,
                 subscribers = EXCLUDED.subscribers, stopping = EXCLUDED.stopping,
                 started_at = EXCLUDED.started_at, sent_at = EXCLUDED.sent_at,
                 last_seen = EXCLUDED.last_seen",
        )
        .bind(report.env.as_str())
        .bind(report.service.as_str())
        .bind(report.instance.as_str())
        .bind(&report.sdk_version)
        .bind(via.as_str())
        .bind(i64::try_from(report.interval_secs).unwrap_or(i64::MAX))
        .bind(Json(&report.followed))
        .bind(i64::try_from(report.subscribers).unwrap_or(i64::MAX))
        .bind(report.stopping)
        .bind(report.started_at)
        .bind(report.sent_at)
        .execute(&mut *tx)
        .await?;
        if !report.reads.is_empty() {
            let namespaces: Vec<&str> = report.reads.iter().map(|r| r.namespace.as_str()).collect();
            let keys: Vec<&str> = report.reads.iter().map(|r| r.key.as_str()).collect();
            let reads: Vec<i64> = report
                .reads
                .iter()
                .map(|r| i64::try_from(r.reads).unwrap_or(i64::MAX))
                .collect();
            sqlx::query(
                "INSERT INTO key_reads (namespace, key, env, service, hour, reads)
                 SELECT ns, key, $4, $5, date_trunc('hour', now()), sum(reads)
                   FROM UNNEST($1::text[], $2::text[], $3::bigint[]) AS r(ns, key, reads)
                  GROUP BY ns, key
                 ON CONFLICT (namespace, key, env, service, hour)
                 DO UPDATE SET reads = key_reads.reads + EXCLUDED.reads",
            )
            .bind(&namespaces)
            .bind(&keys)
            .bind(&reads)
            .bind(report.env.as_str())
            .bind(report.service.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }

    /// Every instance as last reported, by env, service and instance.
    pub async fn drift_instances(&self) -> sqlx::Result<Vec<InstanceRow>> {
        type Row = (
            String,
            String,
            String,
            String,
            String,
            i64,
            Json<Vec<Followed>>,
            i64,
            bool,
            Option<OffsetDateTime>,
            OffsetDateTime,
            OffsetDateTime,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT env, service, instance, sdk_version, via, interval_secs, followed,
                    subscribers, stopping, started_at, first_seen, last_seen
               FROM drift_instances ORDER BY env, service, instance",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| InstanceRow {
                env: r.0,
                service: r.1,
                instance: r.2,
                sdk_version: r.3,
                via: r.4,
                interval_secs: u64::try_from(r.5).unwrap_or(0),
                followed: r.6.0,
                subscribers: u64::try_from(r.7).unwrap_or(0),
                stopping: r.8,
                started_at: r.9,
                first_seen: r.10,
                last_seen: r.11,
            })
            .collect())
    }

    /// The latest position of what a client following `namespace` (for
    /// `tenants`, or every tenant) holds once current, and when the first
    /// change after `applied` was accepted.
    pub async fn followed_latest(
        &self,
        namespace: &NamespaceName,
        tenants: &[TenantId],
        applied: u64,
    ) -> sqlx::Result<Latest> {
        let (latest, first): (Option<i64>, Option<OffsetDateTime>) = sqlx::query_as(&format!(
            "WITH changes AS ({FOLLOWED_CHANGES}) SELECT max(position), min(at) FROM changes"
        ))
        .bind(namespace.as_str())
        .bind(tenant_names(tenants))
        .bind(i64::try_from(applied).unwrap_or(i64::MAX))
        .fetch_one(self.pool())
        .await?;
        Ok(Latest {
            position: latest.map_or(applied, |p| u64::try_from(p).unwrap_or(0).max(applied)),
            first_change_after: first,
        })
    }

    /// Forgets instances silent for longer than `days` (stopped ones after
    /// an hour: a restart brings a new instance id) and key reads older than
    /// `keep_days`, so telemetry does not grow without bound.
    pub async fn forget_old_telemetry(&self, days: i32, keep_days: i32) -> sqlx::Result<()> {
        sqlx::query(
            "DELETE FROM drift_instances
              WHERE last_seen < now() - make_interval(days => $1)
                 OR (stopping AND last_seen < now() - interval '1 hour')",
        )
        .bind(days)
        .execute(self.pool())
        .await?;
        sqlx::query("DELETE FROM key_reads WHERE hour < now() - make_interval(days => $1)")
            .bind(keep_days)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Reads of a namespace's keys in the hours since `since`, by key,
    /// env and service.
    pub async fn key_reads_since(
        &self,
        namespace: &NamespaceName,
        since: OffsetDateTime,
    ) -> sqlx::Result<Vec<KeyReadRow>> {
        let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT key, env, service, sum(reads)::bigint FROM key_reads
              WHERE namespace = $1 AND hour >= date_trunc('hour', $2::timestamptz)
              GROUP BY key, env, service ORDER BY key, env, service",
        )
        .bind(namespace.as_str())
        .bind(since)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(key, env, service, reads)| KeyReadRow {
                key,
                env,
                service,
                reads: u64::try_from(reads).unwrap_or(0),
            })
            .collect())
    }

    /// The keys (top-level properties) of a namespace: those its schema
    /// declares and those any current layer sets, within `tenant` when given
    /// (its layers and the tenant-free ones).
    pub async fn namespace_keys(
        &self,
        namespace: &NamespaceName,
        tenant: Option<&TenantId>,
    ) -> sqlx::Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT k FROM layers l,
                    jsonb_object_keys(CASE WHEN jsonb_typeof(l.values) = 'object'
                                           THEN l.values ELSE '{}'::jsonb END) k
              WHERE l.namespace = $1 AND ($2::text IS NULL OR l.tenant IS NULL OR l.tenant = $2)
             UNION
             SELECT k FROM namespaces n,
                    jsonb_object_keys(CASE WHEN jsonb_typeof(n.schema -> 'properties') = 'object'
                                           THEN n.schema -> 'properties' ELSE '{}'::jsonb END) k
              WHERE n.name = $1
             ORDER BY 1",
        )
        .bind(namespace.as_str())
        .bind(tenant.map(TenantId::as_str))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|(k,)| k).collect())
    }
}
