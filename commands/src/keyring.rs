//! Per-tenant encryption of tenant data in the immutable streams, so a tenant
//! can be erased by destroying its key ("crypto-shredding").
//!
//! Each tenant has a random 256-bit data key, kept in the key-value bucket
//! `ecs-tenant-keys` (unlike the events stream, keys can be deleted), wrapped
//! with the master key (`ECS_MASTER_KEY`) when one is configured. Erasing a
//! tenant replaces its key by a tombstone: what the key sealed can no longer
//! be opened, and no new key can be made for that tenant, so nothing can be
//! sealed for it again.
//!
//! This module seals and opens bytes; what of a message or an audit record is
//! tenant data, and where the sealed section goes, is `crate::sealing`.

use std::collections::HashMap;
use std::sync::Mutex;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use async_nats::jetstream::{self, kv};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ecs_domain::TenantId;
use ecs_domain::sealed::Sealed;
use rand::RngCore;
use serde_json::{Value, json};

/// The bucket holding tenant data keys.
pub const KEYS_BUCKET: &str = "ecs-tenant-keys";

/// What an erased tenant's entry in the key bucket holds instead of a key.
/// Never a valid wrapped key (those are 32 or 60 bytes long); whatever reads
/// the bucket's entries (a start-up check of the master key, say) skips it.
pub const TOMBSTONE: &[u8] = b"erased";

/// The marker that replaces erased values in projections. It is presentation
/// only: no reader ever interprets it (a client may store the same JSON).
pub fn erased_marker() -> Value {
    json!({"$erased": true})
}

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("the key store is unavailable: {0}")]
    Unavailable(String),
    #[error("a sealed value cannot be opened: {0}")]
    Corrupt(String),
    /// The tenant was erased: nothing can be sealed for it any more.
    #[error("tenant {0} was erased")]
    Erased(TenantId),
}

/// Where a tenant's key stands.
#[derive(Debug, Clone, Copy)]
enum KeyState {
    Live([u8; 32]),
    Erased,
}

/// Tenant data keys, cached in memory.
pub struct Keyring {
    store: kv::Store,
    master: Option<Aes256Gcm>,
    cache: Mutex<HashMap<TenantId, KeyState>>,
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

fn corrupt(error: impl std::fmt::Display) -> KeyringError {
    KeyringError::Corrupt(error.to_string())
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

    fn cached(&self, tenant: &TenantId) -> Option<KeyState> {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(tenant)
            .copied()
    }

    fn remember(&self, tenant: &TenantId, state: KeyState) -> KeyState {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tenant.clone(), state);
        state
    }

    /// Reads a stored entry: a wrapped key or the tombstone.
    fn stored_state(&self, stored: &[u8]) -> Result<KeyState, KeyringError> {
        if stored == TOMBSTONE {
            Ok(KeyState::Erased)
        } else {
            self.unwrap_key(stored).map(KeyState::Live)
        }
    }

    /// The tenant's key; with `create`, made when the tenant has none (never
    /// for an erased tenant: its tombstone stays).
    async fn key(&self, tenant: &TenantId, create: bool) -> Result<Option<KeyState>, KeyringError> {
        // Both states are final: a key never changes, a tombstone stays.
        if let Some(state) = self.cached(tenant) {
            return Ok(Some(state));
        }
        let unavailable = |e: &dyn std::fmt::Display| KeyringError::Unavailable(e.to_string());
        if let Some(stored) = self
            .store
            .get(tenant.as_str())
            .await
            .map_err(|e| unavailable(&e))?
        {
            let state = self.stored_state(&stored)?;
            return Ok(Some(self.remember(tenant, state)));
        }
        if !create {
            return Ok(None);
        }
        let key = random::<32>();
        let wrapped = self.wrap_key(&key)?;
        // `create` fails if an entry exists: another writer made the key
        // first (use theirs), or the tenant was erased meanwhile.
        match self.store.create(tenant.as_str(), wrapped.into()).await {
            Ok(_) => Ok(Some(self.remember(tenant, KeyState::Live(key)))),
            Err(_) => {
                let stored = self
                    .store
                    .get(tenant.as_str())
                    .await
                    .map_err(|e| unavailable(&e))?
                    .ok_or_else(|| KeyringError::Unavailable("the tenant key vanished".into()))?;
                let state = self.stored_state(&stored)?;
                Ok(Some(self.remember(tenant, state)))
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
                        .map_err(corrupt)?,
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
                    return Err(corrupt("short wrapped key"));
                }
                master
                    .decrypt(Nonce::from_slice(&stored[..12]), &stored[12..])
                    .map_err(|_| corrupt("the master key does not open this tenant key"))?
            }
        };
        plain
            .try_into()
            .map_err(|_| corrupt("a tenant key must be 32 bytes"))
    }

    /// Seals `plaintext` with the tenant's key (creating the key if needed),
    /// bound to `context` (authenticated, not stored: a sealed section cannot
    /// be moved to another message). Refuses an erased tenant.
    pub async fn seal(
        &self,
        tenant: &TenantId,
        plaintext: &[u8],
        context: &[u8],
    ) -> Result<Sealed, KeyringError> {
        match self.key(tenant, true).await? {
            Some(KeyState::Live(key)) => Ok(encrypt(tenant, &key, plaintext, context)?),
            Some(KeyState::Erased) => Err(KeyringError::Erased(tenant.clone())),
            None => Err(KeyringError::Unavailable("no tenant key".into())),
        }
    }

    /// Seals with the tenant's key only if it has one: `Ok(None)` when it has
    /// none (it holds no sealed data), `Err(Erased)` when it was erased.
    pub async fn seal_if_keyed(
        &self,
        tenant: &TenantId,
        plaintext: &[u8],
        context: &[u8],
    ) -> Result<Option<Sealed>, KeyringError> {
        match self.key(tenant, false).await? {
            Some(KeyState::Live(key)) => Ok(Some(encrypt(tenant, &key, plaintext, context)?)),
            Some(KeyState::Erased) => Err(KeyringError::Erased(tenant.clone())),
            None => Ok(None),
        }
    }

    /// Opens a sealed section; `None` when the tenant's key was destroyed.
    pub async fn open(
        &self,
        sealed: &Sealed,
        context: &[u8],
    ) -> Result<Option<Vec<u8>>, KeyringError> {
        let key = match self.key(&sealed.tenant, false).await? {
            Some(KeyState::Live(key)) => key,
            // A key purged by an earlier version counts as erased too.
            Some(KeyState::Erased) | None => return Ok(None),
        };
        let nonce = B64.decode(&sealed.nonce).map_err(corrupt)?;
        let ciphertext = B64.decode(&sealed.ct).map_err(corrupt)?;
        if nonce.len() != 12 {
            return Err(corrupt("bad nonce"));
        }
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key));
        cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: context,
                },
            )
            .map(Some)
            .map_err(|_| corrupt("authentication failed"))
    }

    /// Destroys the tenant's key for good: it is replaced by a tombstone, so
    /// every value sealed with it is unreadable and no new key is made.
    /// Idempotent.
    pub async fn destroy(&self, tenant: &str) -> Result<(), KeyringError> {
        let tenant = TenantId::parse(tenant).map_err(corrupt)?;
        let tenant = &tenant;
        self.store
            .put(tenant.as_str(), TOMBSTONE.into())
            .await
            .map_err(|e| KeyringError::Unavailable(e.to_string()))?;
        self.remember(tenant, KeyState::Erased);
        Ok(())
    }

    /// Forgets a cached key (after another server may have destroyed it).
    pub fn forget(&self, tenant: &TenantId) {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(tenant);
    }
}

fn encrypt(
    tenant: &TenantId,
    key: &[u8; 32],
    plaintext: &[u8],
    context: &[u8],
) -> Result<Sealed, KeyringError> {
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key));
    let nonce = random::<12>();
    let ciphertext = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: context,
            },
        )
        .map_err(corrupt)?;
    Ok(Sealed {
        tenant: tenant.clone(),
        nonce: B64.encode(nonce),
        ct: B64.encode(ciphertext),
    })
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
            // An erased tenant's tombstone holds no key.
            if stored.as_ref() == TOMBSTONE {
                continue;
            }
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
