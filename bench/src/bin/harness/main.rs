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
//!   with 10,000 tenant layers, vs the same write with no other layers;
//! * `flags`   — SDK-local flag evaluation (ns per flag, against its budget),
//!   and OFREP single evaluation over HTTP vs a static axum handler returning
//!   the same bytes, at the same concurrency.
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

mod fixture;
mod flags;
mod load;
mod reads;
mod rebuild;
mod report;
mod scale;
mod stats;
mod validation;
mod writes;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;

use flags::*;
use reads::*;
use rebuild::*;
use report::*;
use scale::*;
use validation::*;
use writes::*;

/// The allocator of the `ecs` binary, so the in-process server runs as it does
/// in production (the floors and the load generator share it).
#[global_allocator]
pub(crate) static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub(crate) const ALL: [&str; 7] = [
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
pub(crate) const READS_TARGET_SHARE: f64 = 50.0;
pub(crate) const REBUILD_TARGET_PER_S: f64 = 50_000.0;
pub(crate) const PIT_TARGET_P99_MS: f64 = 10.0;
/// SDK-local flag evaluation stays under this many nanoseconds per flag, and
/// OFREP single evaluation reaches this share of the static handler's
/// throughput (%).
pub(crate) const FLAG_TARGET_NS: f64 = 2_000.0;
pub(crate) const OFREP_TARGET_SHARE: f64 = 50.0;

/// ECS against the raw engines (reads, writes, rebuild, point-in-time, scale).
#[derive(Parser, Debug, Clone)]
pub(crate) struct Args {
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
    /// Concurrent requests in flight (reads, writes, OFREP and their floors).
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

pub(crate) fn main() -> anyhow::Result<()> {
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

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
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
