//! `propagation`: how long a configuration change takes to reach W watching
//! SDK clients, against the floor of a raw NATS KV put reaching W KV watchers.
//!
//! Starts its own `nats-server`, PostgreSQL database (a private cluster unless
//! `ECS_TEST_PG_URL` is set) and the ECS server in-process, all on 127.0.0.1,
//! and stops them all when it ends. See `docs/benchmarks.md`.
//!
//! Prints the figures (per subscriber count, then a summary in Markdown) and
//! writes the chart (`--chart`, SVG); with `--markdown <file>` it also appends
//! the summary tables to `<file>`, as `bench/run.sh` does for
//! `docs/benchmarks.md`.
//!
//! ```sh
//! cargo run --release -p ecs-bench --bin propagation -- --subscribers 1,100,1000
//! cargo run --release -p ecs-bench --bin propagation -- --chart /tmp/p.svg --markdown /tmp/p.md
//! ```

// Printing the results is this binary's purpose.
#![allow(clippy::print_stdout)]

use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use clap::Parser;
use ecs_client::{Client, ClientSettings, Config, Context};
use ecs_domain::feed::FEED_BUCKET;
use ecs_tests::app::{ADMIN_TOKEN, settings_for};
use ecs_tests::servers::{NatsServer, TestDatabase};
use futures::future::try_join_all;
use futures::{FutureExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The allocator of the `ecs` binary, so the in-process server runs as it does
/// in production (the floors and the load generator share it).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const NAMESPACE: &str = "bench";
const TENANT: &str = "t1";
/// The feed key of the layer every round writes (`docs/feed.md`).
const FEED_KEY: &str = "layer.bench.t1._._._";
/// What the events stream captures (`ecs_commands::stream::EVENTS_SUBJECTS`).
const EVENTS_SUBJECTS: &str = "ecs.events.>";
const FLOOR_BUCKET: &str = "bench-floor";
const FLOOR_KEY: &str = "value";
/// Longest a round may take before the bench gives up.
const ROUND_TIMEOUT: Duration = Duration::from_secs(30);
/// How many clients (connections) connect at once while setting up.
const CONNECT_CONCURRENCY: usize = 32;
/// The target: ECS p99 at most this many times the floor's p99.
const TARGET_RATIO: f64 = 3.0;

/// Change propagation: ECS (HTTP write → SDK watchers) against a raw NATS KV floor.
#[derive(Parser, Debug)]
struct Args {
    /// Numbers of watching subscribers to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 100, 1000])]
    subscribers: Vec<usize>,
    /// Measured rounds per subscriber count [default: 200, 50 from 1000 subscribers].
    #[arg(long)]
    rounds: Option<usize>,
    /// Unmeasured warm-up rounds per subscriber count.
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// At most this many SDK clients (and floor connections); more subscribers
    /// share them, each with its own `watch` receiver (or KV watch).
    #[arg(long, default_value_t = 1000)]
    max_connections: usize,
    /// Where to write the chart of latency by subscriber count (SVG).
    #[arg(long, default_value = "docs/propagation.svg")]
    chart: std::path::PathBuf,
    /// Also append the summary (the per-W table and the ECS breakdown) to this
    /// Markdown file.
    #[arg(long, value_name = "PATH")]
    markdown: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.subscribers.contains(&0) || args.max_connections == 0 {
        bail!("--subscribers and --max-connections must be at least 1");
    }
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }

    println!("starting nats-server, PostgreSQL and ECS (127.0.0.1 only) ...");
    let nats = NatsServer::start();
    let db = TestDatabase::create().await;
    let server = Server::start(&nats, &db).await?;
    let result = run(&args, &nats, &db, &server).await;
    server.stop().await;
    drop(nats); // kills nats-server; the private PostgreSQL cluster stops when we exit
    result
}

/// The ECS server running in-process; stopped on drop.
struct Server {
    base: String,
    http: reqwest::Client,
    shutdown: CancellationToken,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Server {
    async fn start(nats: &NatsServer, db: &TestDatabase) -> anyhow::Result<Server> {
        let app = ecs_api::Application::build(settings_for(nats, db))
            .await
            .context("build the ECS app")?;
        let mut server = Server {
            base: format!("http://{}", app.address()),
            http: reqwest::Client::builder().timeout(ROUND_TIMEOUT).build()?,
            shutdown: app.shutdown_token(),
            handle: None,
        };
        server.handle = Some(tokio::spawn(app.run_until_stopped()));
        for _ in 0..300 {
            if let Ok(r) = server
                .http
                .get(format!("{}/readyz", server.base))
                .send()
                .await
                && r.status().is_success()
            {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("ECS did not become ready")
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: &Value) -> anyhow::Result<()> {
        let response = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN_TOKEN)
            .json(body)
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            bail!("{path}: {status}: {text}");
        }
        Ok(())
    }

    async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), handle).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }
}

/// Everything measured for one subscriber count.
struct Outcome {
    subscribers: usize,
    connections: usize,
    rounds: usize,
    ecs: Vec<Duration>,
    floor: Vec<Duration>,
    /// ECS write answered (after the projection applied it, read-your-writes).
    http_ack: Vec<Duration>,
    /// The event message seen on `ecs.events.>` by a core NATS subscriber.
    event_published: Vec<Duration>,
    /// The feed message visible to one raw watcher of the `ecs-feed` bucket.
    feed_visible: Vec<Duration>,
}

async fn run(
    args: &Args,
    nats: &NatsServer,
    db: &TestDatabase,
    server: &Server,
) -> anyhow::Result<()> {
    let nats_client = async_nats::connect(nats.url()).await?;
    let js = jetstream::new(nats_client.clone());
    let machine = machine(&nats_client, db).await?;
    println!("{machine}");
    seed(server).await?;
    let floor_kv = js
        .create_key_value(kv::Config {
            bucket: FLOOR_BUCKET.to_owned(),
            history: 1,
            ..Default::default()
        })
        .await?;
    let feed_kv = js.get_key_value(FEED_BUCKET).await?;
    // nats-server 2.15 caps consumers per stream (1000 by default), and every
    // SDK client and KV watch is one ordered consumer; closed ones linger for
    // their 30 s inactivity threshold. Raise the cap on both buckets' streams.
    let most = args.subscribers.iter().max().copied().unwrap_or(1);
    let limit = i32::try_from(2 * most + 100).unwrap_or(i32::MAX);
    for bucket in [FEED_BUCKET, FLOOR_BUCKET] {
        let stream = format!("KV_{bucket}");
        let mut config = js.get_stream(&stream).await?.info().await?.config.clone();
        let before = config.max_consumers;
        if before >= limit {
            continue;
        }
        config.max_consumers = limit;
        js.update_stream(&config)
            .await
            .with_context(|| format!("raise max_consumers of {stream}"))?;
        println!("stream {stream}: max_consumers {before} -> {limit}");
    }

    // Round ids grow across the whole run, for both paths.
    let mut next_id = 1_u64;
    // The floor payload matches the size of the feed message ECS publishes.
    server
        .send(
            reqwest::Method::PATCH,
            &layer_path(),
            &json!({"values": {"counter": 0}}),
        )
        .await?;
    let feed_size = feed_kv
        .entry(FEED_KEY)
        .await?
        .map_or(256, |e| e.value.len());
    println!("feed message size: {feed_size} bytes; floor payload padded to the same size\n");

    let mut outcomes = Vec::new();
    for &subscribers in &args.subscribers {
        let rounds = args
            .rounds
            .unwrap_or(if subscribers >= 1000 { 50 } else { 200 });
        let connections = subscribers.min(args.max_connections);
        let started = Instant::now();
        print!(
            "W={subscribers}: connecting {connections} SDK clients and {connections} floor \
             connections ... "
        );
        let (clients, mut receivers) = connect_sdk(nats, subscribers, connections).await?;
        let floor_conns = connect_floor(nats, connections).await?;
        let mut watchers = Vec::with_capacity(subscribers);
        for i in 0..subscribers {
            watchers.push(floor_conns[i % connections].watch(FLOOR_KEY).await?);
        }
        let mut probe = Probe {
            events: nats_client.subscribe(EVENTS_SUBJECTS).await?,
            feed: feed_kv.watch(FEED_KEY).await?,
        };
        println!("ready in {:.1} s", started.elapsed().as_secs_f64());

        let mut outcome = Outcome {
            subscribers,
            connections,
            rounds,
            ecs: Vec::new(),
            floor: Vec::new(),
            http_ack: Vec::new(),
            event_published: Vec::new(),
            feed_visible: Vec::new(),
        };
        let started = Instant::now();
        for round in 0..args.warmup + rounds {
            let id = next_id;
            next_id += 1;
            let ecs = ecs_round(server, id, &mut receivers, &mut probe).await?;
            let floor = floor_round(&floor_kv, id, feed_size, &mut watchers).await?;
            if round >= args.warmup {
                outcome.ecs.push(ecs.all);
                outcome.http_ack.push(ecs.http_ack);
                outcome.event_published.push(ecs.event_published);
                outcome.feed_visible.push(ecs.feed_visible);
                outcome.floor.push(floor);
            }
        }
        println!(
            "W={subscribers}: {} warm-up + {rounds} measured rounds in {:.1} s",
            args.warmup,
            started.elapsed().as_secs_f64()
        );
        print_outcome(&outcome);
        outcomes.push(outcome);

        for client in &clients {
            client.close();
        }
        drop((clients, receivers, watchers, floor_conns, probe));
    }

    println!("\n{machine}\n");
    let summary = summary(&outcomes);
    print!("{summary}");
    if let Some(path) = &args.markdown {
        append(path, &summary).with_context(|| format!("append to {}", path.display()))?;
        println!("\nsummary appended to {}", path.display());
    }
    std::fs::write(&args.chart, chart(&outcomes))
        .with_context(|| format!("write {}", args.chart.display()))?;
    println!("\nchart written to {}", args.chart.display());
    Ok(())
}

/// Appends `text` to the file at `path` (created if missing), after a blank
/// line if the file does not end with one.
fn append(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    let existing = match std::fs::read_to_string(path) {
        Ok(existing) => existing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e.into()),
    };
    let separator = if existing.trim().is_empty() || existing.ends_with("\n\n") {
        ""
    } else if existing.ends_with('\n') {
        "\n"
    } else {
        "\n\n"
    };
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(format!("{separator}{text}").as_bytes())?;
    Ok(())
}

/// One bar series of the chart: label, colour and the figure it plots.
type Series = (&'static str, &'static str, fn(&Outcome) -> f64);

/// An SVG bar chart: p50 and p99 of ECS and of the floor per subscriber count,
/// on a logarithmic millisecond axis.
fn chart(outcomes: &[Outcome]) -> String {
    let (width, height, left, top, bottom) = (720.0, 360.0, 70.0, 40.0, 60.0);
    let plot_height = height - top - bottom;
    let series: [Series; 4] = [
        ("ECS p50", "#7aa6d8", |o| percentile(&o.ecs, 50.0)),
        ("ECS p99", "#1f5fa8", |o| percentile(&o.ecs, 99.0)),
        ("floor p50", "#f2b37a", |o| percentile(&o.floor, 50.0)),
        ("floor p99", "#c8630c", |o| percentile(&o.floor, 99.0)),
    ];
    let values: Vec<f64> = outcomes
        .iter()
        .flat_map(|o| series.iter().map(move |(_, _, f)| f(o)))
        .collect();
    let (lo, hi) = (
        0.1_f64,
        values.iter().copied().fold(1.0_f64, f64::max) * 1.5,
    );
    let y = |ms: f64| {
        top + plot_height * (1.0 - (ms.max(lo).log10() - lo.log10()) / (hi.log10() - lo.log10()))
    };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"22\" font-size=\"15\">Change propagation: write → every subscriber (ms, log scale)</text>\n"
    );
    let mut tick = lo;
    while tick <= hi {
        let ty = y(tick);
        svg.push_str(&format!(
            "<line x1=\"{left}\" y1=\"{ty:.1}\" x2=\"{}\" y2=\"{ty:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{tick}</text>\n",
            width - 20.0,
            left - 6.0,
            ty + 4.0
        ));
        tick *= 10.0;
    }
    let group = (width - left - 20.0) / outcomes.len().max(1) as f64;
    let bar = group / 6.0;
    for (i, o) in outcomes.iter().enumerate() {
        let x0 = left + group * i as f64 + bar;
        for (j, (_, color, f)) in series.iter().enumerate() {
            let value = f(o);
            let (bx, by) = (x0 + bar * j as f64, y(value));
            svg.push_str(&format!(
                "<rect x=\"{bx:.1}\" y=\"{by:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{color}\"><title>{value:.2} ms</title></rect>\n",
                bar * 0.9,
                top + plot_height - by
            ));
        }
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">W = {} (ECS/floor p99 {:.1}×)</text>\n",
            x0 + bar * 2.0,
            height - bottom + 20.0,
            o.subscribers,
            percentile(&o.ecs, 99.0) / percentile(&o.floor, 99.0)
        ));
    }
    for (j, (name, color, _)) in series.iter().enumerate() {
        let lx = left + 150.0 * j as f64;
        svg.push_str(&format!(
            "<rect x=\"{lx}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{color}\"/><text x=\"{}\" y=\"{:.1}\">{name}</text>\n",
            height - 22.0,
            lx + 16.0,
            height - 12.0
        ));
    }
    svg.push_str("</svg>\n");
    svg
}

fn layer_path() -> String {
    format!("/v1/namespaces/{NAMESPACE}/layer?tenant={TENANT}")
}

/// Namespace `bench` with a small schema, tenant `t1`, a global and a tenant layer.
async fn seed(server: &Server) -> anyhow::Result<()> {
    let schema = json!({"type": "object", "properties": {
        "counter": {"type": "integer", "default": 0},
        "mode": {"type": "string", "default": "safe"},
        "limits": {"type": "object", "properties": {
            "max_items": {"type": "integer", "default": 10},
            "timeout_ms": {"type": "integer", "default": 500}
        }}
    }});
    let put = reqwest::Method::PUT;
    server
        .send(
            put.clone(),
            &format!("/v1/namespaces/{NAMESPACE}"),
            &json!({"schema": schema}),
        )
        .await?;
    server
        .send(
            put.clone(),
            &format!("/v1/tenants/{TENANT}"),
            &json!({"edition": "pro"}),
        )
        .await?;
    server
        .send(
            put.clone(),
            &format!("/v1/namespaces/{NAMESPACE}/layer"),
            &json!({"values": {"mode": "fast", "limits": {"max_items": 20}}}),
        )
        .await?;
    server
        .send(put, &layer_path(), &json!({"values": {"counter": 0}}))
        .await
}

fn context() -> anyhow::Result<Context> {
    Ok(Context::from_pairs([("env", "prod"), ("tenant", TENANT)])?)
}

/// `connections` SDK clients (one NATS connection each) and `subscribers`
/// watch receivers spread over them round-robin.
async fn connect_sdk(
    nats: &NatsServer,
    subscribers: usize,
    connections: usize,
) -> anyhow::Result<(Vec<Client>, Vec<watch::Receiver<Config>>)> {
    let url = nats.url();
    let clients: Vec<Client> = futures::stream::iter(0..connections)
        .map(|_| {
            let url = url.clone();
            async move {
                let mut settings = ClientSettings::new(url, [NAMESPACE])?;
                settings.connect_timeout = Duration::from_secs(30);
                Client::connect(settings).await
            }
        })
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let context = context()?;
    let receivers = (0..subscribers)
        .map(|i| clients[i % connections].watch(NAMESPACE, &context))
        .collect::<Result<_, _>>()?;
    Ok((clients, receivers))
}

/// `connections` NATS connections, each with a handle on the floor bucket.
async fn connect_floor(nats: &NatsServer, connections: usize) -> anyhow::Result<Vec<kv::Store>> {
    let url = nats.url();
    futures::stream::iter(0..connections)
        .map(|_| {
            let url = url.clone();
            async move {
                let client = async_nats::ConnectOptions::new()
                    .name("bench-floor")
                    .connect(url)
                    .await?;
                Ok::<_, anyhow::Error>(jetstream::new(client).get_key_value(FLOOR_BUCKET).await?)
            }
        })
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// Raw observers of the ECS path's intermediate steps.
struct Probe {
    /// A core NATS subscription to the events stream's subjects.
    events: async_nats::Subscriber,
    /// A KV watch of the written layer's key in the feed bucket.
    feed: kv::Watch,
}

struct EcsRound {
    /// Until every subscriber's watch yielded the new value.
    all: Duration,
    http_ack: Duration,
    event_published: Duration,
    feed_visible: Duration,
}

/// One write through the HTTP API; waits for every receiver to see it.
async fn ecs_round(
    server: &Server,
    id: u64,
    receivers: &mut [watch::Receiver<Config>],
    probe: &mut Probe,
) -> anyhow::Result<EcsRound> {
    let body = json!({"values": {"counter": id}});
    let path = layer_path();
    // Nothing else writes: drop any event left over from earlier rounds.
    while let Some(Some(_)) = probe.events.next().now_or_never() {}
    let start = Instant::now();
    let write = async {
        server.send(reqwest::Method::PATCH, &path, &body).await?;
        Ok::<_, anyhow::Error>(Instant::now())
    };
    let event = async {
        probe
            .events
            .next()
            .await
            .ok_or_else(|| anyhow!("the events subscription ended"))?;
        Ok(Instant::now())
    };
    let feed = async {
        while let Some(entry) = probe.feed.next().await {
            let value: Value = serde_json::from_slice(&entry?.value)?;
            if value["values"]["counter"].as_u64() >= Some(id) {
                return Ok(Instant::now());
            }
        }
        Err(anyhow!("the feed watch ended"))
    };
    let arrivals = try_join_all(receivers.iter_mut().map(|receiver| async move {
        loop {
            if receiver.borrow_and_update().values["counter"].as_u64() >= Some(id) {
                return Ok(Instant::now());
            }
            receiver
                .changed()
                .await
                .map_err(|_| anyhow!("an SDK client stopped"))?;
        }
    }));
    let all = async { tokio::try_join!(write, event, feed, arrivals) };
    let (acked, published, fed, arrivals) = tokio::time::timeout(ROUND_TIMEOUT, all)
        .await
        .map_err(|_| anyhow!("ECS round {id} did not complete in {ROUND_TIMEOUT:?}"))??;
    let last = arrivals.into_iter().max().unwrap_or(start);
    Ok(EcsRound {
        all: last - start,
        http_ack: acked - start,
        event_published: published - start,
        feed_visible: fed - start,
    })
}

/// One raw KV put of `size` bytes; waits for every watcher to see it.
async fn floor_round(
    store: &kv::Store,
    id: u64,
    size: usize,
    watchers: &mut [kv::Watch],
) -> anyhow::Result<Duration> {
    let bare = format!(r#"{{"round":{id},"pad":""}}"#);
    let pad = "x".repeat(size.saturating_sub(bare.len()));
    let payload = Bytes::from(format!(r#"{{"round":{id},"pad":"{pad}"}}"#));
    let start = Instant::now();
    let put = async {
        store.put(FLOOR_KEY, payload).await?;
        Ok::<_, anyhow::Error>(())
    };
    let arrivals = try_join_all(watchers.iter_mut().map(|watcher| async move {
        while let Some(entry) = watcher.next().await {
            let value: Value = serde_json::from_slice(&entry?.value)?;
            if value["round"].as_u64() >= Some(id) {
                return Ok(Instant::now());
            }
        }
        Err(anyhow!("a floor watch ended"))
    }));
    let ((), arrivals) =
        tokio::time::timeout(ROUND_TIMEOUT, async { tokio::try_join!(put, arrivals) })
            .await
            .map_err(|_| anyhow!("floor round {id} did not complete in {ROUND_TIMEOUT:?}"))??;
    Ok(arrivals.into_iter().max().unwrap_or(start) - start)
}

/// Nearest-rank percentile, in milliseconds.
fn percentile(samples: &[Duration], p: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

fn print_outcome(o: &Outcome) {
    let row = |name: &str, samples: &[Duration]| {
        println!(
            "  {name:<34} p50 {:>8.2}  p90 {:>8.2}  p99 {:>8.2}  max {:>8.2} ms",
            percentile(samples, 50.0),
            percentile(samples, 90.0),
            percentile(samples, 99.0),
            percentile(samples, 100.0),
        );
    };
    row("ECS: all SDK watchers have it", &o.ecs);
    row("  (event on ecs.events.>)", &o.event_published);
    row("  (feed message in ecs-feed KV)", &o.feed_visible);
    row("  (HTTP write answered)", &o.http_ack);
    row("floor: all KV watchers have it", &o.floor);
}

/// The summary in Markdown, printed and appended to `--markdown`: the
/// latency of every subscriber count against the floor, with the target's
/// verdict, then the ECS path's breakdown.
fn summary(outcomes: &[Outcome]) -> String {
    let mut md = String::from(
        "Latency from the write until every subscriber has it, ms (nearest-rank percentiles \
         over the measured rounds):\n\n\
         | W | clients/conns | rounds | ECS p50 | ECS p90 | ECS p99 | floor p50 | floor p90 | \
         floor p99 | ECS/floor p99 | target | verdict |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for o in outcomes {
        let ecs99 = percentile(&o.ecs, 99.0);
        let floor99 = percentile(&o.floor, 99.0);
        let ratio = ecs99 / floor99;
        let verdict = if !ratio.is_finite() {
            "—"
        } else if ratio <= TARGET_RATIO {
            "PASS"
        } else {
            "MISS"
        };
        md.push_str(&format!(
            "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2}× | ≤ {TARGET_RATIO}× | {verdict} |\n",
            o.subscribers,
            o.connections,
            o.rounds,
            percentile(&o.ecs, 50.0),
            percentile(&o.ecs, 90.0),
            ecs99,
            percentile(&o.floor, 50.0),
            percentile(&o.floor, 90.0),
            floor99,
            ratio,
        ));
    }
    md.push_str(
        "\nECS breakdown, ms from just before the write (p50 / p99):\n\n\
         | W | event published on `ecs.events.>` | feed message seen in `ecs-feed` | \
         all SDK watchers | HTTP answered |\n\
         |---|---|---|---|---|\n",
    );
    let both = |samples: &[Duration]| {
        format!(
            "{:.2} / {:.2}",
            percentile(samples, 50.0),
            percentile(samples, 99.0)
        )
    };
    for o in outcomes {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            o.subscribers,
            both(&o.event_published),
            both(&o.feed_visible),
            both(&o.ecs),
            both(&o.http_ack),
        ));
    }
    md
}

/// The machine and the versions, as one printable block.
async fn machine(nats: &async_nats::Client, db: &TestDatabase) -> anyhow::Result<String> {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let pool = db.pool().await?;
    let pg: String = sqlx::query_scalar("SELECT version()")
        .fetch_one(&pool)
        .await?;
    pool.close().await;
    let build = if cfg!(debug_assertions) {
        "debug (numbers not representative: use --release)"
    } else {
        "release"
    };
    Ok(format!(
        "machine: {cpus} CPUs ({cpu})\nnats-server: {}\nPostgreSQL: {pg}\nbuild: {build}",
        nats.server_info().version
    ))
}
