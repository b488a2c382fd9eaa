//! Leases: at most one instance at a time does a job that must not run
//! twice (apply the projections, publish the feed, …), elected through a
//! NATS key-value bucket; the others stand by and take over when the holder
//! stops renewing.
//!
//! - Acquire: create the lease's key (it succeeds only when absent, deleted
//!   or expired): compare-and-set on the key's revision.
//! - Renew: update the key expecting the revision last written, every
//!   [`LeaseBucket::ttl`] / 4.
//! - Expire: the bucket's `max_age` is the TTL, so a key nobody renews
//!   vanishes and a standby's next create succeeds.
//! - Fence: the holder stops working (its [`Tenure::token`] is cancelled)
//!   once no renewal sent within the last TTL / 2 has been acknowledged,
//!   so it has stopped well before the key can expire (the server counts the
//!   TTL from when it stored the renewal, after the holder sent it).
//! - Release: a graceful stop deletes the key (expecting its revision), so a
//!   standby takes over at once instead of after the TTL.
//!
//! The lease bounds how long two holders can overlap in *time*; the jobs it
//! guards stay correct without it (their offsets in PostgreSQL make a second
//! application of a message a no-op), the lease keeps them from fighting.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures::StreamExt;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The bucket holding every lease (`KV_ecs-leases`).
pub const LEASE_BUCKET: &str = "ecs-leases";

/// The default lease TTL (`ECS_LEASE_TTL_SECS`).
pub const DEFAULT_TTL: Duration = Duration::from_secs(10);

/// A job that at most one instance runs at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeaseName {
    /// The PostgreSQL projector of the events stream.
    Projections,
    /// The feed publisher.
    Feed,
    /// The projector of the audit stream's refusals.
    Audit,
    /// The rollout scheduler.
    Rollouts,
}

impl LeaseName {
    /// Every lease, in a stable order.
    pub const ALL: [LeaseName; 4] = [
        LeaseName::Projections,
        LeaseName::Feed,
        LeaseName::Audit,
        LeaseName::Rollouts,
    ];

    /// The lease's key in [`LEASE_BUCKET`].
    pub fn key(self) -> &'static str {
        match self {
            LeaseName::Projections => "projections",
            LeaseName::Feed => "feed",
            LeaseName::Audit => "audit",
            LeaseName::Rollouts => "rollouts",
        }
    }
}

/// Who holds a lease: an instance's identity, unique per process.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct HolderId(String);

impl HolderId {
    /// `<host>-<pid>-<random>`: unique to this process.
    pub fn generate() -> HolderId {
        let random = uuid::Uuid::new_v4().simple().to_string();
        HolderId(format!(
            "{}-{}-{}",
            host(),
            std::process::id(),
            &random[..8]
        ))
    }

    /// `<host>:<port>`: the instance serving on `port` of this host (the
    /// pod's name on Kubernetes). A process restarted on the same address
    /// (after a crash, a container restart) takes back the leases its
    /// predecessor held at once instead of after their TTL: the address was
    /// free, so that predecessor is gone.
    pub fn for_address(port: u16) -> HolderId {
        HolderId(format!("{}:{port}", host()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for HolderId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// This host's name: `HOSTNAME` (the pod's name on Kubernetes), else the
/// kernel's host name; without either, a name unique to this process (so two
/// hosts never share one).
fn host() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| {
            let random = uuid::Uuid::new_v4().simple().to_string();
            format!("ecs-{}", &random[..12])
        })
}

/// What an instance knows of one lease, for `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct LeaseStatus {
    /// This instance holds it.
    pub held: bool,
    /// The holder last seen (this instance when `held`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
}

/// The lease bucket, opened or created with the TTL as its `max_age`.
#[derive(Clone)]
pub struct LeaseBucket {
    store: kv::Store,
    ttl: Duration,
}

impl LeaseBucket {
    /// Opens the bucket, creating it (with `replicas`) when absent, and sets
    /// its `max_age` to `ttl` when it differs.
    pub async fn ensure(
        js: &jetstream::Context,
        replicas: usize,
        ttl: Duration,
    ) -> anyhow::Result<LeaseBucket> {
        let store = match js.get_key_value(LEASE_BUCKET).await {
            Ok(store) => {
                let stream_name = format!("KV_{LEASE_BUCKET}");
                let mut stream = js.get_stream(&stream_name).await?;
                let config = stream.info().await?.config.clone();
                if config.max_age != ttl {
                    js.update_stream(jetstream::stream::Config {
                        max_age: ttl,
                        ..config
                    })
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot set the lease TTL: {e}"))?;
                }
                store
            }
            Err(_) => js
                .create_key_value(kv::Config {
                    bucket: LEASE_BUCKET.to_owned(),
                    description: "ECS leases: which instance runs each singleton job".to_owned(),
                    history: 1,
                    max_age: ttl,
                    storage: jetstream::stream::StorageType::File,
                    num_replicas: replicas,
                    ..Default::default()
                })
                .await
                .map_err(|e| {
                    anyhow::anyhow!("cannot create the lease bucket {LEASE_BUCKET}: {e}")
                })?,
        };
        Ok(LeaseBucket { store, ttl })
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The lease `name`, to be held by `holder`.
    pub fn lease(&self, name: LeaseName, holder: HolderId) -> Lease {
        let (status, _) = watch::channel(LeaseStatus::default());
        Lease {
            store: self.store.clone(),
            ttl: self.ttl,
            name,
            holder,
            status,
        }
    }
}

/// One lease, as one instance competes for it.
pub struct Lease {
    store: kv::Store,
    ttl: Duration,
    name: LeaseName,
    holder: HolderId,
    status: watch::Sender<LeaseStatus>,
}

impl Lease {
    pub fn name(&self) -> LeaseName {
        self.name
    }

    /// What this instance knows of the lease, kept current.
    pub fn status(&self) -> watch::Receiver<LeaseStatus> {
        self.status.subscribe()
    }

    /// How often a holder renews, and a standby tries to acquire.
    fn every(&self) -> Duration {
        self.ttl / 4
    }

    /// Runs `job` whenever this instance holds the lease, until `shutdown`:
    /// acquire, run it until the lease is lost or `shutdown`, release, and
    /// stand by again. A job's error ends it (the lease is released).
    pub async fn run<J: Singleton>(
        &self,
        job: &mut J,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        while let Some(tenure) = self.acquire(shutdown).await {
            let ran = job.run_held(tenure.token()).await;
            tenure.release().await;
            ran?;
        }
        Ok(())
    }

    /// Waits until this instance holds the lease; `None` once `shutdown` is
    /// cancelled. The tenure's token is a child of `shutdown`.
    pub async fn acquire(&self, shutdown: &CancellationToken) -> Option<Tenure> {
        let key = self.name.key();
        let mut watch = None;
        loop {
            if shutdown.is_cancelled() {
                return None;
            }
            let sent = Instant::now();
            match self
                .store
                .create(key, self.holder.as_str().to_owned().into())
                .await
            {
                Ok(revision) => {
                    tracing::info!(lease = key, holder = %self.holder, "lease acquired");
                    self.status.send_replace(LeaseStatus {
                        held: true,
                        holder: Some(self.holder.to_string()),
                    });
                    return Some(self.tenure(revision, sent, shutdown));
                }
                Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => {
                    if let Ok(Some(entry)) = self.store.entry(key).await
                        && entry.operation == kv::Operation::Put
                    {
                        let holder = String::from_utf8_lossy(&entry.value).into_owned();
                        if holder == self.holder.as_str() {
                            // Held by this instance's predecessor on the same
                            // address: take it back.
                            let sent = Instant::now();
                            if let Ok(revision) = self
                                .store
                                .update(key, holder.clone().into(), entry.revision)
                                .await
                            {
                                tracing::info!(lease = key, holder = %self.holder, "lease taken back");
                                self.status.send_replace(LeaseStatus {
                                    held: true,
                                    holder: Some(holder),
                                });
                                return Some(self.tenure(revision, sent, shutdown));
                            }
                            continue;
                        }
                        self.status.send_if_modified(|s| {
                            let changed = s.holder.as_deref() != Some(holder.as_str()) || s.held;
                            *s = LeaseStatus {
                                held: false,
                                holder: Some(holder),
                            };
                            changed
                        });
                    }
                }
                Err(error) => {
                    tracing::debug!(lease = key, %error, "cannot try the lease");
                }
            }
            // A release (delete) wakes the standbys at once; an expiry
            // leaves no marker, so they also try every so often.
            if watch.is_none() {
                watch = self.store.watch(key).await.ok();
            }
            let released = async {
                match watch.as_mut() {
                    Some(events) => loop {
                        match events.next().await {
                            Some(Ok(entry)) if entry.operation != kv::Operation::Put => return,
                            Some(Ok(_)) => {}
                            _ => std::future::pending::<()>().await,
                        }
                    },
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = tokio::time::sleep(self.every()) => {}
                _ = released => {}
            }
        }
    }

    /// Starts renewing the lease acquired at `revision` by a request sent at
    /// `sent`.
    fn tenure(&self, revision: u64, sent: Instant, shutdown: &CancellationToken) -> Tenure {
        let token = shutdown.child_token();
        let (release, released) = oneshot::channel();
        let renewal = Renewal {
            store: self.store.clone(),
            key: self.name.key(),
            value: self.holder.as_str().to_owned(),
            revision,
            valid_until: sent + self.ttl / 2,
            every: self.every(),
            token: token.clone(),
            status: self.status.clone(),
        };
        let task = tokio::spawn(renewal.run(released));
        Tenure {
            token,
            release: Some(release),
            task,
        }
    }
}

/// A job at most one instance runs at a time (see [`Lease::run`]).
pub trait Singleton: Send {
    /// Runs the job until `token` is cancelled: the lease was lost or the
    /// server stops. It must stop promptly then.
    fn run_held(
        &mut self,
        token: CancellationToken,
    ) -> impl std::future::Future<Output = anyhow::Result<()>> + Send;
}

/// Holding a lease: renewed in the background until released or lost.
pub struct Tenure {
    token: CancellationToken,
    release: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Tenure {
    /// Cancelled when the lease is lost (not renewed in time, or taken):
    /// the work it guards must stop.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Stops renewing and deletes the key, so a standby takes over at once.
    pub async fn release(mut self) {
        self.token.cancel();
        if let Some(release) = self.release.take() {
            let _ = release.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for Tenure {
    fn drop(&mut self) {
        // Dropped without a release: stop renewing, let the TTL expire it.
        self.token.cancel();
        self.task.abort();
    }
}

struct Renewal {
    store: kv::Store,
    key: &'static str,
    value: String,
    revision: u64,
    /// The holder works until then unless a renewal is acknowledged.
    valid_until: Instant,
    every: Duration,
    token: CancellationToken,
    status: watch::Sender<LeaseStatus>,
}

impl Renewal {
    async fn run(mut self, mut released: oneshot::Receiver<()>) {
        let mut next = Instant::now() + self.every;
        loop {
            tokio::select! {
                _ = &mut released => {
                    if let Err(error) = self.store.delete_expect_revision(self.key, Some(self.revision)).await {
                        tracing::debug!(lease = self.key, %error, "cannot release the lease; it expires");
                    }
                    tracing::info!(lease = self.key, "lease released");
                    self.lost();
                    return;
                }
                _ = tokio::time::sleep_until(next.min(self.valid_until)) => {}
            }
            if Instant::now() >= self.valid_until {
                tracing::warn!(
                    lease = self.key,
                    "lease not renewed in time: stopping its work before it can expire"
                );
                self.lost();
                return;
            }
            let sent = Instant::now();
            let renewed = tokio::time::timeout_at(
                self.valid_until,
                self.store
                    .update(self.key, self.value.clone().into(), self.revision),
            )
            .await;
            match renewed {
                Ok(Ok(revision)) => {
                    self.revision = revision;
                    self.valid_until = sent + self.valid_until_span();
                    next = sent + self.every;
                }
                Ok(Err(error)) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    tracing::warn!(lease = self.key, "lease taken by another instance");
                    self.lost();
                    return;
                }
                Ok(Err(error)) => {
                    tracing::debug!(lease = self.key, %error, "lease renewal failed; retrying");
                    next = Instant::now() + self.every / 5;
                }
                Err(_) => next = Instant::now(),
            }
        }
    }

    /// TTL / 2: the renewal period is TTL / 4.
    fn valid_until_span(&self) -> Duration {
        self.every * 2
    }

    fn lost(&self) {
        self.token.cancel();
        self.status.send_modify(|s| {
            s.held = false;
            s.holder = None;
        });
    }
}
