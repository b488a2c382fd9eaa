//! The projection worker: a durable JetStream consumer applying each message
//! to PostgreSQL exactly once in effect.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer::AckPolicy, consumer::DeliverPolicy, consumer::pull};
use ecs_commands::keyring::Keyring;
use futures::{FutureExt, StreamExt};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::batch::{Applied, MAX_BATCH, apply_batch};
use crate::halt::{Halts, ProjectionName};
use crate::offsets;
use crate::rebuild::Rebuild;
use crate::retry::{Backoff, retry_with_backoff};
use crate::status::{ProjectionStatus, RebuildProgress};

enum Control {
    Rebuild(oneshot::Sender<u64>),
}

/// A handle on a running projector: its status, and a way to ask for a rebuild.
#[derive(Clone)]
pub struct ProjectionHandle {
    status: watch::Receiver<ProjectionStatus>,
    control: mpsc::Sender<Control>,
    /// This instance's projector runs (it holds the lease).
    active: Arc<AtomicBool>,
}

impl ProjectionHandle {
    pub fn status(&self) -> ProjectionStatus {
        *self.status.borrow()
    }

    /// A receiver that wakes whenever the projection applies a message.
    pub fn subscribe(&self) -> watch::Receiver<ProjectionStatus> {
        self.status.clone()
    }

    /// Waits until the projection has applied `position`, or `timeout` passes.
    /// Returns whether it got there.
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> bool {
        let mut status = self.status.clone();
        let reached = status.wait_for(|s| s.applied >= position);
        matches!(tokio::time::timeout(timeout, reached).await, Ok(Ok(_)))
    }

    /// Replays the stream from its start into fresh tables, then switches
    /// them in atomically (see [`crate::rebuild`]); the current tables serve
    /// and follow the stream meanwhile. Returns the stream position the
    /// rebuild replays to before it switches.
    pub async fn rebuild(&self) -> anyhow::Result<u64> {
        if !self.active.load(Ordering::SeqCst) {
            anyhow::bail!(
                "this instance does not run the projector (another holds the `projections` \
                 lease, see /readyz): ask that instance"
            );
        }
        let (reply, answer) = oneshot::channel();
        self.control
            .send(Control::Rebuild(reply))
            .await
            .map_err(|_| anyhow::anyhow!("the projector is not running"))?;
        answer
            .await
            .context("the projector stopped during the rebuild")
    }
}

#[derive(Debug, Clone)]
pub struct ProjectorSettings {
    pub stream: String,
    /// The durable consumer's name.
    pub consumer: String,
}

impl Default for ProjectorSettings {
    fn default() -> Self {
        ProjectorSettings {
            stream: "ECS_EVENTS".to_owned(),
            consumer: "ecs-projections".to_owned(),
        }
    }
}

pub struct Projector {
    pool: PgPool,
    js: jetstream::Context,
    settings: ProjectorSettings,
    status: Arc<watch::Sender<ProjectionStatus>>,
    control: mpsc::Receiver<Control>,
    keyring: Option<Arc<Keyring>>,
    halts: Halts,
    active: Arc<AtomicBool>,
}

/// The PostgreSQL notification channel on which the active projector
/// announces each position it commits, in the same transaction.
pub const APPLIED_CHANNEL: &str = "ecs_projection_applied";

impl Projector {
    pub fn new(
        pool: PgPool,
        js: jetstream::Context,
        settings: ProjectorSettings,
    ) -> (Projector, ProjectionHandle) {
        let (status, status_rx) = watch::channel(ProjectionStatus::default());
        let (control_tx, control) = mpsc::channel(4);
        let active = Arc::new(AtomicBool::new(false));
        (
            Projector {
                pool,
                js,
                settings,
                status: Arc::new(status),
                control,
                keyring: None,
                halts: Halts::default(),
                active: active.clone(),
            },
            ProjectionHandle {
                status: status_rx,
                control: control_tx,
                active,
            },
        )
    }

    /// Opens tenant data sealed in the stream (see `ecs_commands::keyring`).
    pub fn with_keyring(mut self, keyring: Arc<Keyring>) -> Self {
        self.keyring = Some(keyring);
        self
    }

    /// Reports a stop (an unreadable message) to these shared halts.
    pub fn with_halts(mut self, halts: Halts) -> Self {
        self.halts = halts;
        self
    }

    /// What keeps this instance's status current while another instance
    /// runs the projector (see [`AppliedFollower`]).
    /// `pool` gives the follower its listening connection (one, held).
    pub fn follower(&self, pool: PgPool) -> AppliedFollower {
        AppliedFollower {
            listen: pool,
            pool: self.pool.clone(),
            js: self.js.clone(),
            stream: self.settings.stream.clone(),
            status: self.status.clone(),
        }
    }

    /// Runs until `shutdown` is cancelled (on a lease's loss too), resuming
    /// after NATS or PostgreSQL failures with a backoff. Only the holder of
    /// the `projections` lease runs it: it alone uses the durable consumer.
    pub async fn run(&mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        self.active.store(true, Ordering::SeqCst);
        let ran = self.run_active(shutdown).await;
        self.active.store(false, Ordering::SeqCst);
        ran
    }

    async fn run_active(&mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut backoff = Backoff::default();
        loop {
            match self.follow(&shutdown).await {
                Ok(Flow::Stop) => return Ok(()),
                Ok(Flow::Restart) => {
                    backoff = Backoff::default();
                    continue;
                }
                Err(error) => {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "projector interrupted; resuming"
                    );
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(backoff.next()) => {}
            }
        }
    }

    async fn offset(&self) -> anyhow::Result<u64> {
        let mut tx = self.pool.begin().await?;
        let offset = offsets::lock(&mut tx, ProjectionName::Config).await?;
        tx.commit().await?;
        Ok(offset)
    }

    async fn stream_last(&self) -> anyhow::Result<u64> {
        let mut stream = self.js.get_stream(&self.settings.stream).await?;
        Ok(stream.info().await?.state.last_sequence)
    }

    /// The durable consumer, positioned just after `offset`. An existing
    /// consumer is reused only when it stands exactly there with nothing in
    /// flight, so messages always arrive in stream order.
    async fn consumer(
        &self,
        offset: u64,
    ) -> anyhow::Result<jetstream::consumer::Consumer<pull::Config>> {
        let stream = self.js.get_stream(&self.settings.stream).await?;
        let name = &self.settings.consumer;
        if let Ok(mut existing) = stream.get_consumer::<pull::Config>(name).await {
            let info = existing.info().await?;
            if info.ack_floor.stream_sequence == offset && info.delivered.stream_sequence == offset
            {
                return Ok(existing);
            }
            stream.delete_consumer(name).await?;
        }
        let deliver_policy = if offset == 0 {
            DeliverPolicy::All
        } else {
            DeliverPolicy::ByStartSequence {
                start_sequence: offset + 1,
            }
        };
        let consumer = stream
            .create_consumer(pull::Config {
                durable_name: Some(name.clone()),
                description: Some("ECS PostgreSQL projections".to_owned()),
                ack_policy: AckPolicy::Explicit,
                deliver_policy,
                ack_wait: Duration::from_secs(60),
                max_ack_pending: 4096,
                ..Default::default()
            })
            .await?;
        Ok(consumer)
    }

    async fn follow(&mut self, shutdown: &CancellationToken) -> anyhow::Result<Flow> {
        let mut offset = self.offset().await?;
        let target = self.stream_last().await?.max(offset);
        self.status.send_modify(|s| {
            s.applied = offset;
            s.target = target;
            s.caught_up = offset >= target;
        });
        let consumer = self.consumer(offset).await?;
        let mut messages = consumer.messages().await?;
        tracing::info!(offset, target, "projector following the events stream");
        loop {
            let message = tokio::select! {
                _ = shutdown.cancelled() => return Ok(Flow::Stop),
                control = self.control.recv() => {
                    if let Some(Control::Rebuild(reply)) = control {
                        let _ = reply.send(self.start_rebuild(shutdown).await?);
                    }
                    continue;
                }
                message = messages.next() => message,
            };
            let Some(message) = message else {
                anyhow::bail!("the consumer's message stream ended");
            };
            // Apply everything that has already arrived (a backlog while
            // catching up, concurrent writes) in one transaction.
            let mut batch = vec![message?];
            while batch.len() < MAX_BATCH {
                match messages.next().now_or_never() {
                    Some(Some(next)) => batch.push(next?),
                    _ => break,
                }
            }
            let (work, pending) = consecutive(&batch, offset)?;
            if let Some(&(last, _)) = work.last() {
                let span = tracing::info_span!("projection", through = last);
                ecs_commands::trace::continue_traces(
                    &span,
                    batch.iter().map(|m| m.headers.as_ref()),
                );
                let applied = self.apply_with_retry(&work, shutdown).instrument(span);
                let through = match applied.await? {
                    Applied::Through => last,
                    Applied::Behind => anyhow::bail!(
                        "the stored projection offset is behind position {}: following again from it",
                        work[0].0
                    ),
                    Applied::Unreadable { position, error } => {
                        self.advanced(position - 1, position - work[0].0, pending);
                        self.halts.stop(ProjectionName::Config, position, error);
                        return Ok(if self.halts.wait_for_resume(shutdown).await {
                            Flow::Restart
                        } else {
                            Flow::Stop
                        });
                    }
                };
                offset = through;
                self.halts.passed(ProjectionName::Config, through);
                self.advanced(through, work.len() as u64, pending);
            }
            // The offset in PostgreSQL guards against redelivery, so a lost
            // ack costs nothing but a skipped duplicate.
            for message in &batch {
                if let Err(error) = message.ack().await {
                    tracing::debug!(%error, "ack failed");
                }
            }
        }
    }

    /// Reports that the projection has applied everything up to `applied`.
    fn advanced(&self, applied: u64, messages: u64, pending: u64) {
        metrics::counter!("ecs_projection_messages_applied_total").increment(messages);
        metrics::gauge!("ecs_projection_lag_messages").set(pending as f64);
        self.status.send_modify(|s| {
            if applied > s.applied {
                s.applied = applied;
            }
            if s.applied >= s.target {
                s.caught_up = true;
            }
        });
    }

    /// Applies consecutive messages in one transaction, retrying while
    /// PostgreSQL is unavailable. A message that cannot be read stops the
    /// projection just before it, unless an operator recorded a skip of it.
    async fn apply_with_retry(
        &self,
        batch: &[(u64, bytes::Bytes)],
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Applied> {
        let first = batch.first().map_or(0, |(p, _)| *p);
        let span = tracing::info_span!("project", position = first, messages = batch.len());
        retry_with_backoff(&span, shutdown, move || async move {
            let mut tx = self.pool.begin().await?;
            let applied = apply_batch(&self.pool, &mut tx, batch, self.keyring.as_deref()).await?;
            let committed = match &applied {
                Applied::Through => batch.last().map(|(last, _)| *last),
                Applied::Unreadable { position, .. } => Some(position - 1),
                Applied::Behind => None,
            };
            if let Some(last) = committed {
                // Delivered on commit: the standbys learn the position once
                // it is visible to their reads.
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(APPLIED_CHANNEL)
                    .bind(last.to_string())
                    .execute(&mut *tx)
                    .await?;
            }
            if applied != Applied::Behind {
                tx.commit().await?;
            }
            Ok(applied)
        })
        .await
    }

    /// Starts a rebuild into fresh tables unless one is running; answers the
    /// position it replays to.
    async fn start_rebuild(&mut self, shutdown: &CancellationToken) -> anyhow::Result<u64> {
        if let Some(progress) = self.status.borrow().rebuild {
            return Ok(progress.target);
        }
        let target = self.stream_last().await?;
        self.status.send_modify(|s| {
            s.rebuilding = true;
            s.rebuild = Some(RebuildProgress { applied: 0, target });
            // The current tables have applied at most this far: once they
            // reach it (and the rebuild has switched in), all is caught up.
            s.target = s.target.max(target);
        });
        let rebuild = Rebuild {
            pool: self.pool.clone(),
            js: self.js.clone(),
            stream: self.settings.stream.clone(),
            keyring: self.keyring.clone(),
            status: self.status.clone(),
        };
        tokio::spawn(rebuild.run(target, shutdown.clone()));
        Ok(target)
    }
}

/// The messages of `batch` after `offset`, checked to follow it without a
/// gap, and how many more the consumer holds after the batch.
fn consecutive(
    batch: &[jetstream::Message],
    offset: u64,
) -> anyhow::Result<(Vec<(u64, bytes::Bytes)>, u64)> {
    let mut work: Vec<(u64, bytes::Bytes)> = Vec::with_capacity(batch.len());
    let mut pending = 0;
    for message in batch {
        let info = message.info().map_err(|e| anyhow::anyhow!("{e}"))?;
        let position = info.stream_sequence;
        pending = info.pending;
        if position <= offset {
            continue;
        }
        let expected = work.last().map_or(offset, |(p, _)| *p) + 1;
        if position != expected {
            anyhow::bail!("expected position {expected} but received {position}");
        }
        work.push((position, message.payload.clone()));
    }
    Ok((work, pending))
}

impl crate::lease::Singleton for Projector {
    async fn run_held(&mut self, token: CancellationToken) -> anyhow::Result<()> {
        self.run(token).await
    }
}

/// How `follow` ended without an error.
enum Flow {
    Stop,
    /// Follow again from the offset in PostgreSQL (after a stop at an
    /// unreadable message, when asked to read it again).
    Restart,
}

/// Keeps an instance's [`ProjectionStatus`] current from PostgreSQL while
/// another instance runs the projector: the active projector notifies
/// [`APPLIED_CHANNEL`] in each transaction it commits, so a standby learns a
/// position exactly when its reads can see it. After a lost connection
/// (notifications in between are lost) the offset is read again. It runs on
/// every instance: on the active one it repeats what the projector reports.
pub struct AppliedFollower {
    listen: PgPool,
    pool: PgPool,
    js: jetstream::Context,
    stream: String,
    status: Arc<watch::Sender<ProjectionStatus>>,
}

impl AppliedFollower {
    /// Runs until `shutdown`, resuming after failures with a backoff.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut backoff = Backoff::default();
        loop {
            match self.follow(&shutdown).await {
                Ok(()) => return Ok(()),
                Err(error) => tracing::debug!(
                    error = format!("{error:#}"),
                    "following the applied position interrupted; resuming"
                ),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(backoff.next()) => {}
            }
        }
    }

    async fn follow(&self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.listen).await?;
        listener.listen(APPLIED_CHANNEL).await?;
        let mut stream = self.js.get_stream(&self.stream).await?;
        let target = stream.info().await?.state.last_sequence;
        self.status.send_modify(|s| s.target = s.target.max(target));
        self.reached(self.stored().await?);
        loop {
            let notification = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                notification = listener.try_recv() => notification?,
            };
            match notification {
                Some(notification) => {
                    if let Ok(position) = notification.payload().parse::<u64>() {
                        self.reached(position);
                    }
                }
                // Reconnected: what was notified meanwhile is lost.
                None => self.reached(self.stored().await?),
            }
        }
    }

    /// The offset committed in PostgreSQL (read without locking it).
    async fn stored(&self) -> sqlx::Result<u64> {
        let stored: Option<i64> =
            sqlx::query_scalar("SELECT last_position FROM projection_offsets WHERE name = $1")
                .bind(ProjectionName::Config.as_str())
                .fetch_optional(&self.pool)
                .await?;
        Ok(stored.unwrap_or(0) as u64)
    }

    fn reached(&self, applied: u64) {
        self.status.send_if_modified(|s| {
            let before = *s;
            if applied > s.applied {
                s.applied = applied;
            }
            if s.applied >= s.target {
                s.caught_up = true;
            }
            *s != before
        });
    }
}
