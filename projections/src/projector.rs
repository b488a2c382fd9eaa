//! The projection worker: a durable JetStream consumer applying each message
//! to PostgreSQL exactly once in effect.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer::AckPolicy, consumer::DeliverPolicy, consumer::pull};
use ecs_commands::message::read_message;
use futures::{FutureExt, StreamExt};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::apply::{apply_messages, lock_offset, reset, set_offset};

/// Where the projection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct ProjectionStatus {
    /// The last stream position applied to PostgreSQL.
    pub applied: u64,
    /// The stream's last position when the projector (re)started; the
    /// projection has caught up once `applied` reaches it.
    pub target: u64,
    pub caught_up: bool,
    /// A rebuild is in progress.
    pub rebuilding: bool,
}

/// The most messages applied in one transaction.
const MAX_BATCH: usize = 1024;

enum Control {
    Rebuild(oneshot::Sender<u64>),
}

/// A handle on a running projector: its status, and a way to ask for a rebuild.
#[derive(Clone)]
pub struct ProjectionHandle {
    status: watch::Receiver<ProjectionStatus>,
    control: mpsc::Sender<Control>,
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
        let reached = status.wait_for(|s| s.applied >= position && !s.rebuilding);
        matches!(tokio::time::timeout(timeout, reached).await, Ok(Ok(_)))
    }

    /// Drops every projection table and replays the stream from the start.
    /// Returns the stream position the rebuild will reach to catch up.
    pub async fn rebuild(&self) -> anyhow::Result<u64> {
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
    status: watch::Sender<ProjectionStatus>,
    control: mpsc::Receiver<Control>,
    keyring: Option<std::sync::Arc<ecs_commands::keyring::Keyring>>,
}

impl Projector {
    pub fn new(
        pool: PgPool,
        js: jetstream::Context,
        settings: ProjectorSettings,
    ) -> (Projector, ProjectionHandle) {
        let (status, status_rx) = watch::channel(ProjectionStatus::default());
        let (control_tx, control) = mpsc::channel(4);
        (
            Projector {
                pool,
                js,
                settings,
                status,
                control,
                keyring: None,
            },
            ProjectionHandle {
                status: status_rx,
                control: control_tx,
            },
        )
    }

    /// Opens tenant data sealed in the stream (see `ecs_commands::keyring`).
    pub fn with_keyring(mut self, keyring: std::sync::Arc<ecs_commands::keyring::Keyring>) -> Self {
        self.keyring = Some(keyring);
        self
    }

    /// Runs until `shutdown` is cancelled, resuming after NATS or PostgreSQL
    /// failures with a backoff.
    pub async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
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
        let offset = lock_offset(&mut tx).await?;
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
                        let target = self.rebuild().await?;
                        let _ = reply.send(target);
                        return Ok(Flow::Restart);
                    }
                    continue;
                }
                message = messages.next() => message,
            };
            let Some(message) = message else {
                anyhow::bail!("the consumer's message stream ended");
            };
            // Apply everything that has already arrived (a backlog while
            // catching up or rebuilding, concurrent writes) in one transaction.
            let mut batch = vec![message?];
            while batch.len() < MAX_BATCH {
                match messages.next().now_or_never() {
                    Some(Some(next)) => batch.push(next?),
                    _ => break,
                }
            }
            let mut work = Vec::with_capacity(batch.len());
            let mut pending = 0;
            for message in &batch {
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
            if let Some(&(last, _)) = work.last() {
                if !self.apply_with_retry(&work, shutdown).await? {
                    anyhow::bail!(
                        "the stored projection offset is behind position {}: following again from it",
                        work[0].0
                    );
                }
                offset = last;
                metrics::counter!("ecs_projection_messages_applied_total")
                    .increment(work.len() as u64);
                metrics::gauge!("ecs_projection_lag_messages").set(pending as f64);
                self.status.send_modify(|s| {
                    s.applied = last;
                    if last >= s.target {
                        s.caught_up = true;
                        s.rebuilding = false;
                    }
                });
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

    /// Applies consecutive messages in one transaction, retrying while
    /// PostgreSQL is unavailable. A message that cannot be decoded is logged
    /// and skipped so it cannot wedge the projection.
    async fn apply_with_retry(
        &self,
        batch: &[(u64, bytes::Bytes)],
        shutdown: &CancellationToken,
    ) -> anyhow::Result<bool> {
        let first = batch.first().map_or(0, |(p, _)| *p);
        let span = tracing::info_span!("project", position = first, messages = batch.len());
        retry_with_backoff(&span, shutdown, || self.apply_once(batch)).await
    }

    /// Answers `false`, changing nothing, when the stored offset is behind the
    /// batch (PostgreSQL lost recent commits): the caller follows again from it.
    async fn apply_once(&self, batch: &[(u64, bytes::Bytes)]) -> anyhow::Result<bool> {
        let mut tx = self.pool.begin().await?;
        let last = lock_offset(&mut tx).await?;
        if batch.first().is_some_and(|(first, _)| *first > last + 1) {
            return Ok(false);
        }
        let mut applied = last;
        let mut messages = Vec::with_capacity(batch.len());
        for (position, payload) in batch {
            if *position <= last {
                continue;
            }
            match read_message(payload, self.keyring.as_deref()).await {
                Ok((message, events)) => messages.push((*position, message, events)),
                Err(error) if error.is_transient() => return Err(error.into()),
                Err(error) => {
                    metrics::counter!("ecs_projection_messages_skipped_total").increment(1);
                    tracing::error!(%error, position, "skipping an undecodable message");
                }
            }
            applied = *position;
        }
        apply_messages(&mut tx, &messages).await?;
        if applied > last {
            set_offset(&mut tx, applied).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Empties the tables, resets the offset and deletes the consumer; the
    /// caller then follows the stream from its start.
    async fn rebuild(&mut self) -> anyhow::Result<u64> {
        tracing::info!("rebuilding projections from the events stream");
        let mut tx = self.pool.begin().await?;
        reset(&mut tx).await?;
        tx.commit().await?;
        let stream = self.js.get_stream(&self.settings.stream).await?;
        let _ = stream.delete_consumer(&self.settings.consumer).await;
        let target = self.stream_last().await?;
        self.status.send_modify(|s| {
            s.applied = 0;
            s.target = target;
            s.caught_up = target == 0;
            s.rebuilding = target > 0;
        });
        Ok(target)
    }
}

/// How `follow` ended without an error.
enum Flow {
    Stop,
    /// Follow again from the offset in PostgreSQL (after a rebuild).
    Restart,
}

/// Runs `attempt` in `span` until it succeeds, waiting with a [`Backoff`]
/// after each failure (PostgreSQL unavailable, say); fails only on shutdown.
pub(crate) async fn retry_with_backoff<T, F, Fut>(
    span: &tracing::Span,
    shutdown: &CancellationToken,
    mut attempt: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut backoff = Backoff::default();
    loop {
        match attempt().instrument(span.clone()).await {
            Ok(value) => return Ok(value),
            Err(error) => {
                tracing::warn!(parent: span, error = format!("{error:#}"), "cannot apply; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => anyhow::bail!("shutting down"),
                    _ = tokio::time::sleep(backoff.next()) => {}
                }
            }
        }
    }
}

/// Exponential backoff from 100 ms to 5 s.
#[derive(Default)]
pub(crate) struct Backoff(u32);

impl Backoff {
    pub(crate) fn next(&mut self) -> Duration {
        let delay =
            Duration::from_millis(100 * 2u64.pow(self.0.min(6))).min(Duration::from_secs(5));
        self.0 += 1;
        delay
    }
}
