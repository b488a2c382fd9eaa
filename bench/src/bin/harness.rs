//! `harness`: ECS against the raw engines it is built on, each figure measured
//! in one run beside its floor (see `docs/benchmarks.md`):
//!
//! * `reads`   — resolved reads over HTTP (warm cache) vs a static axum handler
//!   returning the same bytes, at a fixed concurrency;
//! * `writes`  — durable `PATCH` writes over HTTP vs raw JetStream publish with
//!   acknowledgement of the same payloads, at the same concurrency;
//! * `rebuild` — replaying N events (default one million, published straight
//!   to `ECS_EVENTS`) into fresh projections vs a raw ordered-consumer read;
//! * `pit`     — point-in-time resolved reads at random past positions over the
//!   rebuilt log (runs right after `rebuild`, on its state);
//! * `scale`   — server memory and SDK bootstrap time with 10,000 tenants and
//!   20 namespaces;
//! * `validation` — one global write checked in every context it can change,
//!   with 10,000 tenant layers, vs the same write with no other layers.
//!
//! Every benchmark starts its own `nats-server` and PostgreSQL database (a
//! private cluster unless `ECS_TEST_PG_URL` is set) and the ECS server
//! in-process, all bound to 127.0.0.1, and stops them when it ends.
//!
//! With `--markdown <file>` the figures are also appended to `<file>` as rows
//! of one Markdown table (benchmark, ECS, floor, ECS / floor, target,
//! verdict); `bench/run.sh` uses it to write `docs/benchmarks.md`.
//!
//! ```sh
//! bench/run.sh            # everything, in release, results in bench/results/ and docs/
//! cargo run --release -p ecs-bench --bin harness -- --quick
//! cargo run --release -p ecs-bench --bin harness -- --bench reads,writes --seconds 5
//! cargo run --release -p ecs-bench --bin harness -- --bench reads --markdown /tmp/reads.md
//! ```

// Printing the results is this binary's purpose.
#![allow(clippy::print_stdout)]

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

/// The allocator of the `ecs` binary, so the in-process server runs as it does
/// in production (the floors and the load generator share it).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ALL: [&str; 7] = [
    "reads",
    "writes",
    "rebuild",
    "pit",
    "scale",
    "validation",
    "flags",
];

/// Targets: ECS resolved reads reach this share of the static handler's
/// throughput (%), the rebuild replays this many events per second, and a
/// point-in-time read answers within this p99 (ms) at one client.
const READS_TARGET_SHARE: f64 = 50.0;
const REBUILD_TARGET_PER_S: f64 = 50_000.0;
const PIT_TARGET_P99_MS: f64 = 10.0;
/// SDK-local flag evaluation stays under this many nanoseconds per flag.
const FLAG_TARGET_NS: f64 = 2_000.0;

/// ECS against the raw engines (reads, writes, rebuild, point-in-time, scale).
#[derive(Parser, Debug, Clone)]
struct Args {
    /// Benchmarks to run, comma-separated: reads, writes, rebuild, pit, scale,
    /// validation, flags (`pit` implies `rebuild`, whose state it reads).
    #[arg(long, value_delimiter = ',', default_values_t = ALL.map(String::from))]
    bench: Vec<String>,
    /// Events in the log for the rebuild and point-in-time benchmarks.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Measured seconds per load run (reads, writes, point-in-time).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Concurrent requests in flight (reads, writes and their floors).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Tenants for the scale and validation benchmarks.
    #[arg(long, default_value_t = 10_000)]
    tenants: usize,
    /// Namespaces for the scale benchmark.
    #[arg(long, default_value_t = 20)]
    namespaces: usize,
    /// Smoke run: 50,000 events, 3 s per load, 1,000 tenants.
    #[arg(long)]
    quick: bool,
    /// Longest a single wait (catch-up, rebuild) may take, in seconds.
    #[arg(long, default_value_t = 1800)]
    timeout: u64,
    /// Also append the figures to this Markdown file, one row each in a table
    /// (benchmark | ECS | floor | ECS / floor | target | verdict); the table
    /// (with its header) starts unless the file already ends in one.
    #[arg(long, value_name = "PATH")]
    markdown: Option<PathBuf>,
}

impl Args {
    fn resolved(mut self) -> Self {
        if self.quick {
            self.events = self.events.min(50_000);
            self.seconds = self.seconds.min(3.0);
            self.tenants = self.tenants.min(1_000);
        }
        if self.bench.iter().any(|b| b == "pit") && !self.bench.iter().any(|b| b == "rebuild") {
            self.bench.push("rebuild".to_owned());
        }
        self
    }

    fn runs(&self, name: &str) -> bool {
        self.bench.iter().any(|b| b == name)
    }

    fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.seconds)
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout)
    }

    /// Appends `rows` to the `--markdown` file, if there is one.
    fn markdown(&self, rows: &[Row]) -> anyhow::Result<()> {
        match &self.markdown {
            Some(path) => {
                append_rows(path, rows).with_context(|| format!("append to {}", path.display()))
            }
            None => Ok(()),
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse().resolved();
    for b in &args.bench {
        if !ALL.contains(&b.as_str()) {
            bail!("unknown benchmark {b:?}; expected one of {ALL:?}");
        }
    }
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    println!(
        "# ecs-bench harness: {} (events {}, {} s per load, concurrency {}, {} tenants x {} namespaces)",
        args.bench.join(","),
        args.events,
        args.seconds,
        args.concurrency,
        args.tenants,
        args.namespaces
    );
    if args.runs("reads") {
        reads(&args).await.context("reads benchmark")?;
    }
    if args.runs("writes") {
        writes(&args).await.context("writes benchmark")?;
    }
    if args.runs("rebuild") {
        rebuild(&args).await.context("rebuild benchmark")?;
    }
    if args.runs("scale") {
        scale(&args).await.context("scale benchmark")?;
    }
    if args.runs("validation") {
        validation(&args).await.context("validation benchmark")?;
    }
    if args.runs("flags") {
        flags(&args).await.context("flags benchmark")?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Servers and the in-process ECS app
// ---------------------------------------------------------------------------

struct Ecs {
    address: String,
    http: reqwest::Client,
    token: CancellationToken,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
    // Dropped after the app stops (fields drop in order).
    db: TestDatabase,
    nats: NatsServer,
}

impl Ecs {
    /// Fresh NATS and database, ECS not started yet.
    async fn servers() -> anyhow::Result<(NatsServer, TestDatabase, Settings)> {
        let nats = NatsServer::start();
        let db = TestDatabase::try_create().await?;
        let mut settings = settings_for(&nats, &db);
        settings.max_body_bytes = 1024 * 1024;
        Ok((nats, db, settings))
    }

    async fn start(nats: NatsServer, db: TestDatabase, settings: Settings) -> anyhow::Result<Ecs> {
        let app = Application::build(settings.clone())
            .await
            .context("build the ECS app")?;
        let address = format!("http://{}", app.address());
        let token = app.shutdown_token();
        let handle = tokio::spawn(app.run_until_stopped());
        Ok(Ecs {
            address,
            http: http_client(256)?,
            token,
            handle: Some(handle),
            db,
            nats,
        })
    }

    async fn fresh() -> anyhow::Result<Ecs> {
        let (nats, db, settings) = Ecs::servers().await?;
        let ecs = Ecs::start(nats, db, settings).await?;
        ecs.wait_ready(Duration::from_secs(60)).await?;
        Ok(ecs)
    }

    async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(r) = self
                .http
                .get(format!("{}/readyz", self.address))
                .send()
                .await
                && r.status() == reqwest::StatusCode::OK
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("ECS did not become ready within {timeout:?}")
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method.clone(), self.url(path))
            .bearer_auth(ADMIN_TOKEN);
        if !body.is_null() {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("{method} {path}: {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn put(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::PUT, path, body).await
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, path, &Value::Null).await
    }

    async fn stop(mut self) {
        self.token.cancel();
        if let Some(handle) = self.handle.take() {
            match tokio::time::timeout(Duration::from_secs(20), handle).await {
                Ok(Ok(Err(e))) => println!("  (ECS stopped with an error: {e:#})"),
                Err(_) => println!("  (ECS did not stop within 20 s)"),
                _ => {}
            }
        }
        // NATS is killed (and its store removed) when `self` drops here.
    }
}

impl Drop for Ecs {
    fn drop(&mut self) {
        self.token.cancel();
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }
}

fn http_client(pool: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(pool)
        .timeout(Duration::from_secs(60))
        .build()?)
}

async fn jetstream_of(
    nats: &NatsServer,
) -> anyhow::Result<(async_nats::Client, jetstream::Context)> {
    let client = async_nats::connect(nats.url()).await?;
    let js = jetstream::new(client.clone());
    Ok((client, js))
}

/// Resident memory of a process in KiB (`VmRSS` in `/proc/<pid>/status`).
fn rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

// ---------------------------------------------------------------------------
// Closed-loop load with latency percentiles
// ---------------------------------------------------------------------------

struct Stats {
    ok: usize,
    errors: usize,
    elapsed: Duration,
    /// Sorted latencies of the successful operations.
    latencies: Vec<Duration>,
    first_error: Option<String>,
}

impl Stats {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    fn pct(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i.min(self.latencies.len() - 1)]
    }

    fn line(&self, label: &str) -> String {
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
    fn cell(&self, unit: &str) -> String {
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

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

// ---------------------------------------------------------------------------
// --markdown: the figures as rows of one Markdown table
// ---------------------------------------------------------------------------

const TABLE_HEADER: &str = "| benchmark | ECS | floor | ECS / floor | target | verdict |";
const NONE: &str = "—";

/// One row of the `--markdown` table; empty cells read "—".
struct Row {
    benchmark: String,
    ecs: String,
    floor: String,
    ratio: String,
    target: String,
    verdict: &'static str,
}

impl Row {
    fn new(benchmark: impl Into<String>, ecs: impl Into<String>) -> Row {
        Row {
            benchmark: benchmark.into(),
            ecs: ecs.into(),
            floor: NONE.to_owned(),
            ratio: NONE.to_owned(),
            target: NONE.to_owned(),
            verdict: NONE,
        }
    }

    fn floor(mut self, floor: impl Into<String>) -> Row {
        self.floor = floor.into();
        self
    }

    fn ratio(mut self, ratio: impl Into<String>) -> Row {
        self.ratio = ratio.into();
        self
    }

    /// The target and whether the measured figure meets it (PASS or MISS).
    fn target(mut self, target: impl Into<String>, met: bool) -> Row {
        self.target = target.into();
        self.verdict = if met { "PASS" } else { "MISS" };
        self
    }

    fn markdown(&self) -> String {
        let cells = [
            self.benchmark.as_str(),
            &self.ecs,
            &self.floor,
            &self.ratio,
            &self.target,
            self.verdict,
        ];
        let cells: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
        format!("| {} |", cells.join(" | "))
    }
}

/// Appends `rows` to the Markdown file at `path` (created if missing),
/// continuing the results table the file ends with, or starting one.
fn append_rows(path: &Path, rows: &[Row]) -> anyhow::Result<()> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e.into()),
    };
    let mut text = String::new();
    if !existing.is_empty() && !existing.ends_with('\n') {
        text.push('\n');
    }
    // The first line of the table the file ends with, if it ends with one.
    let trailing_table = existing
        .lines()
        .rev()
        .take_while(|l| l.starts_with('|'))
        .last();
    if trailing_table != Some(TABLE_HEADER) {
        if !existing.trim().is_empty() && !existing.ends_with("\n\n") {
            text.push('\n');
        }
        text.push_str(TABLE_HEADER);
        text.push_str("\n| --- | --- | --- | --- | --- | --- |\n");
    }
    for row in rows {
        text.push_str(&row.markdown());
        text.push('\n');
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(text.as_bytes())?;
    Ok(())
}

/// `x` rounded to an integer, with thousands separators: `1,000,000`.
fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.abs());
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return format!("{x}");
    }
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x.round() < 0.0 {
        out.insert(0, '-');
    }
    out
}

/// Runs `op(worker, i)` in `concurrency` tasks for `duration` (after a short
/// unmeasured warm-up), each task issuing its next operation as soon as the
/// previous one answered.
async fn load<F, Fut>(concurrency: usize, duration: Duration, op: F) -> Stats
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let op = Arc::new(op);
    let counter = Arc::new(AtomicU64::new(0));
    let warmup = (duration / 5).min(Duration::from_secs(2));
    let start = Instant::now();
    let measure_from = start + warmup;
    let stop_at = measure_from + duration;
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let op = op.clone();
        let counter = counter.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(16_384);
            let (mut errors, mut first_error) = (0usize, None);
            loop {
                let began = Instant::now();
                if began >= stop_at {
                    break;
                }
                let i = counter.fetch_add(1, Ordering::Relaxed);
                let result = op(worker, i).await;
                let took = began.elapsed();
                if began < measure_from {
                    continue;
                }
                match result {
                    Ok(()) => latencies.push(took),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
            (latencies, errors, first_error)
        }));
    }
    let mut stats = Stats {
        ok: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
        first_error: None,
    };
    for task in tasks {
        match task.await {
            Ok((latencies, errors, first_error)) => {
                stats.latencies.extend(latencies);
                stats.errors += errors;
                if stats.first_error.is_none() {
                    stats.first_error = first_error;
                }
            }
            Err(e) => {
                stats.errors += 1;
                stats.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    // Operations still running at `stop_at` finish late: measure to the end.
    stats.elapsed = measure_from.elapsed().max(duration);
    stats.ok = stats.latencies.len();
    stats.latencies.sort_unstable();
    stats
}

// ---------------------------------------------------------------------------
// reads: resolved reads over HTTP vs a static axum handler
// ---------------------------------------------------------------------------

const READ_NS: &str = "bench";

fn bench_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "payment": {"type": "object", "properties": {
                "provider": {"type": "string", "default": "stripe"},
                "retries": {"type": "integer", "default": 3}
            }},
            "limits": {"type": "object"},
            "features": {"type": "object"}
        }
    })
}

/// A namespace with a global, an env, an edition and a tenant layer, and the
/// tenant; returns the resolved path of that tenant in prod.
async fn seed_read_namespace(ecs: &Ecs) -> anyhow::Result<String> {
    ecs.put(
        &format!("/v1/namespaces/{READ_NS}"),
        &json!({"description": "benchmark", "schema": bench_schema()}),
    )
    .await?;
    ecs.put("/v1/tenants/t1", &json!({"edition": "pro"}))
        .await?;
    let layers = [
        (
            "",
            json!({"limits": {"rps": 100, "burst": 200}, "features": {"search": false, "export": true}}),
        ),
        (
            "env=prod",
            json!({"payment": {"retries": 5}, "limits": {"rps": 500}}),
        ),
        (
            "edition=pro",
            json!({"features": {"search": true}, "limits": {"burst": 1000}}),
        ),
        (
            "tenant=t1",
            json!({"payment": {"provider": "adyen"}, "features": {"beta": ["a", "b", "c"]}}),
        ),
    ];
    for (scope, values) in layers {
        ecs.put(
            &format!("/v1/namespaces/{READ_NS}/layer?{scope}"),
            &json!({"values": values, "message": "seed"}),
        )
        .await?;
    }
    Ok(format!(
        "/v1/namespaces/{READ_NS}/resolved?env=prod&tenant=t1"
    ))
}

/// A tiny axum server answering `path` with `body` (and the same content
/// type), ignoring the query string and the token.
async fn static_server(
    body: Bytes,
    shutdown: CancellationToken,
) -> anyhow::Result<(String, JoinHandle<()>)> {
    let app = axum::Router::new().route(
        &format!("/v1/namespaces/{READ_NS}/resolved"),
        axum::routing::get(move || {
            let body = body.clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = format!("http://{}", listener.local_addr()?);
    let handle = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
    });
    Ok((address, handle))
}

async fn get_ok(http: reqwest::Client, url: String, auth: bool) -> anyhow::Result<()> {
    let mut request = http.get(&url);
    if auth {
        request = request.bearer_auth(ADMIN_TOKEN);
    }
    let response = request.send().await?;
    let status = response.status();
    let body = response.bytes().await?;
    if status != reqwest::StatusCode::OK || body.is_empty() {
        bail!("GET {url}: {status}");
    }
    Ok(())
}

async fn reads(args: &Args) -> anyhow::Result<()> {
    println!(
        "\n## reads: resolved reads over HTTP, warm cache, concurrency {}",
        args.concurrency
    );
    let ecs = Ecs::fresh().await?;
    let path = seed_read_namespace(&ecs).await?;
    let body = ecs
        .http
        .get(ecs.url(&path))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await?
        .bytes()
        .await?;
    println!(
        "  document: {} bytes: {}",
        body.len(),
        String::from_utf8_lossy(&body)
    );
    let shutdown = CancellationToken::new();
    let (static_address, static_handle) = static_server(body.clone(), shutdown.clone()).await?;

    let http = http_client(args.concurrency)?;
    let floor_url = format!("{static_address}{path}");
    let h = http.clone();
    let floor = load(args.concurrency, args.duration(), move |_, _| {
        get_ok(h.clone(), floor_url.clone(), true)
    })
    .await;
    let ecs_url = ecs.url(&path);
    let h = http.clone();
    let measured = load(args.concurrency, args.duration(), move |_, _| {
        get_ok(h.clone(), ecs_url.clone(), true)
    })
    .await;
    println!("{}", floor.line("floor: static axum handler, same bytes"));
    println!(
        "{}",
        measured.line("ECS GET .../resolved?env=prod&tenant=t1")
    );
    let share = 100.0 * measured.rate() / floor.rate();
    println!("  ECS / floor: {share:.1} % of the throughput (target >= {READS_TARGET_SHARE} %)");
    args.markdown(&[Row::new(
        format!("resolved reads, {} clients", args.concurrency),
        measured.cell("req/s"),
    )
    .floor(floor.cell("req/s"))
    .ratio(format!("{share:.1} % of the rate"))
    .target(
        format!("≥ {READS_TARGET_SHARE} % of the rate"),
        share.is_finite() && share >= READS_TARGET_SHARE,
    )])?;
    shutdown.cancel();
    let _ = static_handle.await;
    ecs.stop().await;
    Ok(())
}

// ---------------------------------------------------------------------------
// writes: PATCH over HTTP vs raw JetStream publish + ack
// ---------------------------------------------------------------------------

fn write_body(i: u64) -> Value {
    json!({
        "values": {"limits": {"rps": i % 1000, "burst": 2000}, "features": {"rollout": (i % 100) as f64 / 100.0}},
        "message": format!("bench write {i}")
    })
}

async fn writes(args: &Args) -> anyhow::Result<()> {
    println!(
        "\n## writes: durable writes, concurrency {} (one layer per worker; ECS waits for the projection: ECS_WRITE_WAIT_MS)",
        args.concurrency
    );
    let ecs = Ecs::fresh().await?;
    ecs.put(
        &format!("/v1/namespaces/{READ_NS}"),
        &json!({"description": "benchmark", "schema": bench_schema()}),
    )
    .await?;
    for w in 0..args.concurrency {
        ecs.put(
            &format!("/v1/namespaces/{READ_NS}/layer?env=w{w}"),
            &json!({"values": {}, "message": "seed"}),
        )
        .await?;
    }
    println!(
        "  payload: {} bytes, e.g. {}",
        serde_json::to_vec(&write_body(7))?.len(),
        write_body(7)
    );

    // Floor: the same payloads published to a file stream with an ack each.
    let (_client, js) = jetstream_of(&ecs.nats).await?;
    js.get_or_create_stream(stream::Config {
        name: "BENCH_FLOOR".to_owned(),
        subjects: vec!["bench.floor.>".to_owned()],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|e| anyhow!("create the floor stream: {e}"))?;
    let floor_js = js.clone();
    let floor = load(args.concurrency, args.duration(), move |w, i| {
        let js = floor_js.clone();
        async move {
            let payload = Bytes::from(serde_json::to_vec(&write_body(i))?);
            let mut headers = HeaderMap::new();
            headers.insert("Nats-Msg-Id", uuid::Uuid::now_v7().to_string().as_str());
            js.publish_with_headers(format!("bench.floor.w{w}"), headers, payload)
                .await?
                .await?;
            Ok(())
        }
    })
    .await;

    let http = http_client(args.concurrency)?;
    let base = ecs.address.clone();
    let measured = load(args.concurrency, args.duration(), move |w, i| {
        let http = http.clone();
        let url = format!("{base}/v1/namespaces/{READ_NS}/layer?env=w{w}");
        async move {
            let response = http
                .patch(&url)
                .bearer_auth(ADMIN_TOKEN)
                .json(&write_body(i))
                .send()
                .await?;
            let status = response.status();
            let text = response.text().await?;
            if !status.is_success() {
                bail!("PATCH {status}: {text}");
            }
            Ok(())
        }
    })
    .await;
    println!(
        "{}",
        floor.line("floor: JetStream publish + ack, same bytes")
    );
    println!("{}", measured.line("ECS PATCH .../layer?env=w<worker>"));
    let share = 100.0 * measured.rate() / floor.rate();
    let slower = measured.pct(0.5).as_secs_f64() / floor.pct(0.5).as_secs_f64().max(1e-9);
    println!("  ECS / floor: {share:.1} % of the throughput; p50 {slower:.1}x the floor's");
    args.markdown(&[Row::new(
        format!("durable writes, {} clients", args.concurrency),
        measured.cell("writes/s"),
    )
    .floor(floor.cell("publishes/s"))
    .ratio(format!("{share:.1} % of the rate; p50 {slower:.1}×"))])?;
    ecs.stop().await;
    Ok(())
}

// ---------------------------------------------------------------------------
// rebuild: replay N events into fresh projections vs an ordered-consumer read
// ---------------------------------------------------------------------------

const REBUILD_NAMESPACES: usize = 5;
const REBUILD_TENANTS: usize = 100;
const ENVS: [&str; 3] = ["dev", "staging", "prod"];

fn tenant_name(i: usize) -> String {
    format!("t{i:03}")
}

/// The 200 scopes of each rebuild namespace: global, 3 envs, 100 tenants and
/// 96 prod+tenant layers (1,000 layers over 5 namespaces).
fn rebuild_scopes() -> anyhow::Result<Vec<Scope>> {
    let mut scopes = vec![Scope::global()];
    for env in ENVS {
        scopes.push(Scope {
            env: Some(EnvName::parse(env)?),
            ..Scope::default()
        });
    }
    for t in 0..REBUILD_TENANTS {
        scopes.push(Scope {
            tenant: Some(TenantId::parse(tenant_name(t))?),
            ..Scope::default()
        });
    }
    for t in 0..96 {
        scopes.push(Scope {
            env: Some(EnvName::parse("prod")?),
            tenant: Some(TenantId::parse(tenant_name(t))?),
            ..Scope::default()
        });
    }
    Ok(scopes)
}

/// Publishes with up to `WINDOW` acknowledgements outstanding.
struct Publisher {
    js: jetstream::Context,
    inflight: FuturesUnordered<futures::future::BoxFuture<'static, anyhow::Result<()>>>,
    published: u64,
}

const WINDOW: usize = 4096;

impl Publisher {
    async fn message<E: serde::Serialize>(
        &mut self,
        subject: String,
        message: &EventMessage<E>,
    ) -> anyhow::Result<()> {
        let payload = Bytes::from(serde_json::to_vec(message)?);
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", message.command_id.as_str());
        while self.inflight.len() >= WINDOW {
            if let Some(ack) = self.inflight.next().await {
                ack?;
            }
        }
        let ack = self
            .js
            .publish_with_headers(subject, headers, payload)
            .await?;
        self.inflight.push(Box::pin(async move {
            ack.await?;
            Ok(())
        }));
        self.published += 1;
        Ok(())
    }

    async fn flush(&mut self) -> anyhow::Result<()> {
        while let Some(ack) = self.inflight.next().await {
            ack?;
        }
        Ok(())
    }
}

fn envelope(
    aggregate_type: &str,
    aggregate_id: String,
    revision: u64,
    event: Value,
) -> EventMessage<Value> {
    EventMessage {
        v: FORMAT_VERSION,
        command_id: uuid::Uuid::now_v7().to_string(),
        aggregate_type: aggregate_type.to_owned(),
        aggregate_id,
        revision,
        at: time::OffsetDateTime::now_utc(),
        actor: "bench".to_owned(),
        events: vec![event],
        metadata: HashMap::from([("role".to_owned(), "admin".to_owned())]),
        sealed: None,
    }
}

/// Publishes the namespace and tenant definitions, then layer revisions
/// round-robin over the 1,000 layers until `events` messages are in the
/// stream. Tenant data (tenant-scoped layer values, tenant names) is sealed
/// with the tenant's key as the store does.
async fn generate(js: &jetstream::Context, keyring: &Keyring, events: u64) -> anyhow::Result<u64> {
    use cqrs_es::Aggregate;
    let mut publisher = Publisher {
        js: js.clone(),
        inflight: FuturesUnordered::new(),
        published: 0,
    };
    let namespaces: Vec<NamespaceName> = (0..REBUILD_NAMESPACES)
        .map(|n| NamespaceName::parse(format!("ns{n}")))
        .collect::<Result<_, _>>()?;
    for ns in &namespaces {
        let event = serde_json::to_value(NamespaceEvent::NamespaceDefined {
            name: ns.clone(),
            revision: 1,
            kind: NamespaceKind::Config,
            description: "benchmark".to_owned(),
            schema: Some(bench_schema()),
            approval: None,
        })?;
        let message = envelope(&Namespace::aggregate_type(), ns.to_string(), 1, event);
        publisher
            .message(subject::<Namespace>(ns.as_str()), &message)
            .await?;
    }
    for t in 0..REBUILD_TENANTS {
        let id = TenantId::parse(tenant_name(t))?;
        let event = serde_json::to_value(TenantEvent::TenantDefined {
            id: id.clone(),
            revision: 1,
            name: Some(format!("Tenant {t}")),
            edition: EditionName::parse(if t % 3 == 0 { "enterprise" } else { "pro" })?,
        })?;
        let mut message = envelope(&Tenant::aggregate_type(), id.to_string(), 1, event);
        keyring.seal_message(&mut message).await?;
        publisher
            .message(subject::<Tenant>(id.as_str()), &message)
            .await?;
    }
    let scopes = rebuild_scopes()?;
    let layers: Vec<(NamespaceName, Scope, String)> = namespaces
        .iter()
        .flat_map(|ns| {
            scopes
                .iter()
                .map(move |s| (ns.clone(), s.clone(), layer_id(ns, s)))
        })
        .collect();
    let layer_type = Layer::aggregate_type();
    let remaining = events.saturating_sub(publisher.published);
    let started = Instant::now();
    for i in 0..remaining {
        let (ns, scope, id) = &layers[(i % layers.len() as u64) as usize];
        let revision = i / layers.len() as u64 + 1;
        let event = serde_json::to_value(LayerEvent::LayerChanged {
            namespace: ns.clone(),
            scope: scope.clone(),
            revision,
            values: json!({
                "limits": {"rps": i % 5000, "burst": 2 * (i % 5000)},
                "features": {"search": i % 2 == 0, "rollout": (i % 100) as f64 / 100.0},
                "payment": {"retries": i % 7}
            }),
            lock: vec![],
            message: format!("change {revision}"),
            change: if revision == 1 {
                LayerChange::Replaced
            } else {
                LayerChange::Patched
            },
        })?;
        let mut message = envelope(&layer_type, id.clone(), revision, event);
        keyring.seal_message(&mut message).await?;
        publisher.message(subject::<Layer>(id), &message).await?;
        if (i + 1) % 200_000 == 0 {
            println!(
                "  ... {} events published ({:.0}/s)",
                i + 1,
                (i + 1) as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    publisher.flush().await?;
    Ok(publisher.published)
}

async fn stream_last(js: &jetstream::Context, name: &str) -> anyhow::Result<u64> {
    let mut stream = js.get_stream(name).await?;
    Ok(stream.info().await?.state.last_sequence)
}

/// Reads the whole events stream with an ordered consumer; with `decode`,
/// also parses each message and opens its sealed data as the projector does.
async fn ordered_read(
    js: &jetstream::Context,
    last: u64,
    keyring: Option<&Keyring>,
) -> anyhow::Result<Duration> {
    let stream = js.get_stream("ECS_EVENTS").await?;
    let started = Instant::now();
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    while let Some(message) = messages.next().await {
        let message = message?;
        if let Some(keyring) = keyring {
            read_message(&message.payload, Some(keyring)).await?;
        }
        if message.info().map_err(|e| anyhow!("{e}"))?.stream_sequence >= last {
            break;
        }
    }
    Ok(started.elapsed())
}

#[derive(serde::Deserialize, Debug, Clone, Copy)]
struct Status {
    applied: u64,
    target: u64,
    rebuilding: bool,
}

async fn projection_status(ecs: &Ecs) -> anyhow::Result<Status> {
    Ok(serde_json::from_value(
        ecs.get("/v1/admin/projections").await?,
    )?)
}

/// Waits until the feed bucket stops growing (the feed publisher caught up).
async fn wait_feed_settled(js: &jetstream::Context, timeout: Duration) -> anyhow::Result<u64> {
    let deadline = Instant::now() + timeout;
    let name = format!("KV_{FEED_BUCKET}");
    let mut last = (u64::MAX, Instant::now());
    while Instant::now() < deadline {
        let seq = stream_last(js, &name).await.unwrap_or(0);
        if seq != last.0 {
            last = (seq, Instant::now());
        } else if seq > 0 && last.1.elapsed() > Duration::from_secs(2) {
            return Ok(seq);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("the feed publisher did not settle within {timeout:?}")
}

async fn rebuild(args: &Args) -> anyhow::Result<()> {
    println!(
        "\n## rebuild: {} events replayed into fresh projections",
        args.events
    );
    let (nats, db, settings) = Ecs::servers().await?;
    let (_client, js) = jetstream_of(&nats).await?;
    ensure_stream(&js, &StreamSettings::default()).await?;
    let keyring = Keyring::connect(&js, settings.master_key.as_deref(), 1).await?;
    let started = Instant::now();
    let published = generate(&js, &keyring, args.events).await?;
    let last = stream_last(&js, "ECS_EVENTS").await?;
    println!(
        "  generated {published} messages in {:.1} s ({:.0}/s): 5 namespaces, 100 tenants, 1,000 layers \
         (tenant data sealed with the tenant keys); stream last position {last}",
        started.elapsed().as_secs_f64(),
        published as f64 / started.elapsed().as_secs_f64()
    );

    // Floors, before ECS runs (nothing else competes for the CPU).
    let raw = ordered_read(&js, last, None).await?;
    let decoded = ordered_read(&js, last, Some(&keyring)).await?;

    // ECS starts on the full log: its projector starts catching up and its
    // feed publisher replays the log into the feed bucket. Wait until the
    // feed has settled, so that only the rebuild runs while it is measured.
    let ecs = Ecs::start(nats, db, settings).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while projection_status(&ecs).await.is_err() {
        if Instant::now() > deadline {
            bail!("ECS did not answer within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let feed_started = Instant::now();
    wait_feed_settled(&js, args.timeout()).await?;
    let feed = feed_started
        .elapsed()
        .saturating_sub(Duration::from_secs(2));

    // The measured rebuild: nothing else running.
    let answer = ecs
        .call(
            reqwest::Method::POST,
            "/v1/admin/projections/rebuild",
            &Value::Null,
        )
        .await?;
    let started = Instant::now();
    let target = answer["target_position"].as_u64().unwrap_or(last);
    let deadline = started + args.timeout();
    let mut next_report = Instant::now() + Duration::from_secs(30);
    loop {
        let status = projection_status(&ecs).await?;
        if status.applied >= status.target && status.target >= target && !status.rebuilding {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "the rebuild did not finish within {:?}: {status:?}",
                args.timeout()
            );
        }
        if Instant::now() > next_report {
            println!(
                "  ... {} / {} applied ({:.0}/s)",
                status.applied,
                status.target,
                status.applied as f64 / started.elapsed().as_secs_f64()
            );
            next_report += Duration::from_secs(30);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rebuilt = started.elapsed();
    let per_s = |d: Duration| last as f64 / d.as_secs_f64();
    let share = 100.0 * raw.as_secs_f64() / rebuilt.as_secs_f64();
    println!(
        "floor: ordered consumer, raw read               {:>10.0} events/s  ({:.2} s)",
        per_s(raw),
        raw.as_secs_f64()
    );
    println!(
        "floor: ordered consumer + decode + open seals   {:>10.0} events/s  ({:.2} s)",
        per_s(decoded),
        decoded.as_secs_f64()
    );
    println!(
        "ECS feed publisher on a fresh start (approx.)   {:>10.0} events/s  ({:.2} s, projector running too)",
        per_s(feed),
        feed.as_secs_f64()
    );
    println!(
        "ECS POST /v1/admin/projections/rebuild          {:>10.0} events/s  ({:.2} s; target >= {}/s)",
        per_s(rebuilt),
        rebuilt.as_secs_f64(),
        thousands(REBUILD_TARGET_PER_S)
    );
    println!("  ECS rebuild / raw read: {share:.1} %");
    let size = database_size(&ecs).await;
    if let Some(size) = &size {
        println!("  projection database size after the rebuild: {size}");
    }
    let raw_floor = format!(
        "raw ordered read {} events/s ({:.2} s)",
        thousands(per_s(raw)),
        raw.as_secs_f64()
    );
    args.markdown(&[
        Row::new(
            format!("rebuild, {} events", thousands(last as f64)),
            format!(
                "{} events/s ({:.2} s){}",
                thousands(per_s(rebuilt)),
                rebuilt.as_secs_f64(),
                size.map(|s| format!("; projection database {s} after"))
                    .unwrap_or_default()
            ),
        )
        .floor(format!(
            "{raw_floor}; read + decode + open seals {} events/s ({:.2} s)",
            thousands(per_s(decoded)),
            decoded.as_secs_f64()
        ))
        .ratio(format!("{share:.1} % of the raw read"))
        .target(
            format!("≥ {} events/s", thousands(REBUILD_TARGET_PER_S)),
            per_s(rebuilt) >= REBUILD_TARGET_PER_S,
        ),
        Row::new(
            "feed publisher replay on a fresh start (approx., projector running too)",
            format!(
                "{} events/s ({:.2} s)",
                thousands(per_s(feed)),
                feed.as_secs_f64()
            ),
        )
        .floor(raw_floor)
        .ratio(format!(
            "{:.1} % of the raw read",
            100.0 * raw.as_secs_f64() / feed.as_secs_f64()
        )),
    ])?;

    if args.runs("pit") {
        point_in_time(args, &ecs, last).await?;
    }
    ecs.stop().await;
    Ok(())
}

/// The projection database's size, as PostgreSQL prints it (`1651 MB`).
async fn database_size(ecs: &Ecs) -> Option<String> {
    let pool = ecs.db.pool().await.ok()?;
    let size = sqlx::query_scalar("SELECT pg_size_pretty(pg_database_size(current_database()))")
        .fetch_one(&pool)
        .await
        .ok();
    pool.close().await;
    size
}

// ---------------------------------------------------------------------------
// pit: point-in-time resolved reads at random past positions
// ---------------------------------------------------------------------------

async fn point_in_time(args: &Args, ecs: &Ecs, last: u64) -> anyhow::Result<()> {
    println!(
        "\n## pit: point-in-time resolved reads at random past positions ({last} events in the log)"
    );
    let http = http_client(args.concurrency)?;
    let base = ecs.address.clone();
    let first = (REBUILD_NAMESPACES + REBUILD_TENANTS) as u64 + 1;
    let make = move |http: reqwest::Client, base: String| {
        move |_: usize, _: u64| {
            let (ns, tenant, position) = {
                let mut rng = rand::thread_rng();
                (
                    rng.gen_range(0..REBUILD_NAMESPACES),
                    rng.gen_range(0..REBUILD_TENANTS),
                    rng.gen_range(first..=last.max(first)),
                )
            };
            let url = format!(
                "{base}/v1/namespaces/ns{ns}/resolved?env=prod&tenant={}&position={position}",
                tenant_name(tenant)
            );
            get_ok(http.clone(), url, true)
        }
    };
    let single = load(1, args.duration(), make(http.clone(), base.clone())).await;
    println!(
        "{}",
        single.line("ECS resolved?position=<random>, 1 client")
    );
    let loaded = load(args.concurrency, args.duration(), make(http, base)).await;
    println!(
        "{}",
        loaded.line(&format!(
            "ECS resolved?position=<random>, {} clients",
            args.concurrency
        ))
    );
    let p99 = single.pct(0.99);
    println!(
        "  p99 {} at 1 client (target < {PIT_TARGET_P99_MS} ms)",
        ms(p99)
    );
    args.markdown(&[
        Row::new(
            format!(
                "point-in-time resolved, {} events, 1 client",
                thousands(last as f64)
            ),
            single.cell("req/s"),
        )
        .target(
            format!("p99 < {PIT_TARGET_P99_MS} ms"),
            single.ok > 0 && p99.as_secs_f64() * 1000.0 < PIT_TARGET_P99_MS,
        ),
        Row::new(
            format!("point-in-time resolved, {} clients", args.concurrency),
            loaded.cell("req/s"),
        ),
    ])?;
    Ok(())
}

// ---------------------------------------------------------------------------
// scale: memory and SDK bootstrap with many tenants and namespaces
// ---------------------------------------------------------------------------

async fn scale(args: &Args) -> anyhow::Result<()> {
    println!(
        "\n## scale: {} tenants, {} namespaces (server in-process: RSS is this process's)",
        args.tenants, args.namespaces
    );
    let ecs = Ecs::fresh().await?;
    let rss_before = rss_kib("self").unwrap_or(0);
    let started = Instant::now();
    let namespaces: Vec<String> = (0..args.namespaces).map(|n| format!("svc{n:02}")).collect();
    for ns in &namespaces {
        ecs.put(
            &format!("/v1/namespaces/{ns}"),
            &json!({"description": "benchmark", "schema": bench_schema()}),
        )
        .await?;
    }
    let editions = ["standard", "pro", "enterprise"];
    let ecs = Arc::new(ecs);
    let tenants = Arc::new(AtomicU64::new(0));
    let total = args.tenants as u64;
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (ecs, tenants) = (ecs.clone(), tenants.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let t = tenants.fetch_add(1, Ordering::Relaxed);
                if t >= total {
                    return anyhow::Ok(());
                }
                ecs.put(
                    &format!("/v1/tenants/s{t:05}"),
                    &json!({"edition": editions[(t % 3) as usize], "name": format!("Tenant {t}")}),
                )
                .await?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    let mut layers = 0;
    for ns in &namespaces {
        let mut scopes = vec![
            "".to_owned(),
            "env=prod".to_owned(),
            "env=dev".to_owned(),
            "edition=enterprise".to_owned(),
        ];
        for k in 0..5 {
            scopes.push(format!(
                "tenant=s{:05}",
                (k * 1999 + ns.len() * 7) % args.tenants.max(1)
            ));
        }
        for scope in scopes {
            ecs.put(
                &format!("/v1/namespaces/{ns}/layer?{scope}"),
                &json!({"values": {"limits": {"rps": 100 + layers}, "features": {"search": layers % 2 == 0}}, "message": "seed"}),
            )
            .await?;
            layers += 1;
        }
    }
    let loading = started.elapsed();
    // Warm the read cache for every namespace, once.
    for ns in &namespaces {
        ecs.get(&format!(
            "/v1/namespaces/{ns}/resolved?env=prod&tenant=s00001"
        ))
        .await?;
    }
    let rss_after = rss_kib("self").unwrap_or(0);
    let (_client, js) = jetstream_of(&ecs.nats).await?;
    let last = stream_last(&js, "ECS_EVENTS").await?;
    let feed = wait_feed_settled(&js, args.timeout()).await?;
    let loaded = format!(
        "{} tenants, {} namespaces, {layers} layers ({last} events) over HTTP in {:.1} s ({:.0} writes/s at concurrency {})",
        args.tenants,
        args.namespaces,
        loading.as_secs_f64(),
        last as f64 / loading.as_secs_f64(),
        args.concurrency
    );
    println!("  loaded {loaded}");
    let rss = format!(
        "{:.1} MiB before loading, {:.1} MiB after (+{:.1} MiB)",
        mib(rss_before),
        mib(rss_after),
        mib(rss_after.saturating_sub(rss_before))
    );
    println!("  RSS (harness + in-process ECS): {rss}");
    let nats_rss =
        nats_pid(&ecs.nats).map(|pid| format!("{:.1} MiB", mib(rss_kib(&pid).unwrap_or(0))));
    if let Some(nats_rss) = &nats_rss {
        println!("  nats-server RSS: {nats_rss}");
    }

    // SDK bootstrap, three times: connect returns once the followed namespaces
    // (and every tenant) are loaded from the feed bucket.
    let mut times = Vec::new();
    let mut sdk_rss = 0;
    for round in 0..3 {
        let rss0 = rss_kib("self").unwrap_or(0);
        let settings = ecs_client::ClientSettings::new(ecs.nats.url(), namespaces.iter())?;
        let started = Instant::now();
        let client = ecs_client::Client::connect(settings).await?;
        let took = started.elapsed();
        let context = ecs_client::Context::from_pairs([("env", "prod"), ("tenant", "s00001")])?;
        let resolved = client.resolve(&namespaces[0], &context)?;
        if round == 0 {
            sdk_rss = rss_kib("self").unwrap_or(0).saturating_sub(rss0);
            println!(
                "  SDK applied position {} (feed bucket last {feed}), resolved {}",
                client.applied_position(),
                resolved.values
            );
        }
        times.push(took);
        client.close();
    }
    times.sort();
    let bootstrap = format!(
        "median {}, min {}, max {}; first client +{:.1} MiB RSS",
        ms(times[1]),
        ms(times[0]),
        ms(times[2]),
        mib(sdk_rss)
    );
    println!(
        "  SDK Client::connect (bootstrap {} namespaces, {} tenants): {bootstrap}",
        args.namespaces, args.tenants,
    );
    args.markdown(&[
        Row::new("scale: loading", loaded),
        Row::new(
            "scale: memory",
            format!(
                "bench process (harness + in-process ECS) RSS {rss}{}",
                nats_rss
                    .map(|r| format!("; nats-server RSS {r}"))
                    .unwrap_or_default()
            ),
        ),
        Row::new(
            format!(
                "scale: SDK bootstrap, {} namespaces, {} tenants",
                args.namespaces, args.tenants
            ),
            format!("`Client::connect` (3 runs) {bootstrap}"),
        ),
    ])?;
    match Arc::try_unwrap(ecs) {
        Ok(ecs) => ecs.stop().await,
        Err(_) => bail!("the ECS handle is still shared"),
    }
    Ok(())
}

/// The pid of the `nats-server` using this server's store, from `/proc`.
fn nats_pid(nats: &NatsServer) -> Option<String> {
    let needle = nats.store_dir().to_string_lossy().to_string();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let pid = entry.file_name().to_string_lossy().to_string();
        if !pid.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline);
            if cmdline.contains("nats-server") && cmdline.contains(&needle) {
                return Some(pid);
            }
        }
    }
    None
}

// ---------------------------------------------------------------------------
// validation: one global write, checked in every context it can change
// ---------------------------------------------------------------------------

/// Timed global writes per namespace; the median is reported.
const VALIDATION_WRITES: usize = 21;

/// Target: a global write with `--tenants` tenant layers takes at most this
/// many times a global write with no other layers.
const VALIDATION_TARGET_RATIO: f64 = 10.0;

/// A schema with a rule across keys (`discount` requires `coupon`), so that
/// every context's document is checked as a whole.
fn validation_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "coupon": {"type": "string"},
            "discount": {"type": "integer", "minimum": 0},
            "limits": {"type": "object", "properties": {"rps": {"type": "integer"}}},
            "features": {"type": "object"}
        },
        "dependentRequired": {"discount": ["coupon"]}
    })
}

/// The values of tenant `t`'s layer in the validation benchmark.
fn validation_tenant_values(t: usize) -> Value {
    json!({"discount": t % 50, "limits": {"rps": 100 + t % 7}, "features": {"beta": t.is_multiple_of(2)}})
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// The write-time check alone, in process: the global write against
/// `tenants` tenant layers held in memory (no I/O), median of a few runs.
fn validation_check_alone(tenants: usize) -> anyhow::Result<Duration> {
    use ecs_domain::contexts::{LayerWrite, SchemaCheck};
    use ecs_domain::schema::CompiledSchema;
    use ecs_domain::{LayerRef, NamespaceKind, Precedence, json::schema_defaults};

    let schema = validation_schema();
    let compiled = CompiledSchema::compile(&schema)?;
    let defaults = schema_defaults(&schema);
    let precedence = Precedence::default();
    let editions_of = ["standard", "pro", "enterprise"];
    let mut scopes = Vec::new();
    let mut editions = std::collections::BTreeMap::new();
    for t in 0..tenants {
        let tenant = TenantId::parse(format!("v{t:05}"))?;
        editions.insert(tenant.clone(), EditionName::parse(editions_of[t % 3])?);
        scopes.push(Scope {
            tenant: Some(tenant),
            ..Scope::global()
        });
    }
    let values: Vec<Value> = (0..tenants).map(validation_tenant_values).collect();
    let others: Vec<LayerRef<'_>> = scopes
        .iter()
        .zip(&values)
        .map(|(scope, values)| LayerRef {
            scope,
            values,
            revision: 1,
            lock: &[],
        })
        .collect();
    let global = Scope::global();
    let before = json!({"coupon": "C0"});
    let after = json!({"coupon": "C1"});
    let check = SchemaCheck {
        schema: Some((&schema, &compiled)),
        kind: NamespaceKind::Config,
        defaults: &defaults,
        precedence: &precedence,
    };
    let write = LayerWrite {
        before: Some(LayerRef {
            scope: &global,
            values: &before,
            revision: 1,
            lock: &[],
        }),
        after: LayerRef {
            scope: &global,
            values: &after,
            revision: 2,
            lock: &[],
        },
    };
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let violations = check.write_violations(&write, &others, &editions);
        times.push(started.elapsed());
        if !violations.is_empty() {
            bail!("the benchmark's write should pass: {violations:?}");
        }
    }
    Ok(median(&mut times))
}

async fn validation(args: &Args) -> anyhow::Result<()> {
    println!(
        "\n## validation: one global write with {} tenant layers vs one with no other layers",
        args.tenants
    );
    let ecs = Arc::new(Ecs::fresh().await?);
    for ns in ["alone", "wide"] {
        ecs.put(
            &format!("/v1/namespaces/{ns}"),
            &json!({"description": "benchmark", "schema": validation_schema()}),
        )
        .await?;
        ecs.put(
            &format!("/v1/namespaces/{ns}/layer"),
            &json!({"values": {"coupon": "C0", "limits": {"rps": 50}}}),
        )
        .await?;
    }
    let started = Instant::now();
    let editions = ["standard", "pro", "enterprise"];
    let next = Arc::new(AtomicU64::new(0));
    let total = args.tenants as u64;
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (ecs, next) = (ecs.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let t = next.fetch_add(1, Ordering::Relaxed);
                if t >= total {
                    return anyhow::Ok(());
                }
                ecs.put(
                    &format!("/v1/tenants/v{t:05}"),
                    &json!({"edition": editions[(t % 3) as usize]}),
                )
                .await?;
                ecs.put(
                    &format!("/v1/namespaces/wide/layer?tenant=v{t:05}"),
                    &json!({"values": validation_tenant_values(t as usize)}),
                )
                .await?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    println!(
        "  loaded {} tenants and their layers over HTTP in {:.1} s",
        args.tenants,
        started.elapsed().as_secs_f64()
    );
    let (_client, js) = jetstream_of(&ecs.nats).await?;
    wait_feed_settled(&js, args.timeout()).await?;

    // The two kinds of write alternate, so both see the same background.
    let (mut floor, mut wide) = (Vec::new(), Vec::new());
    for i in 0..VALIDATION_WRITES {
        for (ns, times) in [("alone", &mut floor), ("wide", &mut wide)] {
            let started = Instant::now();
            ecs.call(
                reqwest::Method::PATCH,
                &format!("/v1/namespaces/{ns}/layer"),
                &json!({"values": {"coupon": format!("C{}", i + 1)}}),
            )
            .await?;
            times.push(started.elapsed());
        }
    }
    let (floor, wide) = (median(&mut floor), median(&mut wide));
    let ratio = wide.as_secs_f64() / floor.as_secs_f64();
    let check = validation_check_alone(args.tenants)?;
    let check_floor = validation_check_alone(0)?;
    println!(
        "  global PATCH, {} tenant layers: median {} ({VALIDATION_WRITES} writes)",
        args.tenants,
        ms(wide)
    );
    println!(
        "  floor: global PATCH, no other layers: median {}",
        ms(floor)
    );
    println!("  ECS / floor: {ratio:.1}x (target <= {VALIDATION_TARGET_RATIO}x)");
    println!(
        "  of which the check in every context (in process, no I/O): {} ({} with no other layers)",
        ms(check),
        ms(check_floor)
    );
    args.markdown(&[Row::new(
        format!(
            "validation: one global write, {} tenant layers",
            thousands(args.tenants as f64)
        ),
        format!(
            "median {} over HTTP ({VALIDATION_WRITES} writes); the check in every context alone {}",
            ms(wide),
            ms(check)
        ),
    )
    .floor(format!(
        "median {}: the same write with no other layers (check alone {})",
        ms(floor),
        ms(check_floor)
    ))
    .ratio(format!("{ratio:.1}×"))
    .target(
        format!("≤ {VALIDATION_TARGET_RATIO}×"),
        ratio <= VALIDATION_TARGET_RATIO,
    )])?;
    match Arc::try_unwrap(ecs) {
        Ok(ecs) => ecs.stop().await,
        Err(_) => bail!("the ECS handle is still shared"),
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// flags: SDK-local evaluation, no request
// ---------------------------------------------------------------------------

/// Evaluates flags in the Rust SDK from its local state: a static flag, a
/// targeted rule and a percentage rollout, for rotating users of one tenant.
async fn flags(args: &Args) -> anyhow::Result<()> {
    println!("\n## flags: SDK-local evaluation (ecs-client Client::flag), one thread");
    let ecs = Ecs::fresh().await?;
    ecs.put("/v1/namespaces/flags", &json!({"kind": "flags"}))
        .await?;
    ecs.put("/v1/tenants/acme", &json!({"edition": "pro"}))
        .await?;
    ecs.put(
        "/v1/namespaces/flags/layer",
        &json!({"values": {"flags": {
            "banner": {"state": "ENABLED", "variants": {"a": "hello", "b": "bye"}, "defaultVariant": "a"},
            "new-checkout": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
                "targeting": {"if": [{"ends_with": [{"var": "email"}, "@acme.example"]}, "on", null]}},
            "rollout": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
                "targeting": {"fractional": [["on", 25], ["off", 75]]}}
        }}}),
    )
    .await?;
    let client =
        ecs_client::Client::connect(ecs_client::ClientSettings::new(ecs.nats.url(), ["flags"])?)
            .await?;
    let contexts: Vec<serde_json::Map<String, Value>> = (0..1000)
        .map(|i| {
            json!({"targetingKey": format!("user-{i}"), "tenant": "acme", "email": format!("u{i}@acme.example")})
                .as_object()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    let keys = ["banner", "new-checkout", "rollout"];
    // Warm up, and check that every flag evaluates.
    for context in &contexts {
        for key in keys {
            client.flag(None, key, context)?;
        }
    }
    let started = Instant::now();
    let mut evaluated = 0u64;
    while started.elapsed() < args.duration() {
        for context in &contexts {
            for key in keys {
                std::hint::black_box(client.flag(None, key, context)?);
                evaluated += 1;
            }
        }
    }
    let ns = started.elapsed().as_nanos() as f64 / evaluated as f64;
    println!("  {evaluated} evaluations: {ns:.0} ns per flag (target < {FLAG_TARGET_NS:.0} ns)");
    args.markdown(&[Row::new(
        "SDK-local flag evaluation (static, targeted, rollout)",
        format!("{ns:.0} ns/flag"),
    )
    .target(
        format!("< {FLAG_TARGET_NS:.0} ns/flag"),
        ns.is_finite() && ns < FLAG_TARGET_NS,
    )])?;
    client.close();
    ecs.stop().await;
    Ok(())
}
