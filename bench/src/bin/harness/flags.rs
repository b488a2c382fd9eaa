//! `flags`: SDK-local flag evaluation, and OFREP single evaluation over HTTP
//! vs a static handler returning the same bytes.

use std::sync::Arc;
use std::time::Instant;

use anyhow::bail;
use bytes::Bytes;
use ecs_tests::app::ADMIN_TOKEN;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::fixture::*;
use crate::load::*;
use crate::report::*;
use crate::*;

/// The flag OFREP evaluates: a sticky percentage rollout, so each request
/// hashes its targeting key.
const OFREP_FLAG: &str = "rollout";
/// Distinct targeting keys the requests rotate through.
const USERS: usize = 1000;

/// SDK-local evaluation, then OFREP single evaluation, on one server.
pub(crate) async fn flags(args: &Args) -> anyhow::Result<()> {
    let ecs = Ecs::fresh().await?;
    seed_flags(&ecs).await?;
    let mut rows = vec![sdk_local(args, &ecs).await?];
    rows.push(ofrep_single(args, &ecs).await?);
    args.markdown(&rows)?;
    ecs.stop().await;
    Ok(())
}

/// A flags namespace with a static flag, a targeted rule and a percentage
/// rollout, and the tenant `acme`.
async fn seed_flags(ecs: &Ecs) -> anyhow::Result<()> {
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
    Ok(())
}

/// Evaluates flags in the Rust SDK from its local state: a static flag, a
/// targeted rule and a percentage rollout, for rotating users of one tenant.
async fn sdk_local(args: &Args, ecs: &Ecs) -> anyhow::Result<Row> {
    println!("\n## flags: SDK-local evaluation (ecs-client Client::flag), one thread");
    let client =
        ecs_client::Client::connect(ecs_client::ClientSettings::new(ecs.nats.url(), ["flags"])?)
            .await?;
    let contexts: Vec<serde_json::Map<String, Value>> = (0..USERS)
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
    client.close();
    Ok(Row::new(
        "SDK-local flag evaluation (static, targeted, rollout), one thread",
        format!("{ns:.0} ns/flag"),
    )
    .ratio(format!(
        "{:.1} % of the {FLAG_TARGET_NS:.0} ns budget",
        100.0 * ns / FLAG_TARGET_NS
    ))
    .target(
        format!("< {FLAG_TARGET_NS:.0} ns/flag"),
        ns.is_finite() && ns < FLAG_TARGET_NS,
    ))
}

/// The OFREP request of user `i`: a context of tenant `acme` with a targeting key.
fn ofrep_body(i: usize) -> Bytes {
    Bytes::from(
        json!({"context": {"targetingKey": format!("user-{}", i % USERS), "tenant": "acme"}})
            .to_string(),
    )
}

/// A tiny axum server answering OFREP's single evaluation route with `body`,
/// after reading the request's body, ignoring the token.
async fn static_ofrep_server(
    body: Bytes,
    shutdown: CancellationToken,
) -> anyhow::Result<(String, JoinHandle<()>)> {
    let app = axum::Router::new().route(
        "/ofrep/v1/evaluate/flags/{key}",
        axum::routing::post(move |request: Bytes| {
            let body = body.clone();
            async move {
                std::hint::black_box(request);
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

async fn post_ok(http: reqwest::Client, url: Arc<str>, body: Bytes) -> anyhow::Result<()> {
    let response = http
        .post(&*url)
        .bearer_auth(ADMIN_TOKEN)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await?;
    let status = response.status();
    let answer = response.bytes().await?;
    if status != reqwest::StatusCode::OK || answer.is_empty() {
        bail!("POST {url}: {status}");
    }
    Ok(())
}

/// OFREP single evaluation (`POST /ofrep/v1/evaluate/flags/rollout`, rotating
/// targeting keys) at a fixed concurrency, beside a static handler answering
/// the same bytes to the same requests, measured in the same run.
async fn ofrep_single(args: &Args, ecs: &Ecs) -> anyhow::Result<Row> {
    println!(
        "\n## flags: OFREP single evaluation over HTTP, concurrency {}",
        args.concurrency
    );
    let path = format!("/ofrep/v1/evaluate/flags/{OFREP_FLAG}");
    let answer = ecs
        .http
        .post(ecs.url(&path))
        .bearer_auth(ADMIN_TOKEN)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(ofrep_body(1))
        .send()
        .await?;
    if answer.status() != reqwest::StatusCode::OK {
        bail!("OFREP answered {}", answer.status());
    }
    let body = answer.bytes().await?;
    println!(
        "  answer: {} bytes: {}",
        body.len(),
        String::from_utf8_lossy(&body)
    );
    let shutdown = CancellationToken::new();
    let (static_address, static_handle) = static_ofrep_server(body, shutdown.clone()).await?;
    let bodies: Arc<Vec<Bytes>> = Arc::new((0..USERS).map(ofrep_body).collect());
    let http = http_client(args.concurrency)?;

    let floor_url: Arc<str> = format!("{static_address}{path}").into();
    let (h, b) = (http.clone(), bodies.clone());
    let floor = load(args.concurrency, args.duration(), move |_, i| {
        post_ok(h.clone(), floor_url.clone(), b[i as usize % USERS].clone())
    })
    .await;
    let ecs_url: Arc<str> = ecs.url(&path).into();
    let (h, b) = (http.clone(), bodies.clone());
    let measured = load(args.concurrency, args.duration(), move |_, i| {
        post_ok(h.clone(), ecs_url.clone(), b[i as usize % USERS].clone())
    })
    .await;
    println!("{}", floor.line("floor: static axum handler, same bytes"));
    println!(
        "{}",
        measured.line("ECS POST /ofrep/v1/evaluate/flags/rollout")
    );
    let share = 100.0 * measured.rate() / floor.rate();
    println!("  ECS / floor: {share:.1} % of the throughput (target >= {OFREP_TARGET_SHARE} %)");
    shutdown.cancel();
    let _ = static_handle.await;
    Ok(Row::new(
        format!(
            "OFREP single evaluation (rollout flag), {} clients",
            args.concurrency
        ),
        measured.cell("req/s"),
    )
    .floor(floor.cell("req/s"))
    .ratio(format!("{share:.1} % of the rate"))
    .target(
        format!("≥ {OFREP_TARGET_SHARE} % of the rate"),
        share.is_finite() && share >= OFREP_TARGET_SHARE,
    ))
}
