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
use time::format_description::well_known::Rfc3339;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

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
    };
    match events {
        AnyEvents::Namespace(events) => events
            .iter()
            .map(
                |NamespaceEvent::NamespaceDefined {
                     name,
                     revision,
                     description,
                     schema,
                     ..
                 }| {
                    wrap(FeedItem::Namespace {
                        namespace: name.clone(),
                        revision: *revision,
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

/// Follows the events stream and publishes the feed.
pub struct FeedPublisher {
    js: jetstream::Context,
    stream: String,
    published: watch::Sender<u64>,
    keyring: Option<std::sync::Arc<ecs_commands::keyring::Keyring>>,
}

impl FeedPublisher {
    pub fn new(
        js: jetstream::Context,
        stream: impl Into<String>,
    ) -> (FeedPublisher, watch::Receiver<u64>) {
        let (published, receiver) = watch::channel(0);
        (
            FeedPublisher {
                js,
                stream: stream.into(),
                published,
                keyring: None,
            },
            receiver,
        )
    }

    /// Opens tenant data sealed in the stream before publishing it.
    pub fn with_keyring(mut self, keyring: std::sync::Arc<ecs_commands::keyring::Keyring>) -> Self {
        self.keyring = Some(keyring);
        self
    }

    /// The position of the newest feed message: the feed resumes after it.
    /// (Compaction never removes a bucket's newest message.)
    async fn published_position(&self) -> anyhow::Result<u64> {
        let mut stream = self.js.get_stream(format!("KV_{FEED_BUCKET}")).await?;
        let last = stream.info().await?.state.last_sequence;
        if last == 0 {
            return Ok(0);
        }
        let message = stream.direct_get(last).await?;
        let message: FeedMessage = serde_json::from_slice(&message.payload)?;
        Ok(message.position)
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
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut delay = Duration::from_millis(100);
        loop {
            match self.follow(&shutdown).await {
                Ok(()) => return Ok(()),
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

    async fn follow(&self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let store = self.js.get_key_value(FEED_BUCKET).await?;
        let after = self.published_position().await?;
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
                _ = shutdown.cancelled() => return Ok(()),
                message = messages.next() => message,
            };
            let Some(message) = message else {
                anyhow::bail!("the events stream consumer ended");
            };
            let message = message?;
            let position = message
                .info()
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .stream_sequence;
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
                    let publish = async {
                        for feed in feed_messages(position, &event_message, &events) {
                            let payload = serde_json::to_vec(&feed)?;
                            store.put(feed.item.key(), payload.into()).await?;
                        }
                        anyhow::Ok(())
                    };
                    publish
                        .instrument(tracing::debug_span!("feed", position))
                        .await?;
                }
                Err(error) => {
                    tracing::error!(%error, position, "feed: skipping an undecodable message")
                }
            }
            metrics::gauge!("ecs_feed_published_position").set(position as f64);
            self.published.send_replace(position);
        }
    }
}
