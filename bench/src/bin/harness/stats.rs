//! Latency samples and their percentiles.

use std::collections::HashMap;
use std::future::Future;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use clap::Parser;
use ecs_api::{Application, Settings};
use ecs_commands::keyring::Keyring;
use ecs_commands::message::{EventMessage, FORMAT_VERSION, read_message};
use ecs_commands::store::subject;
use ecs_commands::{StreamSettings, ensure_stream};
use ecs_domain::feed::FEED_BUCKET;
use ecs_domain::layer::{LayerChange, layer_id};
use ecs_domain::{
    EditionName, EnvName, Layer, LayerEvent, Namespace, NamespaceEvent, NamespaceKind,
    NamespaceName, Scope, Tenant, TenantEvent, TenantId,
};
use ecs_tests::app::{ADMIN_TOKEN, settings_for};
use ecs_tests::servers::{NatsServer, TestDatabase};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rand::Rng;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::*;
use crate::fixture::*;
use crate::report::*;
use crate::load::*;
use crate::reads::*;
use crate::writes::*;
use crate::rebuild::*;
use crate::scale::*;
use crate::validation::*;
use crate::flags::*;

pub(crate) struct Stats {
    pub(crate) ok: usize,
    pub(crate) errors: usize,
    pub(crate) elapsed: Duration,
    /// Sorted latencies of the successful operations.
    pub(crate) latencies: Vec<Duration>,
    pub(crate) first_error: Option<String>,
}

impl Stats {
    pub(crate) fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    pub(crate) fn pct(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i.min(self.latencies.len() - 1)]
    }

    pub(crate) fn line(&self, label: &str) -> String {
        let mut s = format!(
            "{label:<44} {:>10.0} ops/s   p50 {:>8}   p99 {:>8}   max {:>8}   ({} ok, {} errors)",
            self.rate(),
            ms(self.pct(0.50)),
            ms(self.pct(0.99)),
            ms(self.latencies.last().copied().unwrap_or_default()),
            self.ok,
            self.errors
        );
        if let Some(e) = &self.first_error {
            s.push_str(&format!("\n    first error: {e}"));
        }
        s
    }

    /// The same figures as a Markdown cell: rate, p50 and p99 (and errors).
    pub(crate) fn cell(&self, unit: &str) -> String {
        let mut s = format!(
            "{} {unit}, p50 {}, p99 {}",
            thousands(self.rate()),
            ms(self.pct(0.50)),
            ms(self.pct(0.99))
        );
        if self.errors > 0 {
            s.push_str(&format!(" ({} errors)", self.errors));
        }
        s
    }
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

// ---------------------------------------------------------------------------
// --markdown: the figures as rows of one Markdown table
// ---------------------------------------------------------------------------
