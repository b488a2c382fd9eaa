//! The feed publisher: projects the events stream into the public change feed,
//! a JetStream key-value bucket holding the latest message per item
//! (`docs/feed.md`). One change costs one feed message, whatever the number of
//! tenants it affects.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull::OrderedConfig, kv};
use ecs_commands::{AnyEvents, EventMessage};
use ecs_domain::feed::{FEED_BUCKET, FEED_VERSION, FeedItem, FeedMessage};
use ecs_domain::{NamespaceEvent, TenantEvent};
use futures::StreamExt;
use serde_json::Value;
use sqlx::PgPool;
use time::format_description::well_known::Rfc3339;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::halt::{Halts, ProjectionName, skip_recorded};

/// How many readers (SDK clients, each one consumer) the feed admits. The
/// server's default per-stream limit is far lower than a fleet of services.
pub const FEED_MAX_CONSUMERS: i32 = 100_000;

/// Creates the feed bucket when absent: one message per key, file storage,
/// room for [`FEED_MAX_CONSUMERS`] readers.
pub async fn ensure_bucket(js: &jetstream::Context, replicas: usize) -> anyhow::Result<kv::Store> {
    let store = open_bucket(js, replicas).await?;
    let stream_name = format!("KV_{FEED_BUCKET}");
    let mut config = js
        .get_stream(&stream_name)
        .await?
        .info()
        .await?
        .config
        .clone();
    // -1 (the server default) is not unlimited: the server caps it.
    if config.max_consumers < FEED_MAX_CONSUMERS {
        config.max_consumers = FEED_MAX_CONSUMERS;
        if let Err(error) = js.update_stream(&config).await {
            tracing::warn!(%error, "cannot raise the feed's consumer limit; SDK clients beyond it will be refused");
        }
    }
    Ok(store)
}

async fn open_bucket(js: &jetstream::Context, replicas: usize) -> anyhow::Result<kv::Store> {
    match js.get_key_value(FEED_BUCKET).await {
        Ok(store) => Ok(store),
        Err(_) => js
            .create_key_value(kv::Config {
                bucket: FEED_BUCKET.to_owned(),
                description: "ECS public change feed (docs/feed.md)".to_owned(),
                history: 1,
                storage: jetstream::stream::StorageType::File,
                num_replicas: replicas,
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow::anyhow!("cannot create the feed bucket {FEED_BUCKET}: {e}")),
    }
}

/// The feed messages of one events-stream message.
pub fn feed_messages(
    position: u64,
    message: &EventMessage<Value>,
    events: &AnyEvents,
) -> Vec<FeedMessage> {
    let at = message.at.format(&Rfc3339).unwrap_or_default();
    let wrap = |item| FeedMessage {
        v: FEED_VERSION,
        position,
        at: at.clone(),
        item,
        traceparent: None,
    };
    match events {
        AnyEvents::Namespace(events) => events
            .iter()
            .map(
                |NamespaceEvent::NamespaceDefined {
                     name,
                     revision,
                     kind,
                     description,
                     schema,
                     ..
                 }| {
                    wrap(FeedItem::Namespace {
                        namespace: name.clone(),
                        revision: *revision,
                        namespace_kind: *kind,
                        description: description.clone(),
                        schema: schema.clone(),
                    })
                },
            )
            .collect(),
        AnyEvents::Tenant(events) => events
            .iter()
            .filter_map(|event| match event {
                TenantEvent::TenantDefined {
                    id,
                    revision,
                    name,
                    edition,
                } => Some(wrap(FeedItem::Tenant {
                    tenant: id.clone(),
                    revision: *revision,
                    edition: edition.clone(),
                    name: name.clone(),
                })),
                // Erasure removes the tenant's items from the feed instead.
                TenantEvent::TenantErased { .. } => None,
            })
            .collect(),
        AnyEvents::Layer(events) => events
            .iter()
            .map(|event| {
                let state = event.state();
                wrap(FeedItem::Layer {
                    namespace: state.namespace,
                    scope: state.scope,
                    revision: state.revision,
                    values: state.values,
                    lock: state.lock,
                })
            })
            .collect(),
        AnyEvents::Token(_) | AnyEvents::ChangeRequest(_) | AnyEvents::Unknown(_) => vec![],
    }
}

/// Follows the events stream and publishes the feed, resuming after its own
/// offset (`projection_offsets` row `feed`), which moves only once a
/// message's feed messages are in the bucket: a restart may publish a message
/// again (readers ignore a position they hold), never skip one.
pub struct FeedPublisher {
    js: jetstream::Context,
    pool: PgPool,
    stream: String,
    published: watch::Sender<u64>,
    keyring: Option<std::sync::Arc<ecs_commands::keyring::Keyring>>,
    halts: Halts,
}

impl FeedPublisher {
    pub fn new(
        js: jetstream::Context,
        pool: PgPool,
        stream: impl Into<String>,
    ) -> (FeedPublisher, watch::Receiver<u64>) {
        let (published, receiver) = watch::channel(0);
        (
            FeedPublisher {
                js,
                pool,
                stream: stream.into(),
                published,
                keyring: None,
                halts: Halts::default(),
            },
            receiver,
        )
    }

    /// Opens tenant data sealed in the stream before publishing it.
    pub fn with_keyring(mut self, keyring: std::sync::Arc<ecs_commands::keyring::Keyring>) -> Self {
        self.keyring = Some(keyring);
        self
    }

    /// Reports a stop (an unreadable message) to these shared halts.
    pub fn with_halts(mut self, halts: Halts) -> Self {
        self.halts = halts;
        self
    }

    /// The position the feed resumes after: its offset, or for a feed
    /// published before the offset was kept, the position of the bucket's
    /// newest feed message (stored as the offset from then on).
    async fn offset(&self) -> anyhow::Result<u64> {
        let stored: Option<i64> =
            sqlx::query_scalar("SELECT last_position FROM projection_offsets WHERE name = $1")
                .bind(FEED_PROJECTION.as_str())
                .fetch_optional(&self.pool)
                .await?;
        if let Some(stored) = stored {
            return Ok(stored as u64);
        }
        let derived = self.newest_published().await?;
        sqlx::query(
            "INSERT INTO projection_offsets (name, last_position) VALUES ($1, $2)
             ON CONFLICT DO NOTHING",
        )
        .bind(FEED_PROJECTION.as_str())
        .bind(derived as i64)
        .execute(&self.pool)
        .await?;
        Ok(derived)
    }

    async fn set_offset(&self, position: u64) -> sqlx::Result<()> {
        sqlx::query("UPDATE projection_offsets SET last_position = $2 WHERE name = $1")
            .bind(FEED_PROJECTION.as_str())
            .bind(position as i64)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The position of the newest feed message in the bucket, passing over
    /// the markers a purge or delete leaves (they carry no feed message).
    async fn newest_published(&self) -> anyhow::Result<u64> {
        let mut stream = self.js.get_stream(format!("KV_{FEED_BUCKET}")).await?;
        let state = stream.info().await?.state.clone();
        let mut sequence = state.last_sequence;
        while sequence >= state.first_sequence.max(1) {
            match stream.direct_get(sequence).await {
                Ok(message) => {
                    if let Ok(feed) = serde_json::from_slice::<FeedMessage>(&message.payload) {
                        return Ok(feed.position);
                    }
                }
                // Compaction removed it (an older value of a key).
                Err(error) if error.kind() == jetstream::stream::DirectGetErrorKind::NotFound => {}
                Err(error) => return Err(error.into()),
            }
            sequence -= 1;
        }
        Ok(0)
    }

    /// Completes a tenant's erasure in NATS: destroys its data key (again,
    /// should the server have stopped before doing so) and purges the tenant's
    /// items from the feed.
    async fn erase(&self, store: &kv::Store, tenant: &str) -> anyhow::Result<()> {
        if let Some(keyring) = &self.keyring {
            keyring.destroy(tenant).await?;
        }
        let tenant_key = format!("tenant.{tenant}");
        let mut keys = store.keys().await?;
        let mut doomed = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key?;
            let names_tenant = key == tenant_key
                || (key.starts_with("layer.") && key.split('.').nth(2) == Some(tenant));
            if names_tenant {
                doomed.push(key);
            }
        }
        for key in doomed {
            store.purge(&key).await?;
        }
        tracing::info!(tenant, "tenant erased from the feed");
        Ok(())
    }

    /// Runs until `shutdown`, resuming after failures with a backoff.
    pub async fn run(&self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut delay = Duration::from_millis(100);
        loop {
            match self.follow(&shutdown).await {
                Ok(Followed::Shutdown) => return Ok(()),
                Ok(Followed::Resume) => {
                    delay = Duration::from_millis(100);
                    continue;
                }
                Err(error) => tracing::warn!(
                    error = format!("{error:#}"),
                    "feed publisher interrupted; resuming"
                ),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    async fn follow(&self, shutdown: &CancellationToken) -> anyhow::Result<Followed> {
        let store = self.js.get_key_value(FEED_BUCKET).await?;
        let after = self.offset().await?;
        self.published.send_replace(after);
        let stream = self.js.get_stream(&self.stream).await?;
        let consumer = stream
            .create_consumer(OrderedConfig {
                deliver_policy: if after == 0 {
                    DeliverPolicy::All
                } else {
                    DeliverPolicy::ByStartSequence {
                        start_sequence: after + 1,
                    }
                },
                ..Default::default()
            })
            .await?;
        let mut messages = consumer.messages().await?;
        loop {
            let message = tokio::select! {
                _ = shutdown.cancelled() => return Ok(Followed::Shutdown),
                message = messages.next() => message,
            };
            let Some(message) = message else {
                anyhow::bail!("the events stream consumer ended");
            };
            let message = message?;
            let info = message.info().map_err(|e| anyhow::anyhow!("{e}"))?;
            let (position, pending) = (info.stream_sequence, info.pending);
            let decoded =
                ecs_commands::message::read_message(&message.payload, self.keyring.as_deref())
                    .await;
            match decoded {
                Err(error) if error.is_transient() => return Err(error.into()),
                Ok((event_message, events)) => {
                    if let AnyEvents::Tenant(tenant_events) = &events {
                        for event in tenant_events {
                            if let TenantEvent::TenantErased { id, .. } = event {
                                self.erase(&store, id.as_str()).await?;
                            }
                        }
                    }
                    let span = tracing::info_span!("feed", position);
                    ecs_commands::trace::continue_traces(&span, [message.headers.as_ref()]);
                    let publish = async {
                        let traceparent = ecs_commands::trace::current_traceparent();
                        for mut feed in feed_messages(position, &event_message, &events) {
                            feed.traceparent.clone_from(&traceparent);
                            let tenant = match &feed.item {
                                FeedItem::Layer { scope, .. } => scope.tenant.as_ref(),
                                FeedItem::Tenant { tenant, .. } => Some(tenant),
                                FeedItem::Namespace { .. } => None,
                            };
                            let tenant =
                                tenant.map_or_else(|| "_".to_owned(), |t| t.as_str().to_owned());
                            metrics::counter!("ecs_changes_total", "tenant" => tenant).increment(1);
                            let payload = serde_json::to_vec(&feed)?;
                            store.put(feed.item.key(), payload.into()).await?;
                        }
                        anyhow::Ok(())
                    };
                    publish.instrument(span).await?;
                }
                Err(error) => match skip_recorded(&self.pool, FEED_PROJECTION, position).await? {
                    Some(by) => tracing::warn!(
                        %error,
                        position,
                        skipped_by = by,
                        "feed: skipping an unreadable message as recorded"
                    ),
                    None => {
                        self.halts.stop(FEED_PROJECTION, position, &error);
                        return Ok(if self.halts.wait_for_resume(shutdown).await {
                            Followed::Resume
                        } else {
                            Followed::Shutdown
                        });
                    }
                },
            }
            // Publishing a message again is harmless, so while a backlog
            // waits the offset is stored every so often rather than after
            // each message; it is always stored once the feed has caught up.
            if pending == 0 || position.is_multiple_of(OFFSET_EVERY) {
                self.set_offset(position).await?;
            }
            self.halts.passed(FEED_PROJECTION, position);
            metrics::gauge!("ecs_feed_published_position").set(position as f64);
            self.published.send_replace(position);
        }
    }
}

/// While catching up, the feed publisher stores its offset every this many
/// messages.
const OFFSET_EVERY: u64 = 256;

/// The feed publisher's name in `projection_offsets` and `projection_skips`.
const FEED_PROJECTION: ProjectionName = ProjectionName::Feed;

/// How following the events stream ended without an error.
enum Followed {
    Shutdown,
    /// Stopped at an unreadable message, then asked to read it again.
    Resume,
}

impl crate::lease::Singleton for FeedPublisher {
    async fn run_held(&mut self, token: CancellationToken) -> anyhow::Result<()> {
        self.run(token).await
    }
}
