//! A cqrs-es `EventStore` on NATS JetStream.

use std::collections::HashMap;
use std::marker::PhantomData;

use async_nats::HeaderMap;
use async_nats::jetstream::{
    self, consumer, context::PublishErrorKind, stream::DirectGetErrorKind,
};
use async_trait::async_trait;
use cqrs_es::{Aggregate, AggregateContext, AggregateError, EventEnvelope, EventStore};
use ecs_domain::change_request::{ChangeRequest, ChangeRequestEvent};
use ecs_domain::{DomainError, Layer, Namespace, Tenant, Token, TokenEvent};
use futures::StreamExt;
use time::OffsetDateTime;

use std::sync::Arc;

use crate::keyring::{Keyring, KeyringError};
use crate::message::{EventMessage, FORMAT_VERSION};

/// Metadata keys the store reads on commit and writes on the envelopes it returns.
pub mod meta {
    /// The command id, sent as `Nats-Msg-Id`.
    pub const COMMAND_ID: &str = "command_id";
    pub const ACTOR: &str = "actor";
    /// The stream sequence (global position) of the message.
    pub const POSITION: &str = "position";
    /// The aggregate revision after the message.
    pub const REVISION: &str = "revision";
    /// `"true"` when JetStream recognised the command id as already applied.
    pub const DUPLICATE: &str = "duplicate";
    /// Recorded with the message for the audit log: the actor's role name,
    /// and the request and correlation ids of the HTTP request.
    pub const ROLE: &str = "role";
    pub const REQUEST_ID: &str = "request_id";
    pub const CORRELATION_ID: &str = "correlation_id";
}

/// An aggregate whose events go to subjects that carry a tenant token. Its
/// errors include the domain's refusals (an erased tenant's data is refused
/// by the store itself).
pub trait Addressed:
    Aggregate<Error: Send + Sync + 'static + From<ecs_domain::DomainError>>
{
    /// The tenant the aggregate belongs to, or `_` for platform-level ones.
    fn tenant_token(aggregate_id: &str) -> &str;

    /// Whether the event carries the aggregate's complete state. Every event
    /// this version writes does; some written by older versions do not, and
    /// an aggregate whose last message holds one is loaded by a full replay.
    fn restores_alone(_event: &Self::Event) -> bool {
        true
    }
}

impl Addressed for Namespace {
    fn tenant_token(_: &str) -> &str {
        "_"
    }
}

impl Addressed for Tenant {
    fn tenant_token(aggregate_id: &str) -> &str {
        aggregate_id
    }
}

impl Addressed for Token {
    /// Tokens are platform-level: who holds which role is not tenant data.
    fn tenant_token(_: &str) -> &str {
        "_"
    }

    fn restores_alone(event: &TokenEvent) -> bool {
        event.state().is_some()
    }
}

impl Addressed for ChangeRequest {
    /// Change request ids are `<tenant or _>.<id>`.
    fn tenant_token(aggregate_id: &str) -> &str {
        ecs_domain::change_request::aggregate_id_tenant(aggregate_id)
    }

    fn restores_alone(event: &ChangeRequestEvent) -> bool {
        event.state().is_some()
    }
}

impl Addressed for Layer {
    /// Layer ids are `namespace.env.service.tenant.edition`.
    fn tenant_token(aggregate_id: &str) -> &str {
        ecs_domain::layer::layer_id_tenant(aggregate_id)
    }
}

/// The subject of an aggregate's messages.
pub fn subject<A: Addressed>(aggregate_id: &str) -> String {
    format!(
        "ecs.events.{}.{}.{aggregate_id}",
        A::tenant_token(aggregate_id),
        A::aggregate_type()
    )
}

/// The loaded state of one aggregate and where its subject stands.
pub struct JetStreamContext<A> {
    pub aggregate_id: String,
    pub aggregate: A,
    pub revision: u64,
    /// The stream sequence of the aggregate's last message, 0 when none.
    pub last_subject_sequence: u64,
}

impl<A: Aggregate> AggregateContext<A> for JetStreamContext<A> {
    fn aggregate(&self) -> &A {
        &self.aggregate
    }
}

/// The event store for one aggregate type.
pub struct JetStreamStore<A> {
    js: jetstream::Context,
    stream: String,
    /// Seals tenant data on append and opens it on load.
    keyring: Option<Arc<Keyring>>,
    /// The largest message the NATS server takes (its `max_payload`).
    max_message: Option<usize>,
    _aggregate: PhantomData<fn() -> A>,
}

impl<A> Clone for JetStreamStore<A> {
    fn clone(&self) -> Self {
        JetStreamStore {
            js: self.js.clone(),
            stream: self.stream.clone(),
            keyring: self.keyring.clone(),
            max_message: self.max_message,
            _aggregate: PhantomData,
        }
    }
}

/// A command whose message would exceed the largest message the NATS server
/// takes: refused before it is sent, as the client's input is to blame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the change makes a message of {size} bytes; the store takes at most {limit}")]
pub struct MessageTooLarge {
    pub size: usize,
    pub limit: usize,
}

impl From<MessageTooLarge> for ecs_domain::DomainError {
    fn from(too_large: MessageTooLarge) -> Self {
        ecs_domain::DomainError::TooLarge(format!(
            "{too_large} (the NATS server's max_payload; tenant data grows by a third when sealed)"
        ))
    }
}

fn unavailable<E: std::error::Error>(error: impl std::fmt::Display) -> AggregateError<E> {
    AggregateError::DatabaseConnectionError(error.to_string().into())
}

fn undecodable<E: std::error::Error>(error: serde_json::Error) -> AggregateError<E> {
    AggregateError::DeserializationError(Box::new(error))
}

impl<A: Addressed> JetStreamStore<A> {
    pub fn new(
        js: jetstream::Context,
        stream: impl Into<String>,
        keyring: Option<Arc<Keyring>>,
    ) -> Self {
        JetStreamStore {
            js,
            stream: stream.into(),
            keyring,
            max_message: None,
            _aggregate: PhantomData,
        }
    }

    /// Refuses messages larger than `limit` bytes (the server's
    /// `max_payload`) with [`MessageTooLarge`] instead of sending them.
    pub fn with_max_message(mut self, limit: Option<usize>) -> Self {
        self.max_message = limit;
        self
    }

    /// Decodes a stored message, opening its tenant data.
    async fn decode(
        &self,
        payload: &[u8],
    ) -> Result<EventMessage<A::Event>, AggregateError<A::Error>> {
        let mut message: EventMessage<serde_json::Value> =
            serde_json::from_slice(payload).map_err(undecodable)?;
        if let Some(keyring) = &self.keyring {
            keyring
                .open_message(&mut message)
                .await
                .map_err(unavailable)?;
        }
        let events = message
            .events
            .iter()
            .map(|e| serde_json::from_value(e.clone()))
            .collect::<Result<Vec<A::Event>, _>>()
            .map_err(undecodable)?;
        Ok(EventMessage {
            v: message.v,
            command_id: message.command_id,
            aggregate_type: message.aggregate_type,
            aggregate_id: message.aggregate_id,
            revision: message.revision,
            at: message.at,
            actor: message.actor,
            events,
            metadata: message.metadata,
            sealed: None,
        })
    }

    async fn stream(&self) -> Result<jetstream::stream::Stream<()>, AggregateError<A::Error>> {
        self.js
            .get_stream_no_info(&self.stream)
            .await
            .map_err(unavailable)
    }

    /// The aggregate's last message, if it has one.
    async fn last_message(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<(u64, EventMessage<A::Event>)>, AggregateError<A::Error>> {
        let stream = self.stream().await?;
        match stream
            .direct_get_last_for_subject(subject::<A>(aggregate_id))
            .await
        {
            Ok(message) => {
                let decoded = self.decode(&message.payload).await?;
                Ok(Some((message.sequence, decoded)))
            }
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// The message at a stream position.
    async fn message_at(
        &self,
        position: u64,
    ) -> Result<EventMessage<A::Event>, AggregateError<A::Error>> {
        let message = self
            .stream()
            .await?
            .direct_get(position)
            .await
            .map_err(unavailable)?;
        self.decode(&message.payload).await
    }
}

#[async_trait]
impl<A: Addressed> EventStore<A> for JetStreamStore<A> {
    type AC = JetStreamContext<A>;

    /// Every event of one aggregate, read through a consumer filtered to its
    /// subject (never the whole stream).
    async fn load_events(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        let Some((last, _)) = self.last_message(aggregate_id).await? else {
            return Ok(vec![]);
        };
        let consumer = self
            .stream()
            .await?
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: subject::<A>(aggregate_id),
                deliver_policy: consumer::DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(unavailable)?;
        let mut messages = consumer.messages().await.map_err(unavailable)?;
        let mut envelopes = Vec::new();
        while let Some(message) = messages.next().await {
            let message = message.map_err(unavailable)?;
            let position = message.info().map_err(unavailable)?.stream_sequence;
            let decoded = self.decode(&message.payload).await?;
            let first = decoded.revision as usize + 1 - decoded.events.len();
            for (i, event) in decoded.events.into_iter().enumerate() {
                envelopes.push(EventEnvelope {
                    aggregate_id: aggregate_id.to_owned(),
                    sequence: first + i,
                    payload: event,
                    metadata: HashMap::from([
                        (meta::POSITION.to_owned(), position.to_string()),
                        (meta::ACTOR.to_owned(), decoded.actor.clone()),
                    ]),
                });
            }
            if position >= last {
                break;
            }
        }
        Ok(envelopes)
    }

    /// Every event carries its aggregate's complete state, so the last message
    /// alone restores the aggregate: one direct get, however long its history.
    /// A last message written by an older version without the complete state
    /// falls back to replaying the aggregate's messages.
    async fn load_aggregate(
        &self,
        aggregate_id: &str,
    ) -> Result<JetStreamContext<A>, AggregateError<A::Error>> {
        let mut context = JetStreamContext {
            aggregate_id: aggregate_id.to_owned(),
            aggregate: A::default(),
            revision: 0,
            last_subject_sequence: 0,
        };
        if let Some((sequence, message)) = self.last_message(aggregate_id).await? {
            if message.events.iter().all(A::restores_alone) {
                for event in message.events {
                    context.aggregate.apply(event);
                }
            } else {
                for envelope in self.load_events(aggregate_id).await? {
                    context.aggregate.apply(envelope.payload);
                }
            }
            context.revision = message.revision;
            context.last_subject_sequence = sequence;
        }
        Ok(context)
    }

    async fn commit(
        &self,
        events: Vec<A::Event>,
        context: JetStreamContext<A>,
        mut metadata: HashMap<String, String>,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        if events.is_empty() {
            return Ok(vec![]);
        }
        let command_id = metadata
            .remove(meta::COMMAND_ID)
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let actor = metadata.remove(meta::ACTOR).unwrap_or_default();
        let revision = context.revision + events.len() as u64;
        let at = OffsetDateTime::now_utc();
        let mut stored = EventMessage {
            v: FORMAT_VERSION,
            command_id: command_id.clone(),
            aggregate_type: A::aggregate_type(),
            aggregate_id: context.aggregate_id.clone(),
            revision,
            at,
            actor: actor.clone(),
            events: events
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<Vec<_>, _>>()
                .map_err(undecodable)?,
            metadata: metadata.clone(),
            sealed: None,
        };
        if let Some(keyring) = &self.keyring {
            keyring
                .seal_message(&mut stored)
                .await
                .map_err(|error| match error {
                    KeyringError::Erased(tenant) => AggregateError::UserError(
                        DomainError::TenantErased(tenant.to_string()).into(),
                    ),
                    other => unavailable(other),
                })?;
        }
        let message = EventMessage {
            v: FORMAT_VERSION,
            command_id: command_id.clone(),
            aggregate_type: A::aggregate_type(),
            aggregate_id: context.aggregate_id.clone(),
            revision,
            at,
            actor,
            events,
            metadata,
            sealed: None,
        };
        let payload = serde_json::to_vec(&stored).map_err(undecodable)?;
        if let Some(limit) = self.max_message
            && payload.len() > limit
        {
            return Err(AggregateError::UnexpectedError(Box::new(MessageTooLarge {
                size: payload.len(),
                limit,
            })));
        }
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", command_id.as_str());
        headers.insert(
            "Nats-Expected-Last-Subject-Sequence",
            context.last_subject_sequence.to_string().as_str(),
        );
        crate::trace::inject(&mut headers);
        let ack = self
            .js
            .publish_with_headers(subject::<A>(&context.aggregate_id), headers, payload.into())
            .await
            .map_err(unavailable)?
            .await;
        let ack = match ack {
            Ok(ack) => ack,
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                return Err(AggregateError::AggregateConflict);
            }
            Err(e) => return Err(unavailable(e)),
        };
        // A duplicate answers with the original message's position; report
        // what that message recorded, not what this attempt would have.
        let (message, duplicate) = if ack.duplicate {
            (self.message_at(ack.sequence).await?, true)
        } else {
            (message, false)
        };
        let first = message.revision as usize + 1 - message.events.len();
        let aggregate_id = message.aggregate_id.clone();
        let actor = message.actor.clone();
        let revision = message.revision;
        Ok(message
            .events
            .into_iter()
            .enumerate()
            .map(|(i, payload)| EventEnvelope {
                aggregate_id: aggregate_id.clone(),
                sequence: first + i,
                payload,
                metadata: HashMap::from([
                    (meta::POSITION.to_owned(), ack.sequence.to_string()),
                    (meta::REVISION.to_owned(), revision.to_string()),
                    (meta::ACTOR.to_owned(), actor.clone()),
                    (meta::DUPLICATE.to_owned(), duplicate.to_string()),
                ]),
            })
            .collect())
    }
}
