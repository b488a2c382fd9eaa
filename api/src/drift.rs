//! Drift (ADR 24): the reports SDK clients send, on NATS
//! (`ecs.drift.<env>.<service>`) or `POST /v1/drift/reports`, recorded in
//! PostgreSQL; each instance judged against the latest position of what it
//! follows; the gauges operators alert on.

use std::collections::HashMap;
use std::time::Duration;

use ecs_domain::drift::{DriftReport, DriftStatus, Followed, is_stale, parse_subject};
use ecs_domain::{NamespaceName, TenantId};
use ecs_projections::ReadModel;
use ecs_projections::drift::{InstanceRow, ReportVia};
use futures::StreamExt;
use serde::Serialize;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

/// Every instance of every NATS server subscribes in this queue group, so
/// each report is recorded once.
const QUEUE_GROUP: &str = "ecs-drift";

/// How often the drift gauges are recomputed.
const GAUGE_REFRESH: Duration = Duration::from_secs(5);

/// Instances silent for this long are forgotten; key reads kept this long.
const FORGET_AFTER_DAYS: i32 = 7;
const KEEP_READS_DAYS: i32 = 90;

/// Why a report was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{0}")]
    Refused(#[from] ecs_domain::drift::ReportError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Checks and records one report, and feeds its propagation samples to
/// `ecs_propagation_seconds`.
pub async fn record(
    read: &ReadModel,
    report: &DriftReport,
    via: ReportVia,
) -> Result<(), RecordError> {
    let outcome = async {
        report.check()?;
        read.record_report(report, via).await?;
        Ok::<_, RecordError>(())
    }
    .await;
    let label = match &outcome {
        Ok(()) => "accepted",
        Err(RecordError::Refused(_)) => "refused",
        Err(RecordError::Database(_)) => "failed",
    };
    metrics::counter!("ecs_drift_reports_total", "via" => via.as_str(), "outcome" => label)
        .increment(1);
    if outcome.is_ok() {
        for seconds in &report.propagation {
            metrics::histogram!("ecs_propagation_seconds", "service" => report.service.to_string())
                .record(*seconds);
        }
    }
    outcome
}

/// Records the reports published on NATS until `stop`. A report whose
/// env or service differs from its subject's is refused: NATS permissions
/// bind a client's credential to its subject, not to the body.
pub async fn listen(nats: async_nats::Client, read: ReadModel, stop: CancellationToken) {
    let subject = format!("{}.>", ecs_domain::drift::SUBJECT_PREFIX);
    // Ends only with `stop`: a background task that ends stops the server.
    while !stop.is_cancelled() {
        let mut subscriber = match nats
            .queue_subscribe(subject.clone(), QUEUE_GROUP.into())
            .await
        {
            Ok(subscriber) => subscriber,
            Err(error) => {
                tracing::warn!(%error, "cannot subscribe to drift reports; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            }
        };
        loop {
            let message = tokio::select! {
                _ = stop.cancelled() => return,
                message = subscriber.next() => message,
            };
            let Some(message) = message else {
                tracing::warn!("the drift report subscription ended; subscribing again");
                break;
            };
            record_published(&read, message.subject.as_str(), &message.payload).await;
        }
    }
}

async fn record_published(read: &ReadModel, subject: &str, payload: &[u8]) {
    let report = match parse_published(subject, payload) {
        Ok(report) => report,
        Err(reason) => {
            metrics::counter!("ecs_drift_reports_total", "via" => "nats", "outcome" => "refused")
                .increment(1);
            tracing::debug!(%subject, %reason, "drift report refused");
            return;
        }
    };
    if let Err(error) = record(read, &report, ReportVia::Nats).await {
        tracing::warn!(%error, instance = %report.instance, "drift report not recorded");
    }
}

fn parse_published(subject: &str, payload: &[u8]) -> Result<DriftReport, String> {
    let (env, service) = parse_subject(subject).ok_or("not a drift report subject")?;
    let report: DriftReport = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
    if report.env != env || report.service != service {
        return Err(format!(
            "the report names {}/{}, its subject {env}/{service}",
            report.env, report.service
        ));
    }
    Ok(report)
}

/// One followed namespace of an instance, judged.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FollowedDrift {
    #[schema(value_type = String)]
    pub namespace: NamespaceName,
    /// The tenants followed; absent: every tenant.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>)]
    pub tenants: Vec<TenantId>,
    pub applied_position: u64,
    /// The latest position of what it follows (its definition, its layers,
    /// the followed tenants).
    pub latest_position: u64,
    pub behind: bool,
    /// When the first change it has not applied was accepted.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>)]
    pub behind_since: Option<OffsetDateTime>,
}

/// One instance, judged.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InstanceDrift {
    pub env: String,
    pub service: String,
    pub instance: String,
    pub sdk_version: String,
    /// How its reports arrive: `nats` or `http`.
    pub via: String,
    /// `current` or `behind`: whether it had applied the latest position of
    /// everything it follows, as of its last report.
    #[schema(value_type = String)]
    pub status: DriftStatus,
    /// Silent for 3 of its intervals, or stopped: what it runs now is
    /// unknown.
    pub stale: bool,
    /// The earliest `behind_since` of its namespaces.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>)]
    pub behind_since: Option<OffsetDateTime>,
    /// Seconds since `behind_since`.
    pub behind_secs: Option<u64>,
    /// When the client started, by its clock.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>)]
    pub started_at: Option<OffsetDateTime>,
    /// When its first report arrived.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub first_seen: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub last_seen: OffsetDateTime,
    /// Seconds since its last report.
    pub silent_secs: u64,
    pub interval_secs: u64,
    /// Watchers open in it.
    pub subscribers: u64,
    /// It said it was stopping.
    pub stopping: bool,
    pub followed: Vec<FollowedDrift>,
}

fn seconds_between(earlier: OffsetDateTime, later: OffsetDateTime) -> u64 {
    u64::try_from((later - earlier).whole_seconds()).unwrap_or(0)
}

/// Judges instances (already narrowed to what the caller may see) against
/// the latest positions, asking each distinct followed set once.
pub async fn judge(
    read: &ReadModel,
    rows: Vec<(InstanceRow, Vec<Followed>)>,
    now: OffsetDateTime,
) -> sqlx::Result<Vec<InstanceDrift>> {
    let mut latest = HashMap::new();
    let mut judged = Vec::with_capacity(rows.len());
    for (row, followed) in rows {
        let mut entries = Vec::with_capacity(followed.len());
        for f in followed {
            let key = (f.namespace.clone(), f.tenants.clone(), f.applied_position);
            let found = match latest.get(&key) {
                Some(found) => *found,
                None => {
                    let found = read
                        .followed_latest(&f.namespace, &f.tenants, f.applied_position)
                        .await?;
                    latest.insert(key, found);
                    found
                }
            };
            let behind = found.position > f.applied_position;
            entries.push(FollowedDrift {
                namespace: f.namespace,
                tenants: f.tenants,
                applied_position: f.applied_position,
                latest_position: found.position,
                behind,
                behind_since: if behind {
                    found.first_change_after
                } else {
                    None
                },
            });
        }
        let behind = entries.iter().any(|f| f.behind);
        let behind_since = entries.iter().filter_map(|f| f.behind_since).min();
        let silent_secs = seconds_between(row.last_seen, now);
        judged.push(InstanceDrift {
            status: DriftStatus::of(behind),
            stale: is_stale(silent_secs, row.interval_secs, row.stopping),
            behind_since,
            behind_secs: behind_since.map(|since| seconds_between(since, now)),
            silent_secs,
            env: row.env,
            service: row.service,
            instance: row.instance,
            sdk_version: row.sdk_version,
            via: row.via,
            started_at: row.started_at,
            first_seen: row.first_seen,
            last_seen: row.last_seen,
            interval_secs: row.interval_secs,
            subscribers: row.subscribers,
            stopping: row.stopping,
            followed: entries,
        });
    }
    Ok(judged)
}

/// Every instance, judged, as an admin sees them.
pub async fn all_instances(read: &ReadModel) -> sqlx::Result<Vec<InstanceDrift>> {
    let rows = read
        .drift_instances()
        .await?
        .into_iter()
        .map(|row| {
            let followed = row.followed.clone();
            (row, followed)
        })
        .collect();
    judge(read, rows, OffsetDateTime::now_utc()).await
}

/// What the drift gauges say of a set of judged instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DriftGauges {
    /// Reporting (not stale) instances that are behind.
    pub behind: u64,
    pub stale: u64,
    /// The longest `behind_secs` of those behind.
    pub max_lag_secs: u64,
    /// Watchers of the reporting instances.
    pub subscribers: u64,
}

impl DriftGauges {
    /// A stale instance counts only as stale: what it runs now is unknown,
    /// and a stopped one must not page anyone.
    pub fn of(instances: &[InstanceDrift]) -> DriftGauges {
        let reporting = || instances.iter().filter(|i| !i.stale);
        let behind = || reporting().filter(|i| i.status == DriftStatus::Behind);
        DriftGauges {
            behind: behind().count() as u64,
            stale: instances.iter().filter(|i| i.stale).count() as u64,
            max_lag_secs: behind().filter_map(|i| i.behind_secs).max().unwrap_or(0),
            subscribers: reporting().map(|i| i.subscribers).sum(),
        }
    }

    pub fn publish(self) {
        metrics::gauge!("ecs_drift_instances_behind").set(self.behind as f64);
        metrics::gauge!("ecs_drift_instances_stale").set(self.stale as f64);
        metrics::gauge!("ecs_drift_max_lag_seconds").set(self.max_lag_secs as f64);
        metrics::gauge!("ecs_sdk_subscribers").set(self.subscribers as f64);
    }
}

/// Recomputes the drift gauges every few seconds until `stop`, and forgets
/// old telemetry once an hour.
pub async fn refresh_gauges(read: ReadModel, stop: CancellationToken) {
    let mut tick = tokio::time::interval(GAUGE_REFRESH);
    let mut since_forget = Duration::from_secs(3600);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match all_instances(&read).await {
            Ok(instances) => DriftGauges::of(&instances).publish(),
            Err(error) => tracing::debug!(%error, "drift gauges not refreshed"),
        }
        since_forget += GAUGE_REFRESH;
        if since_forget >= Duration::from_secs(3600) {
            since_forget = Duration::ZERO;
            if let Err(error) = read
                .forget_old_telemetry(FORGET_AFTER_DAYS, KEEP_READS_DAYS)
                .await
            {
                tracing::debug!(%error, "old drift telemetry not forgotten");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(status: DriftStatus, stale: bool, behind_secs: Option<u64>) -> InstanceDrift {
        let at = OffsetDateTime::UNIX_EPOCH;
        InstanceDrift {
            env: "prod".into(),
            service: "web".into(),
            instance: "i".into(),
            sdk_version: "0.1.0".into(),
            via: "nats".into(),
            status,
            stale,
            behind_since: None,
            behind_secs,
            started_at: None,
            first_seen: at,
            last_seen: at,
            silent_secs: 0,
            interval_secs: 15,
            subscribers: 2,
            stopping: false,
            followed: vec![],
        }
    }

    #[test]
    fn a_stale_instance_counts_as_stale_not_behind_and_its_watchers_not_at_all() {
        let gauges = DriftGauges::of(&[
            judged(DriftStatus::Behind, false, Some(30)),
            judged(DriftStatus::Behind, true, Some(900)),
            judged(DriftStatus::Current, false, None),
        ]);
        assert_eq!(
            gauges,
            DriftGauges {
                behind: 1,
                stale: 1,
                max_lag_secs: 30,
                subscribers: 4,
            }
        );
    }

    #[test]
    fn a_published_report_must_name_its_subjects_env_and_service() {
        let report = serde_json::json!({
            "v": 1, "service": "web", "env": "prod", "instance": "web-1",
            "sdk_version": "0.1.0", "interval_secs": 15, "followed": []
        });
        let bytes = serde_json::to_vec(&report).unwrap();
        assert!(parse_published("ecs.drift.prod.web", &bytes).is_ok());
        assert!(parse_published("ecs.drift.prod.api", &bytes).is_err());
        assert!(parse_published("ecs.drift.dev.web", &bytes).is_err());
        assert!(parse_published("ecs.drift.prod.web", b"{}").is_err());
    }
}
