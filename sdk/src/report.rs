//! Drift reports (ADR 24): every interval, and once more when the client
//! closes, the client says who it is, what it follows and the position it
//! applied of each, with its key reads, live watchers and measured
//! propagation times. Over NATS it publishes on `ecs.drift.<env>.<service>`
//! (the one subject a service's credential may publish on); over HTTP it
//! posts to `/v1/drift/reports` with its token. A report that cannot be sent
//! is dropped (its key reads wait for the next one): reporting never holds
//! up the configuration.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ecs_domain::drift::{
    DEFAULT_INTERVAL_SECS, DriftReport, Followed, MAX_PROPAGATION_SAMPLES, REPORT_VERSION,
};
use ecs_domain::{EnvName, InstanceId, ServiceName};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio_util::sync::CancellationToken;

use crate::usage::ReadCounter;

/// Who the client reports as, and how often.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    pub service: ServiceName,
    pub env: EnvName,
    /// Unique per running process; by default the host name, the process id
    /// and a random suffix.
    pub instance: InstanceId,
    /// 15 seconds by default; the server flags an instance silent for three
    /// intervals as stale.
    pub interval: Duration,
}

impl ReportSettings {
    pub fn new(service: &str, env: &str) -> Result<Self, ecs_domain::IdError> {
        Ok(ReportSettings {
            service: ServiceName::parse(service)?,
            env: EnvName::parse(env)?,
            instance: default_instance()?,
            interval: Duration::from_secs(DEFAULT_INTERVAL_SECS),
        })
    }
}

/// `<host>-<pid>-<random>`, within the identifier alphabet.
fn default_instance() -> Result<InstanceId, ecs_domain::IdError> {
    use std::hash::{BuildHasher, Hasher};
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(40)
        .collect();
    // A per-process random key (std's hasher seed) tells apart two
    // processes that reuse a pid, as containers do.
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
        & 0xff_ffff;
    InstanceId::parse(format!("i-{host}-{}-{random:06x}", std::process::id()).replace("--", "-"))
}

/// What the client measures between reports.
#[derive(Default)]
pub struct Telemetry {
    pub reads: ReadCounter,
    propagation: Mutex<Vec<f64>>,
    nats: Mutex<Option<async_nats::Client>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Telemetry {
    /// Records the time from a change's acceptance (`at`, RFC 3339) to now.
    pub fn record_propagation(&self, at: &str) {
        let Ok(at) = OffsetDateTime::parse(at, &Rfc3339) else {
            return;
        };
        let seconds = (OffsetDateTime::now_utc() - at).as_seconds_f64().max(0.0);
        let mut samples = lock(&self.propagation);
        if samples.len() < MAX_PROPAGATION_SAMPLES {
            samples.push(seconds);
        }
    }

    /// The connection the reports go out on, once the feed has one.
    pub fn set_nats(&self, client: Option<async_nats::Client>) {
        if client.is_some() {
            *lock(&self.nats) = client;
        }
    }
}

/// What the client follows right now.
pub struct Snapshot {
    pub followed: Vec<Followed>,
    pub subscribers: u64,
}

/// Where reports go.
pub enum Destination {
    Nats,
    Http {
        client: reqwest::Client,
        url: String,
        token: String,
    },
}

/// Sends reports for one client.
pub struct Reporter {
    pub settings: ReportSettings,
    /// When the client started.
    pub started_at: OffsetDateTime,
    pub destination: Destination,
    pub telemetry: Arc<Telemetry>,
}

impl Reporter {
    fn report(&self, snapshot: Snapshot, stopping: bool) -> DriftReport {
        DriftReport {
            v: REPORT_VERSION,
            service: self.settings.service.clone(),
            env: self.settings.env.clone(),
            instance: self.settings.instance.clone(),
            sdk_version: env!("CARGO_PKG_VERSION").to_owned(),
            interval_secs: self.settings.interval.as_secs().max(1),
            started_at: Some(self.started_at),
            sent_at: Some(OffsetDateTime::now_utc()),
            followed: snapshot.followed,
            reads: self.telemetry.reads.take(),
            subscribers: snapshot.subscribers,
            propagation: std::mem::take(&mut *lock(&self.telemetry.propagation)),
            stopping,
        }
    }

    /// Sends one report; on failure, keeps its key reads for the next one.
    pub async fn send(&self, snapshot: Snapshot, stopping: bool) {
        let report = self.report(snapshot, stopping);
        let sent = match self.deliver(&report).await {
            Ok(()) => return,
            Err(reason) => reason,
        };
        tracing::debug!(reason = %sent, "drift report not sent");
        self.telemetry.reads.restore(report.reads);
    }

    async fn deliver(&self, report: &DriftReport) -> Result<(), String> {
        let body = serde_json::to_vec(report).map_err(|e| e.to_string())?;
        match &self.destination {
            Destination::Nats => {
                let client = lock(&self.telemetry.nats)
                    .clone()
                    .ok_or("not connected to NATS yet")?;
                let subject = ecs_domain::drift::subject(&report.env, &report.service);
                client
                    .publish(subject, body.into())
                    .await
                    .map_err(|e| e.to_string())?;
                client.flush().await.map_err(|e| e.to_string())
            }
            Destination::Http { client, url, token } => {
                let response = client
                    .post(url)
                    .bearer_auth(token)
                    .header("Content-Type", "application/json")
                    .timeout(Duration::from_secs(10))
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if response.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("{url}: {}", response.status()))
                }
            }
        }
    }
}

/// Reports soon after start, then every interval, and a last time (marked
/// `stopping`) when `shutdown` is cancelled.
pub async fn run(
    reporter: Reporter,
    snapshot: impl Fn() -> Snapshot + Send,
    shutdown: CancellationToken,
) {
    let interval = reporter.settings.interval.max(Duration::from_secs(1));
    // The first report goes out once the bootstrap had a moment to finish.
    let mut next = tokio::time::Instant::now() + interval.min(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                reporter.send(snapshot(), true).await;
                return;
            }
            _ = tokio::time::sleep_until(next) => {}
        }
        reporter.send(snapshot(), false).await;
        next = tokio::time::Instant::now() + interval;
    }
}
