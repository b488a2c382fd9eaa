//! Observability end to end: one OpenTelemetry trace from an HTTP request to
//! an SDK client's apply, and the metrics, received by an OTLP/HTTP receiver
//! on loopback.
//!
//! This binary installs the process's tracing subscriber (with the OTLP
//! exporter), so its tests live apart from the others.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use ecs_api::telemetry::{LogFormat, Telemetry, Traces};
use ecs_client::{Client, ClientSettings, Context};
use ecs_tests::app::{spawn_app, spawn_app_with};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use reqwest::Method;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

/// A span as the receiver got it.
#[derive(Debug, Clone)]
struct ReceivedSpan {
    name: String,
    trace_id: String,
}

type Received = Arc<Mutex<Vec<ReceivedSpan>>>;

/// The names of the metrics the receiver got.
type ReceivedMetrics = Arc<Mutex<std::collections::BTreeSet<String>>>;

/// Decodes one OTLP/HTTP protobuf metrics export and keeps its names.
async fn receive_metrics(
    State(received): State<ReceivedMetrics>,
    body: Bytes,
) -> axum::http::StatusCode {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    let Ok(request) = ExportMetricsServiceRequest::decode(body) else {
        return axum::http::StatusCode::BAD_REQUEST;
    };
    let names = request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| m.name.clone());
    received.lock().unwrap().extend(names);
    axum::http::StatusCode::OK
}

fn metrics_received() -> &'static ReceivedMetrics {
    static METRICS: OnceLock<ReceivedMetrics> = OnceLock::new();
    METRICS.get_or_init(ReceivedMetrics::default)
}

/// Decodes one OTLP/HTTP protobuf export and keeps its spans.
async fn receive(State(received): State<Received>, body: Bytes) -> axum::http::StatusCode {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return axum::http::StatusCode::BAD_REQUEST;
    };
    let spans = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|span| ReceivedSpan {
            name: span.name.clone(),
            trace_id: hex(&span.trace_id),
        });
    received.lock().unwrap().extend(spans);
    axum::http::StatusCode::OK
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The OTLP receiver and the process's telemetry exporting to it (one per
/// test binary, as the subscriber is process-wide).
fn telemetry() -> &'static (Received, Telemetry) {
    static TELEMETRY: OnceLock<(Received, Telemetry)> = OnceLock::new();
    TELEMETRY.get_or_init(install)
}

fn install() -> (Received, Telemetry) {
    let received = Received::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let router = axum::Router::new()
        .route("/v1/traces", post(receive))
        .with_state(received.clone())
        .merge(
            axum::Router::new()
                .route("/v1/metrics", post(receive_metrics))
                .with_state(metrics_received().clone()),
        );
    // Its own runtime: the receiver outlives any one test's runtime.
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, router).await.unwrap();
        });
    });
    let telemetry = Telemetry::install(
        LogFormat::Json,
        Traces::To(format!("http://{address}/v1/traces")),
    )
    .unwrap();
    (received, telemetry)
}

/// The names of the spans received in trace `trace_id`.
fn span_names(received: &Received, trace_id: &str) -> Vec<String> {
    received
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.trace_id == trace_id)
        .map(|s| s.name.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_follows_a_change_from_the_request_to_the_sdk_apply() {
    let (received, telemetry) = telemetry();
    let app = spawn_app().await;
    let schema = json!({"type": "object", "properties": {"limit": {"type": "integer"}}});
    assert!(
        app.put_namespace("checkout", &json!({"schema": schema}))
            .await
            .status
            .is_success()
    );
    let client = Client::connect(ClientSettings::new(app.nats.url(), ["checkout"]).unwrap())
        .await
        .unwrap();
    // The client follows the feed, which may not hold the namespace yet.
    let mut watched = tokio::time::timeout(WAIT, async {
        loop {
            match client.watch("checkout", &Context::default()) {
                Ok(watched) => return watched,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await
    .expect("the client did not see the namespace");

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let answer = app
        .send(
            app.request(Method::PUT, "/v1/namespaces/checkout/layer")
                .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
                .json(&json!({"values": {"limit": 7}})),
        )
        .await;
    assert!(answer.status.is_success(), "{}", answer.body);
    let position = answer.position();
    tokio::time::timeout(WAIT, async {
        while watched.borrow_and_update().position < position {
            watched.changed().await.unwrap();
        }
    })
    .await
    .expect("the client did not apply the change");

    let stages = [
        "request",
        "command",
        "append",
        "projection",
        "feed",
        "apply",
    ];
    let mut names = vec![];
    let complete = tokio::time::timeout(WAIT, async {
        loop {
            telemetry.flush();
            names = span_names(received, trace_id);
            if stages.iter().all(|stage| names.iter().any(|n| n == stage)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        complete.is_ok(),
        "trace {trace_id} lacks stages of {stages:?}: it has {names:?}"
    );
}

/// The metric names `docs/observability.md` lists in its metrics table.
fn documented_metrics() -> Vec<String> {
    let docs = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/observability.md"
    ))
    .unwrap();
    docs.lines()
        .filter_map(|line| line.strip_prefix("| `ecs_"))
        .filter_map(|rest| rest.split('`').next())
        .map(|name| format!("ecs_{name}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_metric_is_exported_with_its_help() {
    let _ = telemetry();
    // One stream per principal: the stream limit then shows in its metric.
    let app = spawn_app_with(|s| s.max_streams_per_principal = 1).await;
    let schema = json!({"type": "object", "properties": {"limit": {"type": "integer"}}});
    assert!(
        app.put_namespace("checkout", &json!({"schema": schema}))
            .await
            .status
            .is_success()
    );
    assert!(app.put_tenant("acme", "pro").await.status.is_success());
    for limit in [1, 2] {
        let answer = app
            .put_layer(
                "checkout",
                "tenant=acme",
                &json!({"values": {"limit": limit}}),
            )
            .await;
        assert!(answer.status.is_success(), "{}", answer.body);
    }
    let refused = app
        .put_layer("checkout", "", &json!({"values": {"limit": "many"}}))
        .await;
    assert!(refused.status.is_client_error(), "{}", refused.body);
    let rollback = app
        .post(
            "/v1/namespaces/checkout/layer/rollback?tenant=acme",
            &json!({"revision": 1}),
        )
        .await;
    assert!(rollback.status.is_success(), "{}", rollback.body);
    // One open stream, and a second one refused by the limit.
    let stream = app
        .request(Method::GET, "/v1/namespaces/checkout/watch?tenant=acme")
        .send()
        .await
        .unwrap();
    assert!(stream.status().is_success());
    let second = app
        .request(Method::GET, "/v1/namespaces/checkout/watch?tenant=acme")
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), reqwest::StatusCode::TOO_MANY_REQUESTS);

    // A drift report with a propagation time, as an SDK client sends one.
    let report = app
        .post(
            "/v1/drift/reports",
            &json!({"v": 1, "service": "web", "env": "prod", "instance": "web-1",
                    "sdk_version": "0.1.0", "interval_secs": 15, "subscribers": 1,
                    "followed": [{"namespace": "checkout", "applied_position": 1}],
                    "propagation": [0.004]}),
        )
        .await;
    assert_eq!(
        report.status,
        reqwest::StatusCode::NO_CONTENT,
        "{}",
        report.body
    );

    let documented = documented_metrics();
    assert!(documented.len() >= 20, "the docs list {documented:?}");
    let mut missing = documented.clone();
    let mut scraped = String::new();
    let _ = tokio::time::timeout(WAIT, async {
        while !missing.is_empty() {
            scraped = app
                .request(Method::GET, "/metrics")
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            missing.retain(|name| !scraped.contains(&format!("# HELP {name} ")));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(
        missing.is_empty(),
        "documented but not exported with help text: {missing:?}\n{scraped}"
    );
    drop(stream);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_exported_over_otlp_too() {
    let (_, telemetry) = telemetry();
    let app = spawn_app().await;
    let answer = app
        .put_namespace("checkout", &json!({"schema": {"type": "object"}}))
        .await;
    assert!(answer.status.is_success(), "{}", answer.body);
    let wanted = [
        "ecs_http_requests_total",
        "ecs_http_request_duration_seconds",
        "ecs_commands_total",
        "ecs_projection_applied_position",
    ];
    let mut names = Vec::new();
    let all = tokio::time::timeout(WAIT, async {
        loop {
            telemetry.flush();
            names = metrics_received().lock().unwrap().iter().cloned().collect();
            if wanted.iter().all(|w| names.iter().any(|n| n == w)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(
        all.is_ok(),
        "the OTLP receiver lacks some of {wanted:?}: {names:?}"
    );
}
