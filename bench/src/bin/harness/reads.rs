//! `reads`: resolved reads over HTTP vs a static handler returning the same bytes.

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

pub(crate) const READ_NS: &str = "bench";

pub(crate) fn bench_schema() -> Value {
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
pub(crate) async fn seed_read_namespace(ecs: &Ecs) -> anyhow::Result<String> {
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
pub(crate) async fn static_server(
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

pub(crate) async fn get_ok(http: reqwest::Client, url: String, auth: bool) -> anyhow::Result<()> {
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

pub(crate) async fn reads(args: &Args) -> anyhow::Result<()> {
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
