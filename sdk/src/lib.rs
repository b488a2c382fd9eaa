//! `ecs-client`: the ECS SDK for Rust services.
//!
//! A [`Client`] bootstraps the current configuration of the namespaces it
//! follows from the change feed on NATS JetStream (`docs/feed.md`), then follows
//! the feed: changes arrive pushed, within milliseconds, never polled.
//! Resolution runs in memory with the server's own code (`ecs-domain`), for any
//! context, so one client serves every tenant of a multi-tenant service. The
//! last known state is kept in a cache file; when NATS is unreachable at start,
//! the client starts from it and says so, and catches up once NATS is back.
//! Given an identity ([`ClientSettings::reporting_as`]), it reports what it
//! applied, the keys it read and how long changes took to reach it, so the
//! server can show which instances are behind (`GET /v1/drift`).
//!
//! ```no_run
//! # async fn example() -> Result<(), ecs_client::ClientError> {
//! use ecs_client::{Client, ClientSettings, Context};
//!
//! let settings = ClientSettings::new("nats://127.0.0.1:4222", ["checkout"])?
//!     .with_cache("/var/cache/my-service/ecs.json");
//! let client = Client::connect(settings).await?;
//! let context = Context::from_pairs([("env", "prod"), ("tenant", "acme")])?;
//! let max_items: u32 = client.resolve("checkout", &context)?.get_field("/max_items")?;
//! let mut changes = client.watch("checkout", &context)?;
//! while changes.changed().await.is_ok() {
//!     let config = changes.borrow_and_update().clone();
//!     println!("now at position {}: {}", config.position, config.values);
//! }
//! # let _ = max_items; Ok(()) }
//! ```

mod cache;
mod feed;
mod flags;
#[cfg(feature = "openfeature")]
pub mod openfeature;
pub mod report;
pub mod secrets;
mod state;
mod trace;
pub mod transport;
mod usage;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use ecs_domain::feed::FeedMessage;
use ecs_domain::{IdError, NamespaceName, Precedence, Source, TenantId};
use serde::de::DeserializeOwned;

use crate::feed::{Feed, Item};
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use ecs_domain::Scope as Context;
pub use flags::{FlagDetails, FlagError};
pub use report::ReportSettings;
pub use secrets::{EnvResolver, FileResolver, SecretRef, SecretResolver, SecretResolvers};
pub use state::State;
pub use transport::{NatsAuth, NatsTransport};

/// Why the client could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the feed at {url} ({reason}) and there is no cache to start from{}",
        .cache.as_ref().map(|p| format!(" at {}", p.display())).unwrap_or_else(|| " (no cache file configured)".into()))]
    Unavailable {
        url: String,
        reason: String,
        cache: Option<PathBuf>,
    },
    #[error("namespace {0} is unknown (or not followed by this client)")]
    NamespaceNotFound(String),
    #[error("tenant {0} is unknown")]
    TenantNotFound(String),
    #[error(transparent)]
    InvalidIdentifier(#[from] IdError),
    #[error("the configuration does not fit the requested type: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("no value at {0}")]
    Missing(String),
    #[error("cache file: {0}")]
    Cache(String),
    /// A secret reference could not be resolved: `pointer` is where it sits in
    /// the document (empty when a resolver reports it), `reason` names the
    /// reference and its scheme, never the secret.
    #[error("secret reference{}: {reason}", if .pointer.is_empty() { String::new() } else { format!(" at {}", .pointer) })]
    Secret { pointer: String, reason: String },
}

/// How a client connects and what it follows.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// The NATS server URL, or several separated by commas (the members of a
    /// cluster): the client fails over between them.
    pub nats_url: String,
    pub namespaces: Vec<NamespaceName>,
    /// The tenants followed; empty follows every tenant. A service holding a
    /// tenant's feed credential must follow only that tenant: NATS refuses it
    /// the others.
    pub tenants: Vec<TenantId>,
    /// The credential and TLS of the NATS connection.
    pub nats: NatsTransport,
    /// Where the last known state is kept; `None` keeps nothing.
    pub cache_path: Option<PathBuf>,
    /// Must equal the server's `ECS_PRECEDENCE`.
    pub precedence: Precedence,
    pub connect_timeout: Duration,
    /// Follow the feed over the HTTP API instead of NATS.
    pub http: Option<HttpSettings>,
    /// What turns secret references into values in
    /// [`Client::resolve_secrets`]; none by default.
    pub secret_resolvers: SecretResolvers,
    /// Who the client reports as in its drift reports (ADR 24); `None`
    /// sends none.
    pub report: Option<ReportSettings>,
}

/// Where to follow the feed over HTTP: the server's URL and a bearer token.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub base_url: String,
    pub token: String,
    /// A PEM file of the certificate authorities that sign the server's
    /// certificate (`https://` URLs); without it, the webpki roots.
    pub ca_file: Option<PathBuf>,
}

impl ClientSettings {
    pub fn new<I, S>(nats_url: impl Into<String>, namespaces: I) -> Result<Self, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Ok(ClientSettings {
            nats_url: nats_url.into(),
            namespaces: namespaces
                .into_iter()
                .map(|n| NamespaceName::parse(n.as_ref()))
                .collect::<Result<_, _>>()?,
            tenants: Vec::new(),
            nats: NatsTransport::default(),
            cache_path: None,
            precedence: Precedence::default(),
            connect_timeout: Duration::from_secs(3),
            http: None,
            secret_resolvers: SecretResolvers::default(),
            report: None,
        })
    }

    /// Settings for a client that holds only an HTTP token: it bootstraps and
    /// follows the feed through the server's `/v1/feed` server-sent events.
    pub fn over_http<I, S>(
        base_url: impl Into<String>,
        token: impl Into<String>,
        namespaces: I,
    ) -> Result<Self, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let base_url = base_url.into();
        let mut settings = ClientSettings::new(base_url.clone(), namespaces)?;
        settings.http = Some(HttpSettings {
            base_url,
            token: token.into(),
            ca_file: None,
        });
        Ok(settings)
    }

    /// Follows only this tenant (call again to add more): its layers and
    /// tenant item plus the tenant-free layers, which is what a tenant's feed
    /// credential may read. Contexts of other tenants then do not resolve.
    pub fn for_tenant(mut self, tenant: &str) -> Result<Self, ClientError> {
        let tenant = TenantId::parse(tenant)?;
        if !self.tenants.contains(&tenant) {
            self.tenants.push(tenant);
        }
        Ok(self)
    }

    /// Authenticates to NATS with this credential.
    pub fn with_nats_auth(mut self, auth: NatsAuth) -> Self {
        self.nats.auth = auth;
        self
    }

    /// Connects to NATS over TLS, verifying the server against the
    /// certificate authorities in this PEM file.
    pub fn with_nats_ca(mut self, ca_file: impl Into<PathBuf>) -> Self {
        self.nats.ca_file = Some(ca_file.into());
        self
    }

    /// Presents this client certificate (PEM files) to NATS.
    pub fn with_nats_client_cert(
        mut self,
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> Self {
        self.nats.client_cert = Some((cert_file.into(), key_file.into()));
        self
    }

    /// Verifies an `https://` server of [`ClientSettings::over_http`] against
    /// the certificate authorities in this PEM file.
    pub fn with_http_ca(mut self, ca_file: impl Into<PathBuf>) -> Self {
        if let Some(http) = &mut self.http {
            http.ca_file = Some(ca_file.into());
        }
        self
    }

    /// Sends drift reports as an instance of `service` in `env`: what it
    /// follows and the position it applied, its key reads, watchers and
    /// propagation times, every 15 seconds and when it closes (over NATS on
    /// `ecs.drift.<env>.<service>`, over HTTP to `/v1/drift/reports`).
    pub fn reporting_as(mut self, service: &str, env: &str) -> Result<Self, ClientError> {
        self.report = Some(ReportSettings::new(service, env)?);
        Ok(self)
    }

    /// How often drift reports go out (see [`ClientSettings::reporting_as`]).
    pub fn with_report_interval(mut self, interval: Duration) -> Self {
        if let Some(report) = &mut self.report {
            report.interval = interval;
        }
        self
    }

    /// The instance id drift reports carry instead of the generated one.
    pub fn with_instance_id(mut self, instance: &str) -> Result<Self, ClientError> {
        let instance = ecs_domain::InstanceId::parse(instance)?;
        if let Some(report) = &mut self.report {
            report.instance = instance;
        }
        Ok(self)
    }

    pub fn with_cache(mut self, path: impl Into<PathBuf>) -> Self {
        self.cache_path = Some(path.into());
        self
    }

    /// Registers a resolver for secret references of its scheme (replacing
    /// any earlier one for that scheme), used by [`Client::resolve_secrets`].
    pub fn with_secret_resolver(mut self, resolver: Arc<dyn SecretResolver>) -> Self {
        self.secret_resolvers.register(resolver);
        self
    }
}

/// Where the client's current state came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Bootstrapped from the feed and following it.
    Live,
    /// Loaded from the cache file; NATS has not been reachable since start.
    Cache,
}

/// A resolved document and the position it reflects.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub values: Value,
    pub position: u64,
}

impl Config {
    /// Deserializes the whole document.
    pub fn into_typed<T: DeserializeOwned>(self) -> Result<T, ClientError> {
        Ok(serde_json::from_value(self.values)?)
    }

    /// Deserializes the value at a JSON pointer.
    pub fn get_field<T: DeserializeOwned>(&self, pointer: &str) -> Result<T, ClientError> {
        let value = self
            .values
            .pointer(pointer)
            .ok_or_else(|| ClientError::Missing(pointer.to_owned()))?;
        Ok(serde_json::from_value(value.clone())?)
    }
}

struct Watcher {
    namespace: NamespaceName,
    context: Context,
    sender: watch::Sender<Config>,
}

struct Inner {
    settings: ClientSettings,
    state: RwLock<State>,
    watchers: Mutex<Vec<Watcher>>,
    origin: Mutex<Origin>,
    /// The applied position; wakes the cache writer.
    applied: watch::Sender<u64>,
    shutdown: CancellationToken,
    /// Parsed flags documents by namespace and context, for flag reads.
    flag_sets: flags::FlagSetCache,
    /// Key reads, propagation times and the connection reports go out on.
    telemetry: Arc<report::Telemetry>,
    /// The drift reporter, awaited by [`Client::shutdown`].
    reporter: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// A live, local view of ECS configuration. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    /// Connects, bootstraps the followed namespaces and starts following the
    /// feed. With NATS unreachable, starts from the cache file (and keeps trying
    /// to connect); with neither, fails with [`ClientError::Unavailable`].
    pub async fn connect(settings: ClientSettings) -> Result<Client, ClientError> {
        let inner = Arc::new(Inner {
            state: RwLock::new(State::default()),
            watchers: Mutex::new(Vec::new()),
            origin: Mutex::new(Origin::Live),
            applied: watch::channel(0).0,
            shutdown: CancellationToken::new(),
            flag_sets: flags::FlagSetCache::default(),
            telemetry: Arc::default(),
            reporter: Mutex::new(None),
            settings,
        });
        let feed = match Feed::open(&inner.settings, 0).await {
            Ok(feed) => {
                inner.telemetry.set_nats(feed.nats_client());
                let feed = bootstrap(&inner, feed).await;
                if feed.is_none() {
                    tracing::warn!("the feed failed during bootstrap; retrying in the background");
                }
                feed
            }
            Err(reason) => {
                let cached = match &inner.settings.cache_path {
                    Some(path) => cache::read(path)?,
                    None => None,
                };
                let Some(state) = cached else {
                    return Err(ClientError::Unavailable {
                        url: inner.settings.nats_url.clone(),
                        reason,
                        cache: inner.settings.cache_path.clone(),
                    });
                };
                tracing::warn!(
                    %reason,
                    position = state.position,
                    "NATS is unreachable: starting from the cache file; following the feed once NATS is back"
                );
                inner.applied.send_replace(state.position);
                *write(&inner.state) = state;
                *lock(&inner.origin) = Origin::Cache;
                None
            }
        };
        tokio::spawn(follow(inner.clone(), feed));
        if inner.settings.cache_path.is_some() {
            tokio::spawn(write_cache(inner.clone()));
        }
        if let Some(reporter) = reporter(&inner) {
            let snapshot_of = inner.clone();
            let handle = tokio::spawn(report::run(
                reporter,
                move || snapshot(&snapshot_of),
                inner.shutdown.clone(),
            ));
            *lock(&inner.reporter) = Some(handle);
        }
        Ok(Client { inner })
    }

    /// Where the current state came from.
    pub fn origin(&self) -> Origin {
        *lock(&self.inner.origin)
    }

    /// The highest position applied (for drift detection).
    pub fn applied_position(&self) -> u64 {
        read(&self.inner.state).position
    }

    /// The resolved document of a namespace for a context, from memory.
    /// Counts as a read of each of its keys (top-level properties) in the
    /// usage the client reports.
    pub fn resolve(&self, namespace: &str, context: &Context) -> Result<Config, ClientError> {
        let config = self.resolve_uncounted(namespace, context)?;
        if self.reports()
            && let Some(keys) = config.values.as_object()
        {
            let namespace = NamespaceName::parse(namespace)?;
            self.inner
                .telemetry
                .reads
                .count(&namespace, keys.keys().map(String::as_str));
        }
        Ok(config)
    }

    /// Whether drift reports are on: reads are counted only then.
    fn reports(&self) -> bool {
        self.inner.settings.report.is_some()
    }

    fn resolve_uncounted(&self, namespace: &str, context: &Context) -> Result<Config, ClientError> {
        let namespace = NamespaceName::parse(namespace)?;
        let (resolved, position) = read(&self.inner.state).resolve(
            &namespace,
            context,
            &self.inner.settings.precedence,
        )?;
        Ok(Config {
            values: resolved.values,
            position,
        })
    }

    /// The value at a JSON pointer of the resolved document, deserialized.
    /// Counts as a read of the one key the pointer is in.
    pub fn get_field<T: DeserializeOwned>(
        &self,
        namespace: &str,
        context: &Context,
        pointer: &str,
    ) -> Result<T, ClientError> {
        let config = self.resolve_uncounted(namespace, context)?;
        if self.reports()
            && let Some(key) = ecs_domain::drift::top_key(pointer)
        {
            let namespace = NamespaceName::parse(namespace)?;
            self.inner.telemetry.reads.count(&namespace, [key.as_str()]);
        }
        config.get_field(pointer)
    }

    /// The resolved document with every secret reference
    /// (`{"$secret": "<scheme>://..."}`) replaced by its secret, through the
    /// resolvers registered in the settings. [`Client::resolve`] returns the
    /// references themselves. Fails with [`ClientError::Secret`] naming the
    /// pointer when a reference cannot be resolved (such as an unregistered
    /// scheme). Resolvers run on every call: keep the result only as long as
    /// the secret may live in memory.
    pub fn resolve_secrets(
        &self,
        namespace: &str,
        context: &Context,
    ) -> Result<Config, ClientError> {
        let config = self.resolve(namespace, context)?;
        Ok(Config {
            values: self
                .inner
                .settings
                .secret_resolvers
                .resolve_document(&config.values)?,
            position: config.position,
        })
    }

    /// Where each value of the resolved document came from.
    pub fn explain(
        &self,
        namespace: &str,
        context: &Context,
    ) -> Result<std::collections::BTreeMap<String, Source>, ClientError> {
        let namespace = NamespaceName::parse(namespace)?;
        let (resolved, _) = read(&self.inner.state).resolve(
            &namespace,
            context,
            &self.inner.settings.precedence,
        )?;
        Ok(resolved.sources)
    }

    /// The resolved document, deserialized.
    pub fn get<T: DeserializeOwned>(
        &self,
        namespace: &str,
        context: &Context,
    ) -> Result<T, ClientError> {
        self.resolve(namespace, context)?.into_typed()
    }

    /// A receiver of the resolved document that changes whenever the document
    /// does. Positions only grow; a receiver that falls behind sees the latest.
    pub fn watch(
        &self,
        namespace: &str,
        context: &Context,
    ) -> Result<watch::Receiver<Config>, ClientError> {
        let current = self.resolve(namespace, context)?;
        let (sender, receiver) = watch::channel(current);
        lock(&self.inner.watchers).push(Watcher {
            namespace: NamespaceName::parse(namespace)?,
            context: context.clone(),
            sender,
        });
        Ok(receiver)
    }

    /// Stops following the feed (and sends the last drift report in the
    /// background).
    pub fn close(&self) {
        self.inner.shutdown.cancel();
    }

    /// Stops following the feed and waits (at most 5 seconds) until the
    /// last drift report is sent.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        let reporter = lock(&self.inner.reporter).take();
        if let Some(reporter) = reporter {
            let _ = tokio::time::timeout(Duration::from_secs(5), reporter).await;
        }
    }
}

fn read(lock: &RwLock<State>) -> std::sync::RwLockReadGuard<'_, State> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write(lock: &RwLock<State>) -> std::sync::RwLockWriteGuard<'_, State> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The drift reporter the settings ask for, if any.
fn reporter(inner: &Inner) -> Option<report::Reporter> {
    let settings = inner.settings.report.clone()?;
    let destination = match &inner.settings.http {
        None => report::Destination::Nats,
        Some(http) => match feed::http_client(&inner.settings, http) {
            Ok(client) => report::Destination::Http {
                client,
                url: format!("{}/v1/drift/reports", http.base_url.trim_end_matches('/')),
                token: http.token.clone(),
            },
            Err(error) => {
                tracing::warn!(%error, "drift reports cannot be sent");
                return None;
            }
        },
    };
    Some(report::Reporter {
        settings,
        started_at: time::OffsetDateTime::now_utc(),
        destination,
        telemetry: inner.telemetry.clone(),
    })
}

/// What a drift report says the client follows: per namespace, the
/// highest position applied of the items that resolve it.
fn snapshot(inner: &Inner) -> report::Snapshot {
    let followed = {
        let state = read(&inner.state);
        inner
            .settings
            .namespaces
            .iter()
            .map(|namespace| ecs_domain::drift::Followed {
                namespace: namespace.clone(),
                tenants: inner.settings.tenants.clone(),
                applied_position: state.applied_position_of(namespace, &inner.settings.tenants),
            })
            .collect()
    };
    let subscribers = {
        let mut watchers = lock(&inner.watchers);
        watchers.retain(|w| !w.sender.is_closed());
        watchers.len() as u64
    };
    report::Snapshot {
        followed,
        subscribers,
    }
}

/// Applies the feed until its initial state is complete. Returns the feed to
/// keep following, or `None` when it failed.
async fn bootstrap(inner: &Inner, mut feed: Feed) -> Option<Feed> {
    loop {
        match feed.next().await {
            Some(Ok(Item::Message { payload, settled })) => {
                apply(inner, &payload, false, false);
                if settled && matches!(feed, Feed::Nats { .. }) {
                    break;
                }
            }
            Some(Ok(Item::Removed { key, settled })) => {
                remove(
                    inner,
                    |state| {
                        state.remove(&key);
                    },
                    false,
                );
                if settled {
                    break;
                }
            }
            Some(Ok(Item::TenantErased { tenant, .. })) => {
                remove(inner, |state| state.remove_tenant(&tenant), false);
            }
            Some(Ok(Item::Synced)) => break,
            Some(Err(error)) => {
                tracing::warn!(%error, "feed error during bootstrap");
                return None;
            }
            None => return None,
        }
    }
    *lock(&inner.origin) = Origin::Live;
    notify(inner);
    Some(feed)
}

/// Applies one feed message; when `settle` (nothing more pending), wakes the
/// watchers whose document changed. A `live` change (after the bootstrap)
/// that the client did not hold yet counts in the propagation times.
fn apply(inner: &Inner, payload: &[u8], settle: bool, live: bool) {
    let message: FeedMessage = match serde_json::from_slice(payload) {
        Ok(message) => message,
        Err(error) => {
            tracing::warn!(%error, "skipping a feed message this client cannot read");
            return;
        }
    };
    let _span = trace::apply_span(&message).entered();
    let at = (live && inner.settings.report.is_some()).then(|| message.at.clone());
    let applied = write(&inner.state).apply(message);
    if let (true, Some(at)) = (applied, at) {
        inner.telemetry.record_propagation(&at);
    }
    if settle {
        notify(inner);
    }
}

/// Forgets items removed from the feed (an erased tenant's): what
/// depended on it no longer resolves, and the cache file is rewritten
/// without it.
fn remove(inner: &Inner, forget: impl FnOnce(&mut State), settle: bool) {
    forget(&mut write(&inner.state));
    if settle {
        notify(inner);
    }
}

/// Re-resolves every watched document and sends those that changed.
fn notify(inner: &Inner) {
    let state = read(&inner.state);
    inner.applied.send_replace(state.position);
    let mut watchers = lock(&inner.watchers);
    watchers.retain(|w| !w.sender.is_closed());
    for watcher in watchers.iter() {
        if let Ok((resolved, position)) = state.resolve(
            &watcher.namespace,
            &watcher.context,
            &inner.settings.precedence,
        ) {
            watcher.sender.send_if_modified(|current| {
                if current.values != resolved.values && position > current.position {
                    *current = Config {
                        values: resolved.values,
                        position,
                    };
                    true
                } else {
                    false
                }
            });
        }
    }
}

/// Follows the feed until the client closes; reconnects with backoff and
/// bootstraps afresh after any failure, so nothing is missed.
async fn follow(inner: Arc<Inner>, mut feed: Option<Feed>) {
    let mut delay = Duration::from_millis(100);
    loop {
        let Some(stream) = feed.as_mut() else {
            tokio::select! {
                _ = inner.shutdown.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(5));
            let after = read(&inner.state).position;
            match Feed::open(&inner.settings, after).await {
                Ok(opened) => {
                    inner.telemetry.set_nats(opened.nats_client());
                    feed = bootstrap(&inner, opened).await;
                    if feed.is_some() {
                        tracing::info!(
                            position = read(&inner.state).position,
                            "following the feed again"
                        );
                        delay = Duration::from_millis(100);
                    }
                }
                Err(reason) => tracing::debug!(%reason, "feed still unreachable"),
            }
            continue;
        };
        let next = tokio::select! {
            _ = inner.shutdown.cancelled() => return,
            next = stream.next() => next,
        };
        match next {
            Some(Ok(Item::Message { payload, settled })) => apply(&inner, &payload, settled, true),
            Some(Ok(Item::Removed { key, settled })) => remove(
                &inner,
                |state| {
                    state.remove(&key);
                },
                settled,
            ),
            Some(Ok(Item::TenantErased { tenant, settled })) => {
                remove(&inner, |state| state.remove_tenant(&tenant), settled)
            }
            Some(Ok(Item::Synced)) => notify(&inner),
            Some(Err(error)) => {
                tracing::warn!(%error, "feed interrupted; bootstrapping afresh");
                feed = None;
            }
            None => feed = None,
        }
    }
}

/// Writes the cache file after changes, at most every 200 ms.
async fn write_cache(inner: Arc<Inner>) {
    let Some(path) = inner.settings.cache_path.clone() else {
        return;
    };
    let mut applied = inner.applied.subscribe();
    // Write what the bootstrap brought at once.
    applied.mark_changed();
    let mut written = (0, 0);
    loop {
        tokio::select! {
            _ = inner.shutdown.cancelled() => return,
            changed = applied.changed() => if changed.is_err() { return },
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let state = read(&inner.state).clone();
        let version = (state.position, state.removed);
        if version == written {
            continue;
        }
        let path = path.clone();
        match tokio::task::spawn_blocking(move || cache::write(&path, &state)).await {
            Ok(Ok(())) => written = version,
            Ok(Err(error)) => tracing::warn!(%error, "cannot write the cache file"),
            Err(error) => tracing::warn!(%error, "cache writer failed"),
        }
    }
}
