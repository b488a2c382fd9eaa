//! What of a stream message or an audit record is tenant data, and how it is
//! carried sealed.
//!
//! A message that belongs to a tenant (format version 2) carries that
//! tenant's data in one sealed section of the message framing
//! (`EventMessage::sealed`): the event fields that hold tenant data are taken
//! out of the events (a placeholder stays in their place) and sealed with the
//! message's metadata under the tenant's key. A reader opens the section and
//! puts the fields back; once the key is destroyed the placeholders are what
//! remains. Readers decide by the framing alone, never by looking inside
//! values, so a client's values are never mistaken for the store's own data.

use std::collections::HashMap;

use ecs_domain::TenantId;
use ecs_domain::audit::AuditRecord;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::keyring::{Keyring, KeyringError, erased_marker};
use crate::message::EventMessage;

/// The event fields holding tenant data, by aggregate type. They are found by
/// name anywhere in an event (never inside one another), so an event that
/// changes shape keeps them sealed.
fn sealed_fields(aggregate_type: &str) -> &'static [&'static str] {
    match aggregate_type {
        "layer" => &["values", "message"],
        "tenant" => &["name"],
        "token" => &["name"],
        "change-request" => &["values", "patch", "message", "reason"],
        _ => &[],
    }
}

/// What stays in a sealed field's place: readable by the event's type, and
/// all that is left once the key is destroyed.
fn placeholder(aggregate_type: &str, value: &Value) -> Value {
    match value {
        // A tenant's name is optional; an erased one is no name.
        Value::String(_) if aggregate_type == "tenant" => Value::Null,
        Value::String(_) => Value::String(String::new()),
        _ => erased_marker(),
    }
}

/// The tenant whose key seals a message, if it belongs to one. The erasure's
/// own message is not sealed: who erased the tenant, and when, stays.
pub fn owner(message: &EventMessage<Value>) -> Option<TenantId> {
    let token = match message.aggregate_type.as_str() {
        "layer" => Some(ecs_domain::layer::layer_id_tenant(&message.aggregate_id)),
        "tenant"
            if message
                .events
                .iter()
                .any(|e| e.get("TenantErased").is_some()) =>
        {
            None
        }
        "tenant" => Some(message.aggregate_id.as_str()),
        "change-request" => Some(ecs_domain::change_request::aggregate_id_tenant(
            &message.aggregate_id,
        )),
        "token" => return message.events.iter().find_map(role_tenant),
        _ => None,
    }?;
    if token == "_" {
        return None;
    }
    TenantId::parse(token).ok()
}

/// The tenant a token event's role is bound to.
fn role_tenant(value: &Value) -> Option<TenantId> {
    match value {
        Value::Object(map) => map
            .get("role")
            .and_then(|role| role.get("tenant"))
            .and_then(Value::as_str)
            .and_then(|t| TenantId::parse(t).ok())
            .or_else(|| map.values().find_map(role_tenant)),
        Value::Array(items) => items.iter().find_map(role_tenant),
        _ => None,
    }
}

/// An RFC 6901 reference token.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Moves every field named in `names` (not null) out of `value` into `out`,
/// keyed by its JSON pointer, leaving its placeholder.
fn take_fields(
    value: &mut Value,
    names: &[&str],
    aggregate_type: &str,
    pointer: &str,
    out: &mut Map<String, Value>,
) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                let path = format!("{pointer}/{}", escape(key));
                if names.contains(&key.as_str()) {
                    if !child.is_null() {
                        let stays = placeholder(aggregate_type, child);
                        out.insert(path, std::mem::replace(child, stays));
                    }
                } else {
                    take_fields(child, names, aggregate_type, &path, out);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                take_fields(item, names, aggregate_type, &format!("{pointer}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// What a message's sealed section holds.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SealedMessage {
    /// Event fields by JSON pointer into the message's `events`.
    fields: Map<String, Value>,
    metadata: HashMap<String, String>,
}

/// What a sealed section is bound to: it opens only in its own message.
fn message_context(message: &EventMessage<Value>) -> Vec<u8> {
    format!(
        "ecs-event/{}/{}/{}",
        message.aggregate_type, message.aggregate_id, message.revision
    )
    .into_bytes()
}

/// What of a refused attempt's record is tenant data.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SealedRecord {
    reason: Option<String>,
    request_id: Option<String>,
    correlation_id: Option<String>,
    message: Option<String>,
    before: Option<Value>,
    after: Option<Value>,
}

impl SealedRecord {
    fn take(record: &mut AuditRecord) -> SealedRecord {
        SealedRecord {
            reason: record.reason.take(),
            request_id: record.request_id.take(),
            correlation_id: record.correlation_id.take(),
            message: record.message.take(),
            before: record.before.take(),
            after: record.after.take(),
        }
    }

    fn is_empty(&self) -> bool {
        self.reason.is_none()
            && self.request_id.is_none()
            && self.correlation_id.is_none()
            && self.message.is_none()
            && self.before.is_none()
            && self.after.is_none()
    }

    fn put_back(self, record: &mut AuditRecord) {
        record.reason = self.reason;
        record.request_id = self.request_id;
        record.correlation_id = self.correlation_id;
        record.message = self.message;
        record.before = self.before;
        record.after = self.after;
    }
}

fn record_context(record: &AuditRecord) -> Vec<u8> {
    format!("ecs-audit/{}", record.id).into_bytes()
}

fn corrupt(error: impl std::fmt::Display) -> KeyringError {
    KeyringError::Corrupt(error.to_string())
}

impl Keyring {
    /// Seals the tenant data of a message about to be stored: its events'
    /// tenant fields and its metadata. Refuses a message of an erased tenant.
    pub async fn seal_message(
        &self,
        message: &mut EventMessage<Value>,
    ) -> Result<(), KeyringError> {
        let Some(tenant) = owner(message) else {
            return Ok(());
        };
        let names = sealed_fields(&message.aggregate_type);
        let mut content = SealedMessage::default();
        for (i, event) in message.events.iter_mut().enumerate() {
            take_fields(
                event,
                names,
                &message.aggregate_type,
                &format!("/{i}"),
                &mut content.fields,
            );
        }
        content.metadata = std::mem::take(&mut message.metadata);
        if content.fields.is_empty() && content.metadata.is_empty() {
            return Ok(());
        }
        let plaintext = serde_json::to_vec(&content).map_err(corrupt)?;
        let context = message_context(message);
        message.sealed = Some(self.seal(&tenant, &plaintext, &context).await?);
        Ok(())
    }

    /// Opens a stored message's sealed section, putting its fields back;
    /// when the tenant's key was destroyed, the placeholders stay.
    pub async fn open_message(
        &self,
        message: &mut EventMessage<Value>,
    ) -> Result<(), KeyringError> {
        if message.v < 2 {
            let aggregate_type = message.aggregate_type.clone();
            for event in &mut message.events {
                legacy::open_event(self, &aggregate_type, event).await?;
            }
            return Ok(());
        }
        let Some(sealed) = message.sealed.take() else {
            return Ok(());
        };
        let Some(plaintext) = self.open(&sealed, &message_context(message)).await? else {
            return Ok(());
        };
        let content: SealedMessage = serde_json::from_slice(&plaintext).map_err(corrupt)?;
        let mut events = Value::Array(std::mem::take(&mut message.events));
        for (pointer, value) in content.fields {
            *events
                .pointer_mut(&pointer)
                .ok_or_else(|| corrupt(format!("no field {pointer} to open")))? = value;
        }
        if let Value::Array(events) = events {
            message.events = events;
        }
        message.metadata = content.metadata;
        Ok(())
    }

    /// Seals the tenant data of a refused attempt's record with `tenant`'s
    /// key. A tenant without a key holds no sealed data, and its record stays
    /// as it is; an erased tenant's data is dropped, never stored in clear
    /// (as it is when the key store cannot be reached: the error says so).
    pub async fn seal_record(
        &self,
        record: &mut AuditRecord,
        tenant: &TenantId,
    ) -> Result<(), KeyringError> {
        let content = SealedRecord::take(record);
        if content.is_empty() {
            return Ok(());
        }
        let plaintext = serde_json::to_vec(&content).map_err(corrupt)?;
        match self
            .seal_if_keyed(tenant, &plaintext, &record_context(record))
            .await
        {
            Ok(Some(sealed)) => record.sealed = Some(sealed),
            Ok(None) => content.put_back(record),
            Err(KeyringError::Erased(_)) => {}
            Err(error) => return Err(error),
        }
        Ok(())
    }

    /// Opens a record's sealed section; nothing when the key was destroyed.
    pub async fn open_record(&self, record: &mut AuditRecord) -> Result<(), KeyringError> {
        let Some(sealed) = record.sealed.take() else {
            return Ok(());
        };
        if let Some(plaintext) = self.open(&sealed, &record_context(record)).await? {
            let content: SealedRecord = serde_json::from_slice(&plaintext).map_err(corrupt)?;
            content.put_back(record);
        }
        Ok(())
    }
}

/// Format version 1 sealed values in place, inside the events; kept to read
/// the messages written then. Version 2 messages never go through here.
mod legacy {
    use ecs_domain::TenantId;
    use ecs_domain::sealed::Sealed;
    use serde_json::Value;

    use super::corrupt;
    use crate::keyring::{Keyring, KeyringError, erased_marker};

    /// The sealed value a version 1 value stands for: exactly
    /// `{"$sealed": {"v": 1, "tenant", "nonce", "ct"}}`. Anything else is a
    /// client's value, even with a `$sealed` key: version 1 took those for
    /// ciphertext and could not project them, and reading them as data now
    /// repairs the layers they blocked.
    fn legacy_sealed(value: &Value) -> Option<Sealed> {
        let outer = value.as_object().filter(|o| o.len() == 1)?;
        let inner = outer.get("$sealed")?.as_object().filter(|i| i.len() == 4)?;
        if inner.get("v")?.as_u64()? != 1 {
            return None;
        }
        let text = |name: &str| inner.get(name)?.as_str().map(str::to_owned);
        Some(Sealed {
            tenant: TenantId::parse(text("tenant")?).ok()?,
            nonce: text("nonce")?,
            ct: text("ct")?,
        })
    }

    /// Opens a version 1 value in place; `Null` once its key was destroyed.
    async fn open_value(keyring: &Keyring, value: &mut Value) -> Result<(), KeyringError> {
        let Some(sealed) = legacy_sealed(value) else {
            return Ok(());
        };
        *value = match keyring.open(&sealed, b"").await? {
            Some(plain) => serde_json::from_slice(&plain).map_err(corrupt)?,
            None => Value::Null,
        };
        Ok(())
    }

    /// Opens what version 1 sealed in one event: layer and change-request
    /// values, tenant names (`"$sealed:<json>"`).
    pub(crate) async fn open_event(
        keyring: &Keyring,
        aggregate_type: &str,
        event: &mut Value,
    ) -> Result<(), KeyringError> {
        let erased_if_null = |value: &mut Value| {
            if value.is_null() {
                *value = erased_marker();
            }
        };
        match aggregate_type {
            "layer" => {
                if let Some(values) = event.pointer_mut("/LayerChanged/values") {
                    open_value(keyring, values).await?;
                    erased_if_null(values);
                }
            }
            "tenant" => {
                if let Some(name) = event.pointer_mut("/TenantDefined/name")
                    && let Some(sealed) = name
                        .as_str()
                        .and_then(|n| n.strip_prefix("$sealed:"))
                        .and_then(|json| serde_json::from_str::<Value>(json).ok())
                        .filter(|value| legacy_sealed(value).is_some())
                {
                    let mut sealed = sealed;
                    open_value(keyring, &mut sealed).await?;
                    *name = sealed;
                }
            }
            "change-request" => {
                for field in ["values", "patch"] {
                    if let Some(values) =
                        event.pointer_mut(&format!("/ChangeRequestOpened/change/{field}"))
                    {
                        open_value(keyring, values).await?;
                        erased_if_null(values);
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn message(
        aggregate_type: &str,
        aggregate_id: &str,
        events: Vec<Value>,
    ) -> EventMessage<Value> {
        EventMessage {
            v: crate::message::FORMAT_VERSION,
            command_id: "c".into(),
            aggregate_type: aggregate_type.into(),
            aggregate_id: aggregate_id.into(),
            revision: 1,
            at: time::OffsetDateTime::UNIX_EPOCH,
            actor: "admin".into(),
            events,
            metadata: HashMap::new(),
            sealed: None,
        }
    }

    #[test]
    fn a_message_belongs_to_the_tenant_its_id_or_role_names() {
        let owner_of = |t: &str, id: &str, events: Vec<Value>| {
            owner(&message(t, id, events)).map(|t| t.to_string())
        };
        assert_eq!(
            owner_of("layer", "ns._._.acme._", vec![]).as_deref(),
            Some("acme")
        );
        assert_eq!(owner_of("layer", "ns.prod._._._", vec![]), None);
        assert_eq!(
            owner_of("change-request", "acme.123", vec![]).as_deref(),
            Some("acme")
        );
        assert_eq!(owner_of("change-request", "_.123", vec![]), None);
        assert_eq!(
            owner_of("tenant", "acme", vec![json!({"TenantDefined": {}})]).as_deref(),
            Some("acme")
        );
        assert_eq!(
            owner_of("tenant", "acme", vec![json!({"TenantErased": {}})]),
            None
        );
        let issued = json!({"TokenIssued": {"name": "n", "role": {"role": "tenant-admin", "tenant": "acme"}}});
        assert_eq!(
            owner_of("token", "t1", vec![issued]).as_deref(),
            Some("acme")
        );
        let admin = json!({"TokenIssued": {"name": "n", "role": {"role": "admin"}}});
        assert_eq!(owner_of("token", "t1", vec![admin]), None);
        assert_eq!(owner_of("namespace", "acme", vec![]), None);
    }

    #[test]
    fn tenant_fields_are_taken_wherever_they_are_and_leave_placeholders() {
        let mut event = json!({"ChangeRequestOpened": {
            "scope": {"tenant": "acme"},
            "change": {"kind": "replace", "values": {"$sealed": 1}, "lock": null},
            "message": "why",
            "reason": null
        }});
        let mut out = Map::new();
        take_fields(
            &mut event,
            sealed_fields("change-request"),
            "change-request",
            "/0",
            &mut out,
        );
        assert_eq!(
            out["/0/ChangeRequestOpened/change/values"],
            json!({"$sealed": 1})
        );
        assert_eq!(out["/0/ChangeRequestOpened/message"], json!("why"));
        assert!(
            !out.contains_key("/0/ChangeRequestOpened/reason"),
            "nothing to hide in null"
        );
        assert_eq!(
            event["ChangeRequestOpened"]["change"]["values"],
            erased_marker()
        );
        assert_eq!(event["ChangeRequestOpened"]["message"], "");
        assert_eq!(
            event["ChangeRequestOpened"]["scope"],
            json!({"tenant": "acme"})
        );

        let mut tenant = json!({"TenantDefined": {"id": "acme", "name": "Acme"}});
        let mut out = Map::new();
        take_fields(
            &mut tenant,
            sealed_fields("tenant"),
            "tenant",
            "/0",
            &mut out,
        );
        assert_eq!(tenant["TenantDefined"]["name"], Value::Null);
        assert_eq!(out["/0/TenantDefined/name"], "Acme");
    }

    #[test]
    fn pointers_escape_keys() {
        assert_eq!(escape("a/b~c"), "a~1b~0c");
    }
}
