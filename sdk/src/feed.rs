//! The two ways a client follows the change feed: a JetStream ordered consumer
//! on the feed bucket (NATS credentials), or the server's `/v1/feed`
//! server-sent events (an HTTP token only). Both deliver the latest message of
//! every followed item, then each change.

use std::collections::VecDeque;

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::push};
use bytes::Bytes;
use ecs_domain::TenantId;
use ecs_domain::feed::{FEED_BUCKET, namespace_filters};
use futures::StreamExt;
use futures::stream::{BoxStream, SelectAll};

use crate::ClientSettings;

/// One step of a feed.
pub enum Item {
    /// A feed message; `settled` when nothing more is pending right now.
    Message { payload: Bytes, settled: bool },
    /// The item under `key` was removed from the feed (a tenant's erasure
    /// purges its items): the client forgets it.
    Removed { key: String, settled: bool },
    /// The tenant was erased (the HTTP feed says so in one event): the
    /// client forgets it and its layers.
    TenantErased { tenant: TenantId, settled: bool },
    /// The initial state has been delivered completely.
    Synced,
}

pub enum Feed {
    Nats(NatsFeed),
    Http(SseReader),
}

impl Feed {
    /// Opens the feed; with HTTP, resuming after position `after`.
    pub async fn open(settings: &ClientSettings, after: u64) -> Result<Feed, String> {
        match &settings.http {
            Some(http) => SseReader::open(settings, http, after).await.map(Feed::Http),
            None => NatsFeed::open(settings).await.map(Feed::Nats),
        }
    }

    /// The NATS connection of a feed over NATS.
    pub fn nats_client(&self) -> Option<async_nats::Client> {
        match self {
            Feed::Nats(feed) => Some(feed.client.clone()),
            Feed::Http(_) => None,
        }
    }

    pub async fn next(&mut self) -> Option<Result<Item, String>> {
        match self {
            Feed::Nats(feed) => feed.next().await,
            Feed::Http(reader) => reader.next().await,
        }
    }
}

/// The key of a bucket message that removes its item (a delete or purge
/// marker), read from the message's framing: the `KV-Operation` header and
/// the subject `$KV.<bucket>.<key>`.
fn removed_key(message: &jetstream::Message) -> Option<String> {
    let operation = message.headers.as_ref()?.get("KV-Operation")?.as_str();
    if operation != "DEL" && operation != "PURGE" {
        return None;
    }
    message
        .subject
        .as_str()
        .strip_prefix(&format!("$KV.{FEED_BUCKET}."))
        .map(str::to_owned)
}

/// One message of one of the feed's consumers: which consumer, and the message.
type Delivery = (usize, Result<jetstream::Message, String>);

/// The feed over JetStream: one ordered consumer per filter subject. NATS
/// permissions can allow a consumer only through the create-request subject
/// that names its one filter (`$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>`),
/// so a reader limited to some keys cannot use one consumer with several
/// filters. Interleaving the consumers is safe: each key is in exactly one
/// filter, and the state applies a message only when its position is newer
/// than what it holds for that key.
pub struct NatsFeed {
    /// The connection, which also carries the client's drift reports.
    pub client: async_nats::Client,
    messages: SelectAll<BoxStream<'static, Delivery>>,
    /// Per consumer, whether its initial state has been delivered.
    bootstrapped: Vec<bool>,
    /// Whether [`Item::Synced`] has been reported.
    synced: bool,
}

impl NatsFeed {
    async fn open(settings: &ClientSettings) -> Result<NatsFeed, String> {
        let options = settings
            .nats
            .connect_options("ecs-client", settings.connect_timeout)
            .await?;
        let servers = crate::transport::server_addrs(&settings.nats_url)?;
        let client = options.connect(servers).await.map_err(|e| e.to_string())?;
        let js = jetstream::new(client.clone());
        let mut subjects: Vec<String> = settings
            .namespaces
            .iter()
            .flat_map(|ns| namespace_filters(ns, &settings.tenants))
            .map(|f| format!("$KV.{FEED_BUCKET}.{f}"))
            .collect();
        subjects.sort();
        subjects.dedup();
        let stream = format!("KV_{FEED_BUCKET}");
        let mut messages = SelectAll::new();
        let mut bootstrapped = Vec::with_capacity(subjects.len());
        for (index, subject) in subjects.into_iter().enumerate() {
            let inbox = client.new_inbox();
            // A name puts the filter into the create request's subject, where
            // NATS permissions can check it; the inbox's unique last token
            // makes the name unique.
            let name = format!(
                "ecs-client-{}",
                inbox.rsplit('.').next().unwrap_or_default()
            );
            // The stream is addressed by name: reading its info would need a
            // permission that lists every key of the bucket.
            let consumer = js
                .create_consumer_on_stream(
                    push::OrderedConfig {
                        name: Some(name),
                        deliver_subject: inbox,
                        description: Some("ecs-client feed".to_owned()),
                        filter_subject: subject.clone(),
                        deliver_policy: DeliverPolicy::LastPerSubject,
                        ..Default::default()
                    },
                    &stream,
                )
                .await
                .map_err(|e| format!("the feed bucket {FEED_BUCKET} ({subject}): {e}"))?;
            bootstrapped.push(consumer.cached_info().num_pending == 0);
            let ordered = consumer.messages().await.map_err(|e| e.to_string())?;
            messages.push(
                ordered
                    .map(move |m| (index, m.map_err(|e| e.to_string())))
                    .boxed(),
            );
        }
        Ok(NatsFeed {
            client,
            messages,
            bootstrapped,
            synced: false,
        })
    }

    async fn next(&mut self) -> Option<Result<Item, String>> {
        if !self.synced && self.bootstrapped.iter().all(|done| *done) {
            // The initial state was empty or is complete: report it once.
            self.synced = true;
            return Some(Ok(Item::Synced));
        }
        let (index, message) = self.messages.next().await?;
        match message {
            Ok(message) => {
                let pending = message.info().map_or(0, |i| i.pending);
                if pending == 0 {
                    self.bootstrapped[index] = true;
                }
                if let Some(key) = removed_key(&message) {
                    return Some(Ok(Item::Removed {
                        key,
                        settled: self.synced && pending == 0,
                    }));
                }
                Some(Ok(Item::Message {
                    payload: message.payload.clone(),
                    settled: self.synced && pending == 0,
                }))
            }
            Err(error) => Some(Err(error)),
        }
    }
}

/// The HTTP client of the server's API: its connect timeout and, for an
/// `https://` server, the certificate authorities configured.
pub(crate) fn http_client(
    settings: &ClientSettings,
    http: &crate::HttpSettings,
) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder().connect_timeout(settings.connect_timeout);
    if let Some(ca) = &http.ca_file {
        let pem = std::fs::read(ca).map_err(|e| format!("CA file {}: {e}", ca.display()))?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("CA file {}: {e}", ca.display()))?;
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build().map_err(|e| e.to_string())
}

/// Reads `/v1/feed` server-sent events.
pub struct SseReader {
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    buffer: Vec<u8>,
    events: VecDeque<(String, String)>,
    synced: bool,
}

impl SseReader {
    async fn open(
        settings: &ClientSettings,
        http: &crate::HttpSettings,
        after: u64,
    ) -> Result<SseReader, String> {
        let namespaces: Vec<&str> = settings.namespaces.iter().map(|n| n.as_str()).collect();
        let url = format!(
            "{}/v1/feed?namespaces={}",
            http.base_url.trim_end_matches('/'),
            namespaces.join(",")
        );
        let client = http_client(settings, http)?;
        let mut request = client
            .get(&url)
            .bearer_auth(&http.token)
            .header("Accept", "text/event-stream");
        if after > 0 {
            // Another instance may serve the reconnection: it answers once
            // its projections have reached what this client already saw.
            request = request
                .header("Last-Event-ID", after.to_string())
                .header("ECS-Min-Position", after.to_string());
        }
        let response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            return Err(format!("{url}: {status}: {body}"));
        }
        Ok(SseReader {
            body: response.bytes_stream().boxed(),
            buffer: Vec::new(),
            events: VecDeque::new(),
            synced: false,
        })
    }

    async fn next(&mut self) -> Option<Result<Item, String>> {
        loop {
            if let Some((kind, data)) = self.events.pop_front() {
                match kind.as_str() {
                    "feed" => {
                        return Some(Ok(Item::Message {
                            payload: Bytes::from(data),
                            settled: self.synced && self.events.is_empty(),
                        }));
                    }
                    "erased" => {
                        #[derive(serde::Deserialize)]
                        struct Erased {
                            tenant: TenantId,
                        }
                        match serde_json::from_str::<Erased>(&data) {
                            Ok(erased) => {
                                return Some(Ok(Item::TenantErased {
                                    tenant: erased.tenant,
                                    settled: self.synced && self.events.is_empty(),
                                }));
                            }
                            Err(error) => {
                                tracing::warn!(%error, "skipping an erasure this client cannot read");
                                continue;
                            }
                        }
                    }
                    "synced" => {
                        self.synced = true;
                        return Some(Ok(Item::Synced));
                    }
                    _ => continue,
                }
            }
            match self.body.next().await? {
                Ok(chunk) => {
                    self.buffer.extend_from_slice(&chunk);
                    self.parse();
                }
                Err(error) => return Some(Err(error.to_string())),
            }
        }
    }

    /// Moves every complete event out of the buffer.
    fn parse(&mut self) {
        while let Some(end) = find_event_end(&self.buffer) {
            let block: Vec<u8> = self.buffer.drain(..end.0 + end.1).collect();
            let text = String::from_utf8_lossy(&block[..end.0]);
            let mut kind = "message".to_owned();
            let mut data: Vec<&str> = Vec::new();
            for line in text.lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    kind = value.trim().to_owned();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push(value.strip_prefix(' ').unwrap_or(value));
                }
            }
            if !data.is_empty() {
                self.events.push_back((kind, data.join("\n")));
            }
        }
    }
}

/// The end of the first event in `buffer`: its length and the separator's.
fn find_event_end(buffer: &[u8]) -> Option<(usize, usize)> {
    (0..buffer.len()).find_map(|i| {
        if buffer[i..].starts_with(b"\n\n") {
            Some((i, 2))
        } else if buffer[i..].starts_with(b"\r\n\r\n") {
            Some((i, 4))
        } else {
            None
        }
    })
}
