//! `writes`: durable writes over HTTP vs raw JetStream publishes with acknowledgement.

use anyhow::{anyhow, bail};
use async_nats::HeaderMap;
use async_nats::jetstream::stream;
use bytes::Bytes;
use ecs_tests::app::ADMIN_TOKEN;
use serde_json::{Value, json};

use crate::fixture::*;
use crate::load::*;
use crate::reads::*;
use crate::report::*;
use crate::*;

pub(crate) fn write_body(i: u64) -> Value {
    json!({
        "values": {"limits": {"rps": i % 1000, "burst": 2000}, "features": {"rollout": (i % 100) as f64 / 100.0}},
        "message": format!("bench write {i}")
    })
}

pub(crate) async fn writes(args: &Args) -> anyhow::Result<()> {
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
