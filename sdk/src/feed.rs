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
use futures::stream::BoxStream;

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
    Nats {
        messages: Box<push::Ordered>,
        /// Messages still pending from the initial state.
        remaining: u64,
    },
    Http(SseReader),
}

impl Feed {
    /// Opens the feed; with HTTP, resuming after position `after`.
    pub async fn open(settings: &ClientSettings, after: u64) -> Result<Feed, String> {
        match &settings.http {
            Some(http) => SseReader::open(settings, http, after).await.map(Feed::Http),
            None => open_nats(settings).await,
        }
    }

    pub async fn next(&mut self) -> Option<Result<Item, String>> {
        match self {
            Feed::Nats {
                messages,
                remaining,
            } => {
                if *remaining == 0 {
                    // The initial state was empty or is complete: report it once.
                    *remaining = u64::MAX;
                    return Some(Ok(Item::Synced));
                }
                match messages.next().await? {
                    Ok(message) => {
                        let pending = message.info().map_or(0, |i| i.pending);
                        if *remaining != u64::MAX && pending == 0 {
                            *remaining = 0;
                        }
                        if let Some(key) = removed_key(&message) {
                            return Some(Ok(Item::Removed {
                                key,
                                settled: pending == 0,
                            }));
                        }
                        Some(Ok(Item::Message {
                            payload: message.payload.clone(),
                            settled: pending == 0,
                        }))
                    }
                    Err(error) => Some(Err(error.to_string())),
                }
            }
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

async fn open_nats(settings: &ClientSettings) -> Result<Feed, String> {
    let client = async_nats::ConnectOptions::new()
        .name("ecs-client")
        .connection_timeout(settings.connect_timeout)
        .connect(&settings.nats_url)
        .await
        .map_err(|e| e.to_string())?;
    let inbox = client.new_inbox();
    let js = jetstream::new(client);
    let stream = js
        .get_stream(format!("KV_{FEED_BUCKET}"))
        .await
        .map_err(|e| format!("the feed bucket {FEED_BUCKET}: {e}"))?;
    let mut subjects: Vec<String> = settings
        .namespaces
        .iter()
        .flat_map(namespace_filters)
        .map(|f| format!("$KV.{FEED_BUCKET}.{f}"))
        .collect();
    subjects.sort();
    subjects.dedup();
    let consumer = stream
        .create_consumer(push::OrderedConfig {
            deliver_subject: inbox,
            description: Some("ecs-client feed".to_owned()),
            filter_subjects: subjects,
            deliver_policy: DeliverPolicy::LastPerSubject,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    let remaining = consumer.cached_info().num_pending;
    let messages = consumer.messages().await.map_err(|e| e.to_string())?;
    Ok(Feed::Nats {
        messages: Box::new(messages),
        remaining,
    })
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
        let client = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .build()
            .map_err(|e| e.to_string())?;
        let mut request = client
            .get(&url)
            .bearer_auth(&http.token)
            .header("Accept", "text/event-stream");
        if after > 0 {
            request = request.header("Last-Event-ID", after.to_string());
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
