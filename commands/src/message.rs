//! The wire format of one message in the events stream (format version 2).
//!
//! Version 2 carries a tenant's data in the message's `sealed` section
//! (`crate::sealing`); version 1 sealed values in place inside the events and
//! is still read.

use std::collections::HashMap;

use cqrs_es::Aggregate;
use ecs_domain::change_request::{ChangeRequest, ChangeRequestEvent};
use ecs_domain::{
    Layer, LayerEvent, Namespace, NamespaceEvent, Tenant, TenantEvent, Token, TokenEvent,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

/// The current message format version.
pub const FORMAT_VERSION: u32 = 2;

/// One accepted command: every event it produced, and who and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventMessage<E> {
    /// The message format version.
    pub v: u32,
    pub command_id: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// The aggregate's revision after the last event of this message.
    pub revision: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub actor: String,
    pub events: Vec<E>,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub metadata: HashMap<String, String>,
    /// The tenant data of this message (event fields and metadata), sealed
    /// with the key of the tenant it belongs to. Until it is opened, those
    /// event fields hold placeholders and the metadata is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<ecs_domain::sealed::Sealed>,
}

/// The events of one message, typed by the aggregate they belong to.
#[derive(Debug, Clone, PartialEq)]
pub enum AnyEvents {
    Namespace(Vec<NamespaceEvent>),
    Tenant(Vec<TenantEvent>),
    Layer(Vec<LayerEvent>),
    Token(Vec<TokenEvent>),
    ChangeRequest(Vec<ChangeRequestEvent>),
    /// An aggregate type this version does not know; readers skip it.
    Unknown(String),
}

/// A decoding failure of a stream message.
#[derive(Debug, thiserror::Error)]
#[error("undecodable event message: {0}")]
pub struct DecodeError(#[from] serde_json::Error);

impl EventMessage<Value> {
    /// Decodes a raw message payload.
    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        Ok(serde_json::from_slice(payload)?)
    }

    /// The typed events of this message.
    pub fn typed_events(&self) -> Result<AnyEvents, DecodeError> {
        fn typed<E: serde::de::DeserializeOwned>(events: &[Value]) -> Result<Vec<E>, DecodeError> {
            events
                .iter()
                .map(|e| serde_json::from_value(e.clone()).map_err(DecodeError))
                .collect()
        }
        let t = self.aggregate_type.as_str();
        Ok(if t == Namespace::aggregate_type() {
            AnyEvents::Namespace(typed(&self.events)?)
        } else if t == Tenant::aggregate_type() {
            AnyEvents::Tenant(typed(&self.events)?)
        } else if t == Layer::aggregate_type() {
            AnyEvents::Layer(typed(&self.events)?)
        } else if t == Token::aggregate_type() {
            AnyEvents::Token(typed(&self.events)?)
        } else if t == ChangeRequest::aggregate_type() {
            AnyEvents::ChangeRequest(typed(&self.events)?)
        } else {
            AnyEvents::Unknown(t.to_owned())
        })
    }
}

impl AnyEvents {
    /// Applies the events to an in-memory configuration, as a replay does.
    pub fn apply_to(&self, config: &mut ecs_domain::ports::MemoryConfig) {
        match self {
            AnyEvents::Namespace(events) => {
                for NamespaceEvent::NamespaceDefined {
                    name,
                    revision,
                    kind,
                    description,
                    schema,
                    approval,
                } in events
                {
                    config.put_namespace(ecs_domain::NamespaceState {
                        name: name.clone(),
                        kind: *kind,
                        description: description.clone(),
                        schema: schema.clone(),
                        approval: approval.clone(),
                        revision: *revision,
                    });
                }
            }
            AnyEvents::Tenant(events) => {
                for event in events {
                    match event {
                        TenantEvent::TenantDefined {
                            id,
                            revision,
                            name,
                            edition,
                        } => config.put_tenant(ecs_domain::TenantState {
                            id: id.clone(),
                            name: name.clone(),
                            edition: edition.clone(),
                            revision: *revision,
                            erased: false,
                        }),
                        TenantEvent::TenantErased { id, .. } => {
                            // An erased tenant no longer resolves, and its
                            // layers hold nothing readable.
                            config.tenants.remove(id);
                            for layer in config.layers.values_mut() {
                                if layer.scope.tenant.as_ref() == Some(id) {
                                    layer.values = crate::keyring::erased_marker();
                                }
                            }
                        }
                    }
                }
            }
            AnyEvents::Layer(events) => {
                for event in events {
                    config.put_layer(event.state());
                }
            }
            AnyEvents::Token(_) | AnyEvents::ChangeRequest(_) | AnyEvents::Unknown(_) => {}
        }
    }
}

/// Why a stored message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The message is malformed: skip it.
    #[error(transparent)]
    Undecodable(#[from] DecodeError),
    /// Its tenant data could not be opened.
    #[error(transparent)]
    Keyring(#[from] crate::keyring::KeyringError),
}

impl ReadError {
    /// Whether retrying later may succeed (the key store is unreachable).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ReadError::Keyring(crate::keyring::KeyringError::Unavailable(_))
        )
    }
}

/// Decodes a stored message, opens its tenant data (erased data stays its
/// placeholder) and types its events.
///
/// Reading a tenant's erasure destroys its key in the keyring (idempotent):
/// whichever server erased the tenant, no reader that has seen the erasure
/// opens the tenant's data again, not even from a key it had cached.
pub async fn read_message(
    payload: &[u8],
    keyring: Option<&crate::keyring::Keyring>,
) -> Result<(EventMessage<Value>, AnyEvents), ReadError> {
    let mut message = EventMessage::decode(payload)?;
    if let Some(keyring) = keyring {
        keyring.open_message(&mut message).await?;
    }
    let events = message.typed_events()?;
    if let (Some(keyring), AnyEvents::Tenant(tenant_events)) = (keyring, &events) {
        for event in tenant_events {
            if let TenantEvent::TenantErased { id, .. } = event {
                keyring.destroy(id.as_str()).await?;
            }
        }
    }
    Ok((message, events))
}
