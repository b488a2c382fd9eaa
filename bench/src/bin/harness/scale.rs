//! `scale`: server memory and SDK bootstrap time with many tenants and namespaces.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::bail;
use ecs_tests::servers::NatsServer;
use serde_json::json;

use crate::fixture::*;
use crate::reads::*;
use crate::rebuild::*;
use crate::report::*;
use crate::stats::*;
use crate::*;

pub(crate) async fn scale(args: &Args) -> anyhow::Result<()> {
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
pub(crate) fn nats_pid(nats: &NatsServer) -> Option<String> {
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
