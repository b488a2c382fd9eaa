//! `GET /v1/namespaces/{ns}/watch`: the resolved document as server-sent
//! events, live and resumed with `Last-Event-ID`, against real NATS and
//! PostgreSQL.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use ecs_tests::app::{ADMIN_TOKEN, TestApp, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::time::timeout;

/// How long a test waits for an event (or the end of a stream).
const WAIT: Duration = Duration::from_secs(10);

/// One server-sent event.
#[derive(Debug)]
struct SseEvent {
    event: String,
    id: u64,
    data: Value,
}

/// A minimal SSE reader over a streaming response.
struct SseClient {
    response: reqwest::Response,
    buffer: String,
}

impl SseClient {
    /// The next event; panics after [`WAIT`] or when the stream ends.
    async fn next(&mut self) -> SseEvent {
        timeout(WAIT, self.next_event())
            .await
            .expect("an event within the timeout")
            .expect("the stream is still open")
    }

    /// The next event, `None` at the end of the stream. Comments (heartbeats)
    /// are skipped.
    async fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse(&block) {
                    return Some(event);
                }
            }
            match self.response.chunk().await {
                Ok(Some(bytes)) => self
                    .buffer
                    .push_str(&String::from_utf8_lossy(&bytes).replace("\r\n", "\n")),
                Ok(None) | Err(_) => return None,
            }
        }
    }
}

fn parse(block: &str) -> Option<SseEvent> {
    let (mut event, mut id, mut data) = (String::from("message"), None, Vec::new());
    for line in block.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event = value.to_owned(),
            "id" => id = Some(value.parse().expect("a numeric id")),
            "data" => data.push(value),
            _ => {}
        }
    }
    if data.is_empty() {
        return None;
    }
    Some(SseEvent {
        event,
        id: id.expect("every event has an id"),
        data: serde_json::from_str(&data.join("\n")).expect("JSON data"),
    })
}

/// A client without the harness' overall request timeout, which would cut a
/// long stream.
fn stream_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

async fn watch_request(
    app: &TestApp,
    path_and_query: &str,
    last_event_id: Option<&str>,
    token: Option<&str>,
) -> reqwest::Response {
    let mut request = stream_client().get(format!("{}{path_and_query}", app.address));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id);
    }
    timeout(WAIT, request.send())
        .await
        .expect("headers within the timeout")
        .unwrap()
}

/// Opens `/watch` for `ns` and the context `query`, expecting a stream.
async fn watch(app: &TestApp, ns: &str, query: &str, last_event_id: Option<u64>) -> SseClient {
    let id = last_event_id.map(|p| p.to_string());
    let response = watch_request(
        app,
        &format!("/v1/namespaces/{ns}/watch?{query}"),
        id.as_deref(),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .starts_with("text/event-stream")
    );
    SseClient {
        response,
        buffer: String::new(),
    }
}

/// Asserts an event is the config document `values` at position `id`.
fn assert_config(event: &SseEvent, id: u64, values: &Value) {
    assert_eq!(event.event, "config", "{event:?}");
    assert_eq!(event.id, id, "{event:?}");
    assert_eq!(event.data, json!({"values": values, "position": id}));
}

/// A namespace `checkout` with a global layer, tenants `acme` and `globex`.
async fn setup(app: &TestApp) {
    let r = app
        .put_namespace("checkout", &json!({"description": "Checkout"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    for tenant in ["acme", "globex"] {
        let r = app.put_tenant(tenant, "standard").await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    let r = app
        .put_layer("checkout", "", &json!({"values": {"currency": "USD"}}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

/// A write that must succeed; answers its position.
async fn write(app: &TestApp, query: &str, values: Value) -> u64 {
    let r = app
        .put_layer("checkout", query, &json!({ "values": values }))
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    r.position()
}

const CONTEXT: &str = "env=prod&tenant=acme";

#[tokio::test]
async fn a_change_written_through_the_api_reaches_a_watcher() {
    let app = spawn_app().await;
    setup(&app).await;
    let now = app.resolved("checkout", CONTEXT).await;

    let mut sse = watch(&app, "checkout", CONTEXT, None).await;
    let first = sse.next().await;
    assert_config(&first, now.position(), &json!({"currency": "USD"}));

    let p = write(&app, "tenant=acme", json!({"max_items": 5})).await;
    let second = sse.next().await;
    assert!(second.id > first.id);
    assert_config(&second, p, &json!({"currency": "USD", "max_items": 5}));

    // A change of the tenant's edition that changes nothing resolved sends
    // nothing; an applicable environment layer does.
    let _ = app.put_tenant("acme", "enterprise").await;
    let p = write(&app, "env=prod", json!({"currency": "EUR"})).await;
    assert_config(
        &sse.next().await,
        p,
        &json!({"currency": "EUR", "max_items": 5}),
    );
}

#[tokio::test]
async fn a_write_that_does_not_apply_sends_nothing() {
    let app = spawn_app().await;
    setup(&app).await;
    let mut sse = watch(&app, "checkout", CONTEXT, None).await;
    let first = sse.next().await;
    assert_eq!(first.data["values"], json!({"currency": "USD"}));

    // Another tenant's layer, another environment, another namespace.
    write(&app, "tenant=globex", json!({"currency": "GBP"})).await;
    write(&app, "env=dev", json!({"currency": "JPY"})).await;
    let other = app.put_namespace("billing", &json!({})).await;
    assert_eq!(other.status, StatusCode::CREATED, "{}", other.body);

    let p = write(&app, "tenant=acme", json!({"currency": "CHF"})).await;
    assert_config(&sse.next().await, p, &json!({"currency": "CHF"}));
}

#[tokio::test]
async fn a_reconnect_with_last_event_id_gets_exactly_what_it_missed() {
    let app = spawn_app().await;
    setup(&app).await;
    let mut sse = watch(&app, "checkout", CONTEXT, None).await;
    let p1 = sse.next().await.id;
    drop(sse);

    let p2 = write(&app, "tenant=acme", json!({"max_items": 5})).await;
    write(&app, "tenant=globex", json!({"max_items": 9})).await;
    let p3 = write(&app, "", json!({"currency": "EUR"})).await;
    assert!(p1 < p2 && p2 < p3);

    let mut sse = watch(&app, "checkout", CONTEXT, Some(p1)).await;
    assert_config(
        &sse.next().await,
        p2,
        &json!({"currency": "USD", "max_items": 5}),
    );
    assert_config(
        &sse.next().await,
        p3,
        &json!({"currency": "EUR", "max_items": 5}),
    );

    // Then live, with nothing repeated in between. A value the tenant layer
    // overrides changes nothing resolved.
    write(&app, "env=prod", json!({"max_items": 7})).await;
    let p4 = write(&app, "env=prod", json!({"max_items": 7, "region": "eu"})).await;
    assert_config(
        &sse.next().await,
        p4,
        &json!({"currency": "EUR", "max_items": 5, "region": "eu"}),
    );
    let p5 = write(&app, "tenant=acme", json!({"max_items": 8})).await;
    assert_config(
        &sse.next().await,
        p5,
        &json!({"currency": "EUR", "max_items": 8, "region": "eu"}),
    );

    // Resuming from the latest event sends nothing until the next change.
    let mut resumed = watch(&app, "checkout", CONTEXT, Some(p5)).await;
    let p6 = write(&app, "env=prod&tenant=acme", json!({"currency": "SEK"})).await;
    assert_config(
        &resumed.next().await,
        p6,
        &json!({"currency": "SEK", "max_items": 8, "region": "eu"}),
    );
    assert_config(
        &sse.next().await,
        p6,
        &json!({"currency": "SEK", "max_items": 8, "region": "eu"}),
    );
}

#[tokio::test]
async fn refusals_are_problems_before_the_stream() {
    let app = spawn_app().await;
    setup(&app).await;
    let path = format!("/v1/namespaces/checkout/watch?{CONTEXT}");

    let r = watch_request(&app, &path, None, None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let r = watch_request(&app, "/v1/namespaces/nope/watch", None, Some(ADMIN_TOKEN)).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "namespace-not-found");

    let r = watch_request(
        &app,
        "/v1/namespaces/checkout/watch?tenant=nobody",
        None,
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "tenant-not-found");

    for bad in ["abc", "-1", "1.5", ""] {
        let r = watch_request(&app, &path, Some(bad), Some(ADMIN_TOKEN)).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "Last-Event-ID {bad:?}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/problem+json")
        );
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["field"], "Last-Event-ID");
    }

    let r = watch_request(
        &app,
        "/v1/namespaces/checkout/watch?explain=true",
        None,
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["field"], "explain");

    let r = watch_request(
        &app,
        "/v1/namespaces/checkout/watch?env=a.b",
        None,
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let spec = app.get("/v1/openapi.json").await;
    assert!(
        spec.body["paths"]["/v1/namespaces/{ns}/watch"]["get"]["responses"]["200"]["content"]
            ["text/event-stream"]
            .is_object(),
        "{}",
        spec.body["paths"]["/v1/namespaces/{ns}/watch"]
    );
}

#[tokio::test]
async fn the_stream_ends_when_the_server_stops() {
    let mut app = spawn_app().await;
    setup(&app).await;
    let mut sse = watch(&app, "checkout", CONTEXT, None).await;
    sse.next().await;
    timeout(WAIT, app.stop())
        .await
        .expect("graceful shutdown is not blocked by a watcher");
    let end = timeout(WAIT, sse.next_event())
        .await
        .expect("the stream ends");
    assert!(end.is_none(), "{end:?}");
}
