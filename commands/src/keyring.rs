//! Per-tenant encryption of tenant data in the immutable events stream, so a
//! tenant can be erased by destroying its key ("crypto-shredding").
//!
//! Each tenant has a random 256-bit data key, kept in the key-value bucket
//! `ecs-tenant-keys` (unlike the events stream, keys can be deleted), wrapped
//! with the master key (`ECS_MASTER_KEY`) when one is configured. Sealed values
//! are AES-256-GCM ciphertexts in place of the plaintext:
//! `{"$sealed": {"v": 1, "tenant": "acme", "nonce": "<b64>", "ct": "<b64>"}}`.
//! Once the key is destroyed, sealed values open as [`Opened::Erased`].

use std::collections::HashMap;
use std::sync::Mutex;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use async_nats::jetstream::{self, kv};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;
use serde_json::{Value, json};

/// The bucket holding tenant data keys.
pub const KEYS_BUCKET: &str = "ecs-tenant-keys";

/// What a possibly sealed value opens to.
#[derive(Debug, Clone, PartialEq)]
pub enum Opened {
    /// The plaintext (or a value that was never sealed).
    Plain(Value),
    /// The tenant's key was destroyed: the value is gone for good.
    Erased,
}

/// The marker that replaces erased values in projections.
pub fn erased_marker() -> Value {
    json!({"$erased": true})
}

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("the key store is unavailable: {0}")]
    Unavailable(String),
    #[error("a sealed value cannot be opened: {0}")]
    Corrupt(String),
}

/// Tenant data keys, cached in memory.
pub struct Keyring {
    store: kv::Store,
    master: Option<Aes256Gcm>,
    cache: Mutex<HashMap<String, Option<[u8; 32]>>>,
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

impl Keyring {
    /// Opens (creating when absent) the key bucket. `master_key` is 32 bytes
    /// as 64 hex characters; without it data keys are stored unwrapped.
    pub async fn connect(
        js: &jetstream::Context,
        master_key: Option<&str>,
        replicas: usize,
    ) -> anyhow::Result<Keyring> {
        let master = match master_key.filter(|k| !k.is_empty()) {
            None => None,
            Some(hex) => {
                let bytes = decode_hex(hex).filter(|b| b.len() == 32).ok_or_else(|| {
                    anyhow::anyhow!("ECS_MASTER_KEY must be 32 bytes as 64 hex characters")
                })?;
                Some(Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes)))
            }
        };
        let store = match js.get_key_value(KEYS_BUCKET).await {
            Ok(store) => store,
            Err(_) => js
                .create_key_value(kv::Config {
                    bucket: KEYS_BUCKET.to_owned(),
                    description: "ECS tenant data keys (destroyed on erase)".to_owned(),
                    history: 1,
                    storage: jetstream::stream::StorageType::File,
                    num_replicas: replicas,
                    ..Default::default()
                })
                .await
                .map_err(|e| anyhow::anyhow!("cannot create the key bucket: {e}"))?,
        };
        Ok(Keyring {
            store,
            master,
            cache: Mutex::new(HashMap::new()),
        })
    }

    fn cached(&self, tenant: &str) -> Option<Option<[u8; 32]>> {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(tenant)
            .copied()
    }

    fn remember(&self, tenant: &str, key: Option<[u8; 32]>) {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tenant.to_owned(), key);
    }

    /// The tenant's data key; with `create`, made when the tenant has none.
    async fn key(&self, tenant: &str, create: bool) -> Result<Option<[u8; 32]>, KeyringError> {
        if let Some(Some(key)) = self.cached(tenant) {
            return Ok(Some(key));
        }
        let unavailable = |e: &dyn std::fmt::Display| KeyringError::Unavailable(e.to_string());
        if let Some(stored) = self.store.get(tenant).await.map_err(|e| unavailable(&e))? {
            let key = self.unwrap_key(&stored)?;
            self.remember(tenant, Some(key));
            return Ok(Some(key));
        }
        if !create {
            return Ok(None);
        }
        let key = random::<32>();
        let wrapped = self.wrap_key(&key)?;
        // `create` fails if another writer made the key first: use theirs.
        match self.store.create(tenant, wrapped.into()).await {
            Ok(_) => {
                self.remember(tenant, Some(key));
                Ok(Some(key))
            }
            Err(_) => {
                let stored = self
                    .store
                    .get(tenant)
                    .await
                    .map_err(|e| unavailable(&e))?
                    .ok_or_else(|| KeyringError::Unavailable("the tenant key vanished".into()))?;
                let key = self.unwrap_key(&stored)?;
                self.remember(tenant, Some(key));
                Ok(Some(key))
            }
        }
    }

    fn wrap_key(&self, key: &[u8; 32]) -> Result<Vec<u8>, KeyringError> {
        match &self.master {
            None => Ok(key.to_vec()),
            Some(master) => {
                let nonce = random::<12>();
                let mut out = nonce.to_vec();
                out.extend(
                    master
                        .encrypt(Nonce::from_slice(&nonce), key.as_slice())
                        .map_err(|e| KeyringError::Corrupt(e.to_string()))?,
                );
                Ok(out)
            }
        }
    }

    fn unwrap_key(&self, stored: &[u8]) -> Result<[u8; 32], KeyringError> {
        let plain = match &self.master {
            None => stored.to_vec(),
            Some(master) => {
                if stored.len() < 12 {
                    return Err(KeyringError::Corrupt("short wrapped key".into()));
                }
                master
                    .decrypt(Nonce::from_slice(&stored[..12]), &stored[12..])
                    .map_err(|_| {
                        KeyringError::Corrupt("the master key does not open this tenant key".into())
                    })?
            }
        };
        plain
            .try_into()
            .map_err(|_| KeyringError::Corrupt("a tenant key must be 32 bytes".into()))
    }

    /// Seals a value with the tenant's key (creating the key if needed).
    pub async fn seal(&self, tenant: &str, value: &Value) -> Result<Value, KeyringError> {
        let key = self
            .key(tenant, true)
            .await?
            .ok_or_else(|| KeyringError::Unavailable("no tenant key".into()))?;
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key));
        let nonce = random::<12>();
        let plaintext =
            serde_json::to_vec(value).map_err(|e| KeyringError::Corrupt(e.to_string()))?;
        let ciphertext = cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext.as_slice())
            .map_err(|e| KeyringError::Corrupt(e.to_string()))?;
        Ok(
            json!({"$sealed": {"v": 1, "tenant": tenant, "nonce": B64.encode(nonce), "ct": B64.encode(ciphertext)}}),
        )
    }

    /// Opens a value sealed by [`Keyring::seal`]; other values pass through.
    pub async fn open(&self, value: &Value) -> Result<Opened, KeyringError> {
        let Some(sealed) = value.get("$sealed") else {
            return Ok(Opened::Plain(value.clone()));
        };
        let field = |name: &str| {
            sealed
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| KeyringError::Corrupt(format!("missing {name}")))
        };
        let tenant = field("tenant")?;
        let Some(key) = self.key(tenant, false).await? else {
            return Ok(Opened::Erased);
        };
        let nonce = B64
            .decode(field("nonce")?)
            .map_err(|e| KeyringError::Corrupt(e.to_string()))?;
        let ciphertext = B64
            .decode(field("ct")?)
            .map_err(|e| KeyringError::Corrupt(e.to_string()))?;
        if nonce.len() != 12 {
            return Err(KeyringError::Corrupt("bad nonce".into()));
        }
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key));
        let plaintext = cipher
            .decrypt(Nonce::from_slice(&nonce), ciphertext.as_slice())
            .map_err(|_| KeyringError::Corrupt("authentication failed".into()))?;
        serde_json::from_slice(&plaintext)
            .map(Opened::Plain)
            .map_err(|e| KeyringError::Corrupt(e.to_string()))
    }

    /// Opens a value, answering the erased marker for destroyed keys.
    pub async fn open_or_erased(&self, value: &Value) -> Result<Value, KeyringError> {
        Ok(match self.open(value).await? {
            Opened::Plain(value) => value,
            Opened::Erased => erased_marker(),
        })
    }

    /// Destroys the tenant's key: every value sealed with it is unreadable.
    pub async fn destroy(&self, tenant: &str) -> Result<(), KeyringError> {
        self.store
            .purge(tenant)
            .await
            .map_err(|e| KeyringError::Unavailable(e.to_string()))?;
        self.remember(tenant, None);
        Ok(())
    }

    /// Forgets cached keys (after another server may have destroyed some).
    pub fn forget(&self, tenant: &str) {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(tenant);
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The tenant a scope JSON names, if any.
fn scope_tenant(event: &Value) -> Option<String> {
    event
        .get("scope")?
        .get("tenant")?
        .as_str()
        .map(str::to_owned)
}

/// The single variant body of an externally tagged event, mutably.
fn body_mut<'a>(event: &'a mut Value, variant: &str) -> Option<&'a mut Value> {
    event.get_mut(variant)
}

/// The change request events that carry the request's complete state, the
/// proposed change included (every one but the older id-only closing forms).
const CHANGE_REQUEST_STATES: [&str; 6] = [
    "ChangeRequestOpened",
    "ChangeRequestApproving",
    "ChangeRequestApproved",
    "ChangeRequestFailed",
    "ChangeRequestRejected",
    "ChangeRequestWithdrawn",
];

/// The body of a change request event that carries the complete state.
fn change_request_body(event: &mut Value) -> Option<&mut Value> {
    let variant = CHANGE_REQUEST_STATES
        .into_iter()
        .find(|v| event.get(*v).is_some())?;
    body_mut(event, variant)
}

impl Keyring {
    /// Seals the tenant data of one event (as JSON) of `aggregate_type`:
    /// the values of tenant-scoped layers and change requests, and tenant names.
    pub async fn seal_event(
        &self,
        aggregate_type: &str,
        mut event: Value,
    ) -> Result<Value, KeyringError> {
        match aggregate_type {
            "layer" => {
                if let Some(body) = body_mut(&mut event, "LayerChanged")
                    && let Some(tenant) = scope_tenant(body)
                    && let Some(values) = body.get_mut("values")
                {
                    *values = self.seal(&tenant, values).await?;
                }
            }
            "tenant" => {
                if let Some(body) = body_mut(&mut event, "TenantDefined")
                    && let Some(tenant) = body.get("id").and_then(Value::as_str).map(str::to_owned)
                    && let Some(name) = body.get_mut("name")
                    && name.is_string()
                {
                    let sealed = self.seal(&tenant, name).await?;
                    *name = Value::String(format!("$sealed:{sealed}"));
                }
            }
            "change-request" => {
                if let Some(body) = change_request_body(&mut event)
                    && let Some(tenant) = scope_tenant(body)
                    && let Some(change) = body.get_mut("change")
                {
                    for field in ["values", "patch"] {
                        if let Some(values) = change.get_mut(field) {
                            *values = self.seal(&tenant, values).await?;
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(event)
    }

    /// Opens what [`Keyring::seal_event`] sealed; erased data becomes the
    /// erased marker (or no name).
    pub async fn open_event(
        &self,
        aggregate_type: &str,
        mut event: Value,
    ) -> Result<Value, KeyringError> {
        match aggregate_type {
            "layer" => {
                if let Some(values) =
                    body_mut(&mut event, "LayerChanged").and_then(|b| b.get_mut("values"))
                {
                    *values = self.open_or_erased(values).await?;
                }
            }
            "tenant" => {
                if let Some(name) =
                    body_mut(&mut event, "TenantDefined").and_then(|b| b.get_mut("name"))
                    && let Some(sealed) = name.as_str().and_then(|n| n.strip_prefix("$sealed:"))
                {
                    let sealed: Value = serde_json::from_str(sealed)
                        .map_err(|e| KeyringError::Corrupt(e.to_string()))?;
                    *name = match self.open(&sealed).await? {
                        Opened::Plain(value) => value,
                        Opened::Erased => Value::Null,
                    };
                }
            }
            "change-request" => {
                if let Some(change) =
                    change_request_body(&mut event).and_then(|b| b.get_mut("change"))
                {
                    for field in ["values", "patch"] {
                        if let Some(values) = change.get_mut(field) {
                            *values = self.open_or_erased(values).await?;
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(event)
    }
}

impl crate::EventMessage<Value> {
    /// This message with its tenant data opened (or marked erased).
    pub async fn opened(mut self, keyring: &Keyring) -> Result<Self, KeyringError> {
        let mut events = Vec::with_capacity(self.events.len());
        for event in std::mem::take(&mut self.events) {
            events.push(keyring.open_event(&self.aggregate_type, event).await?);
        }
        self.events = events;
        Ok(self)
    }
}

/// How many stored tenant keys [`Keyring::verify_master_key`] opens at most:
/// one key opened with the wrong master key is enough to tell, and a start
/// must not read thousands of keys.
const KEYS_VERIFIED_ON_START: usize = 64;

impl Keyring {
    /// Checks that the configured master key opens the stored tenant keys,
    /// so a wrong (or missing) `ECS_MASTER_KEY` stops the server at start
    /// instead of making every tenant's messages unreadable.
    pub async fn verify_master_key(&self) -> anyhow::Result<()> {
        use futures::StreamExt as _;
        let mut keys = self
            .store
            .keys()
            .await
            .map_err(|e| anyhow::anyhow!("cannot list the tenant keys: {e}"))?;
        let mut checked = 0;
        while let Some(tenant) = keys.next().await {
            let tenant = tenant.map_err(|e| anyhow::anyhow!("cannot list the tenant keys: {e}"))?;
            let stored = self
                .store
                .get(&tenant)
                .await
                .map_err(|e| anyhow::anyhow!("cannot read the key of tenant {tenant}: {e}"))?;
            // A key purged meanwhile (an erasure) has nothing to check.
            let Some(stored) = stored else { continue };
            if let Err(error) = self.unwrap_key(&stored) {
                let configured = if self.master.is_some() {
                    "the configured ECS_MASTER_KEY"
                } else {
                    "no ECS_MASTER_KEY (keys stored unwrapped)"
                };
                anyhow::bail!(
                    "{configured} does not open the data key of tenant {tenant} ({error}): \
                     start with the master key the tenant keys were wrapped with"
                );
            }
            checked += 1;
            if checked >= KEYS_VERIFIED_ON_START {
                break;
            }
        }
        Ok(())
    }
}
