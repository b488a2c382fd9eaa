//! Per-request limits: request timeout, rate limits per source address and
//! per principal (429 with `Retry-After`), and open server-sent event streams
//! per principal. Connection limits (a cap, the header-read timeout) are in
//! [`crate::server`].

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::auth::Principal;
use crate::problem::ApiError;
use crate::settings::Settings;

/// A rate limit by key (a source address or a principal), a token bucket per key.
pub(crate) struct KeyedLimit<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    checks: AtomicU64,
}

impl<K: Hash + Eq + Clone> KeyedLimit<K> {
    /// How many checks pass between two removals of idle keys, so that the
    /// limiter's memory follows the active keys, not every key ever seen.
    const HOUSEKEEPING_EVERY: u64 = 4096;

    /// `None` when `rate` is 0 (no limit).
    fn new(rate: u32, burst: u32) -> Option<Self> {
        let rate = NonZeroU32::new(rate)?;
        let burst = NonZeroU32::new(burst).unwrap_or(rate).max(rate);
        Some(KeyedLimit {
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            checks: AtomicU64::new(0),
        })
    }

    /// `Err(wait)` when the key is over its rate: how long until it may
    /// send again.
    pub(crate) fn check(&self, key: &K) -> Result<(), Duration> {
        if self
            .checks
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(Self::HOUSEKEEPING_EVERY)
        {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// The limits every request passes, shared by the middleware and handlers.
pub struct Limits {
    pub(crate) request_timeout: Duration,
    pub(crate) per_source: Option<KeyedLimit<IpAddr>>,
    pub(crate) per_principal: Option<KeyedLimit<String>>,
    max_streams: usize,
    streams: Mutex<HashMap<String, usize>>,
}

impl Limits {
    pub fn new(settings: &Settings) -> Self {
        Limits {
            request_timeout: Duration::from_secs(settings.request_timeout_secs),
            per_source: KeyedLimit::new(settings.source_rate, settings.source_burst),
            per_principal: KeyedLimit::new(settings.principal_rate, settings.principal_burst),
            max_streams: settings.max_streams_per_principal,
            streams: Mutex::default(),
        }
    }

    fn lock_streams(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens a server-sent event stream for `principal`: 429 when it holds
    /// `ECS_MAX_STREAMS_PER_PRINCIPAL` already. The stream counts until the
    /// permit is dropped (when the stream ends or its client goes away).
    pub fn open_stream(self: &Arc<Self>, principal: &Principal) -> Result<StreamPermit, ApiError> {
        let mut streams = self.lock_streams();
        let open = streams.entry(principal.name.clone()).or_default();
        if *open >= self.max_streams {
            metrics::counter!("ecs_limited_total", "limit" => "streams").increment(1);
            return Err(ApiError::TooManyRequests {
                code: "too-many-streams",
                detail: format!(
                    "this principal holds {open} open streams, the most allowed \
                     (ECS_MAX_STREAMS_PER_PRINCIPAL); close one first"
                ),
                retry_after: Duration::from_secs(1),
            });
        }
        *open += 1;
        metrics::gauge!("ecs_sse_streams").increment(1.0);
        Ok(StreamPermit {
            limits: self.clone(),
            principal: principal.name.clone(),
        })
    }
}

/// One open stream of a principal, counted until dropped.
pub struct StreamPermit {
    limits: Arc<Limits>,
    principal: String,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        metrics::gauge!("ecs_sse_streams").decrement(1.0);
        let mut streams = self.limits.lock_streams();
        if let Some(open) = streams.get_mut(&self.principal) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                streams.remove(&self.principal);
            }
        }
    }
}

pub(crate) fn rate_limited(limit: &'static str, wait: Duration) -> Response {
    metrics::counter!("ecs_limited_total", "limit" => limit).increment(1);
    ApiError::TooManyRequests {
        code: "rate-limited",
        detail: format!("too many requests from this {limit}; retry after the time given"),
        retry_after: wait,
    }
    .into_response()
}
