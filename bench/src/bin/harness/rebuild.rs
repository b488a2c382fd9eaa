//! `rebuild` and `pit`: replaying N events into fresh projections vs a raw ordered read, then point-in-time reads over the rebuilt log.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer};
use bytes::Bytes;
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
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rand::Rng;
use serde_json::{Value, json};

use crate::fixture::*;
use crate::load::*;
use crate::reads::*;
use crate::report::*;
use crate::stats::*;
use crate::*;

pub(crate) const REBUILD_NAMESPACES: usize = 5;
pub(crate) const REBUILD_TENANTS: usize = 100;
pub(crate) const ENVS: [&str; 3] = ["dev", "staging", "prod"];

pub(crate) fn tenant_name(i: usize) -> String {
    format!("t{i:03}")
}

/// The 200 scopes of each rebuild namespace: global, 3 envs, 100 tenants and
/// 96 prod+tenant layers (1,000 layers over 5 namespaces).
pub(crate) fn rebuild_scopes() -> anyhow::Result<Vec<Scope>> {
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
pub(crate) struct Publisher {
    pub(crate) js: jetstream::Context,
    pub(crate) inflight: FuturesUnordered<futures::future::BoxFuture<'static, anyhow::Result<()>>>,
    pub(crate) published: u64,
}

pub(crate) const WINDOW: usize = 4096;

impl Publisher {
    pub(crate) async fn message<E: serde::Serialize>(
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

    pub(crate) async fn flush(&mut self) -> anyhow::Result<()> {
        while let Some(ack) = self.inflight.next().await {
            ack?;
        }
        Ok(())
    }
}

pub(crate) fn envelope(
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
pub(crate) async fn generate(
    js: &jetstream::Context,
    keyring: &Keyring,
    events: u64,
) -> anyhow::Result<u64> {
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

pub(crate) async fn stream_last(js: &jetstream::Context, name: &str) -> anyhow::Result<u64> {
    let mut stream = js.get_stream(name).await?;
    Ok(stream.info().await?.state.last_sequence)
}

/// Reads the whole events stream with an ordered consumer; with `decode`,
/// also parses each message and opens its sealed data as the projector does.
pub(crate) async fn ordered_read(
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
pub(crate) struct Status {
    pub(crate) applied: u64,
    pub(crate) target: u64,
    pub(crate) rebuilding: bool,
}

pub(crate) async fn projection_status(ecs: &Ecs) -> anyhow::Result<Status> {
    Ok(serde_json::from_value(
        ecs.get("/v1/admin/projections").await?,
    )?)
}

/// Waits until the feed bucket stops growing (the feed publisher caught up).
pub(crate) async fn wait_feed_settled(
    js: &jetstream::Context,
    timeout: Duration,
) -> anyhow::Result<u64> {
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

pub(crate) async fn rebuild(args: &Args) -> anyhow::Result<()> {
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
pub(crate) async fn database_size(ecs: &Ecs) -> Option<String> {
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

pub(crate) async fn point_in_time(args: &Args, ecs: &Ecs, last: u64) -> anyhow::Result<()> {
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
