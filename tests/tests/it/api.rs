//! The HTTP API v1 against real NATS and PostgreSQL: every endpoint, its
//! success answers and each of its error statuses, and that a refused request
//! writes nothing.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use ecs_tests::app::{ADMIN_TOKEN, Answer, TestApp, spawn_app};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn checkout_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "currency": {"type": "string", "default": "USD"},
            "max_items": {"type": "integer", "minimum": 1, "maximum": 1000},
            "payment": {"type": "object", "properties": {"provider": {"type": "string"}}}
        }
    })
}

/// Asserts an RFC 9457 problem answer with this status and code.
#[track_caller]
fn assert_problem(answer: &Answer, status: StatusCode, code: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    let content_type = answer.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/problem+json"),
        "content type {content_type:?} of {}",
        answer.body
    );
    for key in ["type", "title", "detail", "code"] {
        assert!(
            answer.body[key].as_str().is_some_and(|v| !v.is_empty()),
            "problem without {key}: {}",
            answer.body
        );
    }
    assert_eq!(answer.body["status"], status.as_u16(), "{}", answer.body);
    assert_eq!(answer.code(), code, "{}", answer.body);
}

/// Asserts a 400 problem naming `field`.
#[track_caller]
fn assert_bad(answer: &Answer, code: &str, field: &str) {
    assert_problem(answer, StatusCode::BAD_REQUEST, code);
    assert_eq!(answer.body["field"], field, "{}", answer.body);
}

/// Asserts that an answer is not a 5xx and, when an error, a problem.
#[track_caller]
fn assert_sane(answer: &Answer, what: &str) {
    assert!(
        !answer.status.is_server_error(),
        "{what}: {} {}",
        answer.status,
        answer.body
    );
    if answer.status.is_client_error() {
        let content_type = answer.header("content-type").unwrap_or_default();
        assert!(
            content_type.starts_with("application/problem+json"),
            "{what}: {} with content type {content_type:?}",
            answer.status
        );
        assert_eq!(answer.body["status"], answer.status.as_u16(), "{what}");
        assert!(answer.body["code"].is_string(), "{what}: {}", answer.body);
    }
}

/// Percent-encodes a query value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The number of revisions of a layer (its history must be readable).
async fn revisions(app: &TestApp, ns: &str, query: &str) -> usize {
    let h = app.history(ns, query).await;
    assert_eq!(h.status, StatusCode::OK, "{}", h.body);
    h.body["revisions"].as_array().unwrap().len()
}

/// A request with a raw body and content type, with the admin token.
async fn send_raw(
    app: &TestApp,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> Answer {
    let mut builder = app.request(method, path).body(body);
    if let Some(content_type) = content_type {
        builder = builder.header("content-type", content_type);
    }
    app.send(builder).await
}

/// A request with a JSON body and extra headers, with the admin token.
async fn send_with(
    app: &TestApp,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Answer {
    let mut builder = app.request(method, path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    if let Some(body) = body {
        builder = builder.json(body);
    }
    app.send(builder).await
}

/// A resolved read of `checkout` with `If-None-Match`.
async fn if_none_match(app: &TestApp, value: &str) -> Answer {
    send_with(
        app,
        Method::GET,
        "/v1/namespaces/checkout/resolved",
        &[("if-none-match", value)],
        None,
    )
    .await
}

/// An HTTP/1.1 request written byte for byte, so that the target reaches the
/// server exactly as given (a URL library would normalize `%2e%2e`).
async fn raw_http(app: &TestApp, method: &str, target: &str, body: &str) -> Answer {
    let host = app.address.trim_start_matches("http://").to_owned();
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(&host).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await.unwrap();
        buf
    };
    let buf = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("raw request answered");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let mut lines = head.lines();
    let status_line = lines.next().unwrap();
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut headers = HeaderMap::new();
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            headers.append(
                HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
                HeaderValue::from_str(value.trim()).unwrap(),
            );
        }
    }
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()))
    };
    Answer {
        status: StatusCode::from_u16(status).unwrap(),
        headers,
        body,
    }
}

/// Every /v1 route with a body its method takes.
fn v1_routes() -> Vec<(Method, &'static str, Option<Value>)> {
    let layer = Some(json!({"values": {"x": 1}}));
    vec![
        (Method::GET, "/v1/namespaces", None),
        (Method::GET, "/v1/namespaces/checkout", None),
        (
            Method::PUT,
            "/v1/namespaces/checkout",
            Some(json!({"description": "changed"})),
        ),
        (Method::GET, "/v1/namespaces/checkout/layer", None),
        (Method::PUT, "/v1/namespaces/checkout/layer", layer.clone()),
        (Method::PATCH, "/v1/namespaces/checkout/layer", layer),
        (Method::DELETE, "/v1/namespaces/checkout/layer", None),
        (Method::GET, "/v1/namespaces/checkout/layer/history", None),
        (
            Method::POST,
            "/v1/namespaces/checkout/layer/rollback",
            Some(json!({"revision": 1})),
        ),
        (Method::GET, "/v1/namespaces/checkout/resolved", None),
        (Method::GET, "/v1/namespaces/checkout/watch", None),
        (Method::GET, "/v1/feed", None),
        (Method::GET, "/v1/tenants", None),
        (Method::GET, "/v1/tenants/acme", None),
        (
            Method::PUT,
            "/v1/tenants/acme",
            Some(json!({"edition": "pro"})),
        ),
        (Method::GET, "/v1/openapi.json", None),
        (Method::GET, "/v1/admin/projections", None),
        (Method::POST, "/v1/admin/projections/rebuild", None),
    ]
}

// ---------------------------------------------------------------------------
// 401 and the open endpoints
// ---------------------------------------------------------------------------

#[tokio::test]
async fn every_v1_route_refuses_a_missing_wrong_or_non_bearer_credential() {
    let app = spawn_app().await;
    let ns = app
        .put_namespace("checkout", &json!({"description": "Checkout"}))
        .await;
    assert_eq!(ns.status, StatusCode::CREATED, "{}", ns.body);
    let g = app
        .put_layer("checkout", "", &json!({"values": {"x": 0}}))
        .await;
    assert_eq!(g.status, StatusCode::CREATED, "{}", g.body);

    let credentials: [Option<&str>; 10] = [
        None,
        Some("Bearer wrong-token"),
        Some("Bearer test-admin-token-but-longer"),
        Some("Basic dGVzdC1hZG1pbi10b2tlbg=="),
        Some("Token test-admin-token"),
        Some("test-admin-token"),
        Some("Bearer "),
        Some("Bearer a.b.c"),
        Some("Bearer ecs_abc_def"),
        Some("Bearer ecs_bad"),
    ];
    for (method, path, body) in v1_routes() {
        for credential in credentials {
            let mut builder = app
                .client
                .request(method.clone(), format!("{}{path}", app.address));
            if let Some(credential) = credential {
                builder = builder.header("authorization", credential);
            }
            if let Some(body) = &body {
                builder = builder.json(body);
            }
            let answer = app.send(builder).await;
            let what = format!("{method} {path} with {credential:?}");
            assert_eq!(
                answer.status,
                StatusCode::UNAUTHORIZED,
                "{what}: {}",
                answer.body
            );
            assert_problem(&answer, StatusCode::UNAUTHORIZED, "unauthorized");
            let challenge = answer.header("www-authenticate").unwrap_or_default();
            assert!(challenge.starts_with("Bearer"), "{what}: {challenge:?}");
        }
    }

    // Nothing was written, nor rebuilt.
    let ns = app.get("/v1/namespaces/checkout").await;
    assert_eq!(ns.body["revision"], 1);
    assert_eq!(ns.body["description"], "Checkout");
    assert_eq!(revisions(&app, "checkout", "").await, 1);
    assert_eq!(app.get("/v1/tenants").await.body["tenants"], json!([]));
    let status = app.get("/v1/admin/projections").await;
    assert_eq!(status.body["rebuilding"], false);

    // The scheme is case-insensitive (RFC 9110).
    let lower = app
        .send(
            app.client
                .get(format!("{}/v1/namespaces", app.address))
                .header("authorization", format!("bearer {ADMIN_TOKEN}")),
        )
        .await;
    assert_eq!(lower.status, StatusCode::OK, "{}", lower.body);

    // Health, readiness and metrics are open.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let answer = app
            .send(app.client.get(format!("{}{path}", app.address)))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
    }
}

#[tokio::test]
async fn health_readiness_metrics_and_openapi_are_served() {
    let app = spawn_app().await;
    let open = |path: &str| app.client.get(format!("{}{path}", app.address));

    let health = app.send(open("/healthz")).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body, json!({"status": "ok"}));
    let ready = app.send(open("/readyz")).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    assert_eq!(ready.body["ready"], true);
    assert_eq!(ready.body["nats"], true);
    assert_eq!(ready.body["postgres"], true);
    assert_eq!(ready.body["projections"]["caught_up"], true);

    // Some traffic, accepted and refused.
    assert_eq!(
        app.put_namespace("checkout", &json!({})).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put_layer("checkout", "", &json!({"values": {"a": 1}}))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put_layer("checkout", "", &json!({"values": 1}))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(app.resolved("checkout", "").await.status, StatusCode::OK);

    let metrics = app.send(open("/metrics")).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(
        metrics
            .header("content-type")
            .unwrap_or_default()
            .starts_with("text/plain"),
        "{:?}",
        metrics.header("content-type")
    );
    let text = metrics.body.as_str().expect("Prometheus text").to_owned();
    for name in [
        "ecs_http_requests_total",
        "ecs_http_request_duration_seconds",
        "ecs_commands_total",
        "ecs_projection_applied_position",
        "ecs_projection_lag_messages",
        "ecs_projection_messages_applied_total",
    ] {
        assert!(text.contains(name), "metrics lack {name}:\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("ecs_http_requests_total")
                && l.contains("route=\"/v1/namespaces/{ns}/layer\"")
                && l.contains("status=\"201\"")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("ecs_commands_total")
            && l.contains("aggregate=\"layer\"")
            && l.contains("outcome=\"accepted\"")),
        "{text}"
    );

    // The OpenAPI document lists every route.
    let doc = app.get("/v1/openapi.json").await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(
        doc.body["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc.body["openapi"]
    );
    let expected: [(&str, &[&str]); 14] = [
        ("/v1/namespaces", &["get"]),
        ("/v1/namespaces/{ns}", &["get", "put"]),
        (
            "/v1/namespaces/{ns}/layer",
            &["get", "put", "patch", "delete"],
        ),
        ("/v1/namespaces/{ns}/layer/history", &["get"]),
        ("/v1/namespaces/{ns}/layer/rollback", &["post"]),
        ("/v1/namespaces/{ns}/resolved", &["get"]),
        ("/v1/tenants", &["get"]),
        ("/v1/tenants/{tenant}", &["get", "put"]),
        ("/v1/admin/projections", &["get"]),
        ("/v1/admin/projections/rebuild", &["post"]),
        ("/v1/openapi.json", &["get"]),
        ("/healthz", &["get"]),
        ("/readyz", &["get"]),
        ("/metrics", &["get"]),
    ];
    let paths = doc.body["paths"].as_object().expect("paths");
    for (path, methods) in expected {
        let item = paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} is not in the OpenAPI paths"));
        for method in methods {
            assert!(
                item.get(*method).is_some(),
                "{method} {path} is undocumented"
            );
        }
    }
    assert!(
        doc.body["components"]["securitySchemes"]["bearer"].is_object(),
        "{}",
        doc.body["components"]
    );
    // Every error answer is documented under the media type the server sends.
    let mut errors = 0;
    for (path, item) in paths.iter().filter(|(p, _)| !p.starts_with("/ofrep/")) {
        for (method, operation) in item.as_object().unwrap() {
            for (status, response) in operation["responses"].as_object().into_iter().flatten() {
                if !(status.starts_with('4') || status.starts_with('5')) {
                    continue;
                }
                if let Some(content) = response["content"].as_object() {
                    errors += 1;
                    let types: Vec<&String> = content.keys().collect();
                    assert_eq!(
                        types,
                        ["application/problem+json"],
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
    assert!(errors > 50, "only {errors} documented error bodies");
    // The open routes say they need no credential, and need none; the others
    // inherit the bearer requirement.
    for path in ecs_api::openapi::OPEN_PATHS {
        assert_eq!(
            paths[path]["get"]["security"],
            json!([{}]),
            "{path} is not marked open"
        );
    }
    for path in ["/healthz", "/readyz", "/v1/auth/config"] {
        let answer = reqwest::get(format!("{}{path}", app.address))
            .await
            .unwrap();
        assert_ne!(answer.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    assert!(paths["/v1/namespaces"]["get"].get("security").is_none());
    // Every write documents the headers it takes.
    let headers = |path: &str, method: &str| -> Vec<String> {
        paths[path][method]["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "header")
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let conditional = [
        ("/v1/namespaces/{ns}/layer", "put"),
        ("/v1/namespaces/{ns}/layer", "patch"),
        ("/v1/namespaces/{ns}/layer", "delete"),
        ("/v1/namespaces/{ns}/layer/rollback", "post"),
        ("/v1/namespaces/{ns}", "put"),
        ("/v1/tenants/{tenant}", "put"),
    ];
    let idempotent = [
        ("/v1/change-requests/{id}/approve", "post"),
        ("/v1/change-requests/{id}/reject", "post"),
        ("/v1/change-requests/{id}/withdraw", "post"),
        ("/v1/tenants/{tenant}/erase", "post"),
        ("/v1/tokens", "post"),
        ("/v1/tokens/{id}", "delete"),
    ];
    for (path, method) in conditional.iter().chain(&idempotent) {
        let names = headers(path, method);
        assert!(
            names.iter().any(|n| n == "Idempotency-Key"),
            "{method} {path}: {names:?}"
        );
        assert_eq!(
            names.iter().any(|n| n == "If-Match"),
            conditional.contains(&(path, method)),
            "{method} {path}: {names:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Namespaces and tenants
// ---------------------------------------------------------------------------

#[tokio::test]
async fn namespaces_are_created_read_listed_and_conditionally_updated() {
    let app = spawn_app().await;
    let body = json!({"description": "Checkout", "schema": checkout_schema()});
    let created = app.put_namespace("checkout", &body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.revision(), 1);
    assert!(created.position() > 0);
    assert_eq!(created.header("etag"), Some("\"1\""));

    let read = app.get("/v1/namespaces/checkout").await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.body["name"], "checkout");
    assert_eq!(read.body["description"], "Checkout");
    assert_eq!(read.body["schema"], checkout_schema());
    assert_eq!(read.body["revision"], 1);
    assert_eq!(read.body["position"], created.position());
    assert!(read.body["updated_at"].is_string());

    // An identical PUT changes nothing.
    let same = app.put_namespace("checkout", &body).await;
    assert_eq!(same.status, StatusCode::OK, "{}", same.body);
    assert_eq!(same.revision(), 1);
    assert_eq!(same.position(), created.position());
    assert_eq!(app.get("/v1/namespaces/checkout").await.body["revision"], 1);

    // A current If-Match succeeds; a stale one answers 412 and writes nothing.
    let updated = send_with(
        &app,
        Method::PUT,
        "/v1/namespaces/checkout",
        &[("if-match", "\"1\"")],
        Some(&json!({"description": "Checkout v2", "schema": checkout_schema()})),
    )
    .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.revision(), 2);
    assert_eq!(updated.header("etag"), Some("\"2\""));
    let stale = send_with(
        &app,
        Method::PUT,
        "/v1/namespaces/checkout",
        &[("if-match", "\"1\"")],
        Some(&json!({"description": "lost update"})),
    )
    .await;
    assert_problem(&stale, StatusCode::PRECONDITION_FAILED, "stale-revision");
    assert_eq!(stale.body["current_revision"], 2);
    let read = app.get("/v1/namespaces/checkout").await;
    assert_eq!(read.body["revision"], 2);
    assert_eq!(read.body["description"], "Checkout v2");
    let weak = send_with(
        &app,
        Method::PUT,
        "/v1/namespaces/checkout",
        &[("if-match", "W/\"2\"")],
        Some(&json!({"description": "Checkout v3", "schema": checkout_schema()})),
    )
    .await;
    assert_eq!(weak.status, StatusCode::OK, "{}", weak.body);
    assert_eq!(weak.revision(), 3);

    // If-Match on a namespace that does not exist yet is stale too.
    let absent = send_with(
        &app,
        Method::PUT,
        "/v1/namespaces/ghost",
        &[("if-match", "\"1\"")],
        Some(&json!({})),
    )
    .await;
    assert_problem(&absent, StatusCode::PRECONDITION_FAILED, "stale-revision");
    assert_problem(
        &app.get("/v1/namespaces/ghost").await,
        StatusCode::NOT_FOUND,
        "namespace-not-found",
    );

    // No schema at all, and a null schema, are fine.
    let billing = app.put_namespace("billing", &json!({})).await;
    assert_eq!(billing.status, StatusCode::CREATED, "{}", billing.body);
    let logging = app
        .put_namespace("logging", &json!({"schema": null, "description": ""}))
        .await;
    assert_eq!(logging.status, StatusCode::CREATED, "{}", logging.body);
    assert_eq!(
        app.get("/v1/namespaces/billing").await.body["schema"],
        Value::Null
    );

    // The longest name is accepted.
    let long = "n".repeat(64);
    assert_eq!(
        app.put_namespace(&long, &json!({})).await.status,
        StatusCode::CREATED
    );

    let list = app.get("/v1/namespaces").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let mut names: Vec<&str> = list.body["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    let mut expected = vec!["billing", "checkout", "logging", long.as_str()];
    expected.sort_unstable();
    assert_eq!(names, expected);

    // A description over 1000 characters is refused and writes nothing.
    let too_long = app
        .put_namespace("checkout", &json!({"description": "d".repeat(1001)}))
        .await;
    assert_bad(&too_long, "invalid-field", "description");
    assert_eq!(app.get("/v1/namespaces/checkout").await.body["revision"], 3);
}

#[tokio::test]
async fn tenants_are_created_read_listed_and_conditionally_updated() {
    let app = spawn_app().await;
    let created = app
        .put(
            "/v1/tenants/acme",
            &json!({"edition": "enterprise", "name": "Acme"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.revision(), 1);
    assert_eq!(created.header("etag"), Some("\"1\""));

    let read = app.get("/v1/tenants/acme").await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.body["id"], "acme");
    assert_eq!(read.body["name"], "Acme");
    assert_eq!(read.body["edition"], "enterprise");
    assert_eq!(read.body["revision"], 1);
    assert_eq!(read.body["position"], created.position());
    assert!(read.body["updated_at"].is_string());

    let same = app
        .put(
            "/v1/tenants/acme",
            &json!({"edition": "enterprise", "name": "Acme"}),
        )
        .await;
    assert_eq!(same.status, StatusCode::OK, "{}", same.body);
    assert_eq!(same.revision(), 1);
    assert_eq!(app.get("/v1/tenants/acme").await.body["revision"], 1);

    let changed = send_with(
        &app,
        Method::PUT,
        "/v1/tenants/acme",
        &[("if-match", "\"1\"")],
        Some(&json!({"edition": "pro", "name": "Acme"})),
    )
    .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_eq!(changed.revision(), 2);
    assert_eq!(changed.header("etag"), Some("\"2\""));
    let stale = send_with(
        &app,
        Method::PUT,
        "/v1/tenants/acme",
        &[("if-match", "\"1\"")],
        Some(&json!({"edition": "standard"})),
    )
    .await;
    assert_problem(&stale, StatusCode::PRECONDITION_FAILED, "stale-revision");
    assert_eq!(stale.body["current_revision"], 2);
    assert_eq!(app.get("/v1/tenants/acme").await.body["edition"], "pro");

    assert_eq!(
        app.put_tenant("globex", "standard").await.status,
        StatusCode::CREATED
    );
    let list = app.get("/v1/tenants").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let mut tenants: Vec<(String, String)> = list.body["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap().to_owned(),
                t["edition"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    tenants.sort();
    assert_eq!(
        tenants,
        vec![
            ("acme".to_owned(), "pro".to_owned()),
            ("globex".to_owned(), "standard".to_owned())
        ]
    );

    // Refused tenant bodies.
    let bad_edition = app
        .put("/v1/tenants/acme", &json!({"edition": "a.b"}))
        .await;
    assert_bad(&bad_edition, "invalid-field", "edition");
    let missing = app.put("/v1/tenants/initech", &json!({"name": "x"})).await;
    assert_problem(&missing, StatusCode::BAD_REQUEST, "invalid-field");
    let long_name = app
        .put(
            "/v1/tenants/acme",
            &json!({"edition": "pro", "name": "n".repeat(201)}),
        )
        .await;
    assert_bad(&long_name, "invalid-field", "name");
    assert_eq!(app.get("/v1/tenants/acme").await.body["revision"], 2);
    assert_eq!(
        app.get("/v1/tenants").await.body["tenants"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

// ---------------------------------------------------------------------------
// 404
// ---------------------------------------------------------------------------

#[tokio::test]
async fn unknown_resources_answer_404_problems() {
    let app = spawn_app().await;
    assert_eq!(
        app.put_namespace("checkout", &json!({})).await.status,
        StatusCode::CREATED
    );
    let tenant = app.put_tenant("acme", "pro").await;
    assert_eq!(tenant.status, StatusCode::CREATED);

    let layer = json!({"values": {"a": 1}});
    let unknown_ns = [
        app.get("/v1/namespaces/nope").await,
        app.get_layer("nope", "").await,
        app.history("nope", "").await,
        app.resolved("nope", "").await,
        app.put_layer("nope", "", &layer).await,
        app.patch("/v1/namespaces/nope/layer", &layer).await,
        app.delete("/v1/namespaces/nope/layer").await,
        app.post(
            "/v1/namespaces/nope/layer/rollback",
            &json!({"revision": 1}),
        )
        .await,
    ];
    for answer in &unknown_ns {
        assert_problem(answer, StatusCode::NOT_FOUND, "namespace-not-found");
    }

    assert_problem(
        &app.get("/v1/tenants/nobody").await,
        StatusCode::NOT_FOUND,
        "tenant-not-found",
    );
    assert_problem(
        &app.put_layer("checkout", "tenant=nobody", &layer).await,
        StatusCode::NOT_FOUND,
        "tenant-not-found",
    );
    assert_problem(
        &app.patch(
            "/v1/namespaces/checkout/layer?env=prod&tenant=nobody",
            &layer,
        )
        .await,
        StatusCode::NOT_FOUND,
        "tenant-not-found",
    );
    assert_problem(
        &app.resolved("checkout", "tenant=nobody").await,
        StatusCode::NOT_FOUND,
        "tenant-not-found",
    );

    // Layers never written, and clearing one.
    assert_problem(
        &app.get_layer("checkout", "").await,
        StatusCode::NOT_FOUND,
        "layer-not-found",
    );
    assert_problem(
        &app.get_layer("checkout", "env=prod&tenant=acme").await,
        StatusCode::NOT_FOUND,
        "layer-not-found",
    );
    assert_problem(
        &app.delete("/v1/namespaces/checkout/layer?env=prod").await,
        StatusCode::NOT_FOUND,
        "layer-not-found",
    );

    // The past: before the first write, before the namespace, before the tenant.
    let first = app.put_layer("checkout", "", &layer).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_problem(
        &app.get_layer("checkout", &format!("position={}", first.position() - 1))
            .await,
        StatusCode::NOT_FOUND,
        "layer-not-found",
    );
    assert_problem(
        &app.resolved("checkout", "at=2000-01-01T00:00:00Z").await,
        StatusCode::NOT_FOUND,
        "namespace-not-found",
    );
    assert_problem(
        &app.resolved(
            "checkout",
            &format!("tenant=acme&position={}", tenant.position() - 1),
        )
        .await,
        StatusCode::NOT_FOUND,
        "tenant-not-found",
    );

    // Unknown routes, inside /v1 and out.
    for path in [
        "/v1/nope",
        "/v1/namespaces/checkout/nope",
        "/v1/namespaces/checkout/layer/nope",
        "/v1/tenants/acme/nope",
        "/v2/namespaces",
        "/nope",
    ] {
        let answer = app.get(path).await;
        assert_problem(&answer, StatusCode::NOT_FOUND, "no-such-route");
    }

    // None of the refused writes left a trace.
    assert_eq!(revisions(&app, "checkout", "").await, 1);
    assert_eq!(revisions(&app, "checkout", "env=prod").await, 0);
    assert_eq!(revisions(&app, "checkout", "tenant=nobody").await, 0);
    assert_eq!(
        app.get("/v1/namespaces").await.body["namespaces"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        app.get("/v1/tenants").await.body["tenants"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

// ---------------------------------------------------------------------------
// 400
// ---------------------------------------------------------------------------

#[tokio::test]
async fn malformed_bodies_answer_400_naming_the_field() {
    let app = spawn_app().await;
    assert_eq!(
        app.put_namespace("checkout", &json!({})).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put_layer("checkout", "", &json!({"values": {"max_items": 10}}))
            .await
            .status,
        StatusCode::CREATED
    );
    let layer = "/v1/namespaces/checkout/layer";
    let rollback = "/v1/namespaces/checkout/layer/rollback";
    let long_message = format!(r#"{{"values": {{}}, "message": "{}"}}"#, "m".repeat(1001));
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let deep_values = format!(
        r#"{{"values": {}1{}}}"#,
        r#"{"a":"#.repeat(200),
        "}".repeat(200)
    );
    let cases: Vec<(Method, &str, String, &str, Option<&str>)> = vec![
        (Method::PUT, layer, "{".into(), "malformed-json", None),
        (
            Method::PUT,
            layer,
            "".into(),
            "malformed-json",
            Some("body"),
        ),
        (
            Method::PUT,
            layer,
            "{\"values\": {}} x".into(),
            "malformed-json",
            Some("body"),
        ),
        (
            Method::PUT,
            layer,
            "{'values': {}}".into(),
            "malformed-json",
            None,
        ),
        (Method::PUT, layer, deep, "malformed-json", None),
        (
            Method::PUT,
            layer,
            "\"values\"".into(),
            "invalid-field",
            Some("body"),
        ),
        (
            Method::PUT,
            layer,
            "null".into(),
            "invalid-field",
            Some("body"),
        ),
        (
            Method::PUT,
            layer,
            r#"{"values": 5}"#.into(),
            "invalid-field",
            Some("values"),
        ),
        (
            Method::PUT,
            layer,
            r#"{"values": [1]}"#.into(),
            "invalid-field",
            Some("values"),
        ),
        (
            Method::PUT,
            layer,
            r#"{"values": null}"#.into(),
            "invalid-field",
            Some("values"),
        ),
        (
            Method::PUT,
            layer,
            r#"{"values": "x"}"#.into(),
            "invalid-field",
            Some("values"),
        ),
        (
            Method::PUT,
            layer,
            r#"{"message": "no values"}"#.into(),
            "invalid-field",
            None,
        ),
        (
            Method::PUT,
            layer,
            r#"{"values": {}, "message": 5}"#.into(),
            "invalid-field",
            Some("message"),
        ),
        (
            Method::PUT,
            layer,
            r#"{"values": {}, "lock": "/a"}"#.into(),
            "invalid-field",
            Some("lock"),
        ),
        (
            Method::PUT,
            layer,
            r#"{"values": {}, "lock": [1]}"#.into(),
            "invalid-field",
            Some("lock[0]"),
        ),
        (
            Method::PUT,
            layer,
            r#"{"values": {}, "extra": 1}"#.into(),
            "invalid-field",
            Some("extra"),
        ),
        (
            Method::PUT,
            layer,
            r#"{"values": {}, "values": {}}"#.into(),
            "invalid-field",
            None,
        ),
        (
            Method::PUT,
            layer,
            long_message,
            "invalid-field",
            Some("message"),
        ),
        (Method::PUT, layer, deep_values, "", None),
        (
            Method::PATCH,
            layer,
            r#"{"values": 5}"#.into(),
            "invalid-field",
            Some("values"),
        ),
        (
            Method::PATCH,
            layer,
            r#"{"values": {}, "lock": []}"#.into(),
            "invalid-field",
            Some("lock"),
        ),
        (
            Method::PATCH,
            layer,
            "[]".into(),
            "invalid-field",
            Some("body"),
        ),
        (
            Method::POST,
            rollback,
            r#"{"revision": "x"}"#.into(),
            "invalid-field",
            Some("revision"),
        ),
        (
            Method::POST,
            rollback,
            r#"{"revision": -1}"#.into(),
            "invalid-field",
            Some("revision"),
        ),
        (
            Method::POST,
            rollback,
            r#"{"revision": 1.5}"#.into(),
            "invalid-field",
            Some("revision"),
        ),
        (
            Method::POST,
            rollback,
            r#"{"revision": 18446744073709551616}"#.into(),
            "invalid-field",
            Some("revision"),
        ),
        (Method::POST, rollback, "{}".into(), "invalid-field", None),
        (
            Method::POST,
            rollback,
            r#"{"revision": 1, "to": 2}"#.into(),
            "invalid-field",
            Some("to"),
        ),
        (
            Method::PUT,
            "/v1/namespaces/checkout",
            r#"{"description": 5}"#.into(),
            "invalid-field",
            Some("description"),
        ),
        (
            Method::PUT,
            "/v1/namespaces/checkout",
            r#"{"descripton": "typo"}"#.into(),
            "invalid-field",
            Some("descripton"),
        ),
        (
            Method::PUT,
            "/v1/namespaces/checkout",
            "{".into(),
            "malformed-json",
            None,
        ),
        (
            Method::PUT,
            "/v1/tenants/acme",
            r#"{"edition": 5}"#.into(),
            "invalid-field",
            Some("edition"),
        ),
        (
            Method::PUT,
            "/v1/tenants/acme",
            r#"{"edition": "pro", "plan": "x"}"#.into(),
            "invalid-field",
            Some("plan"),
        ),
        (
            Method::PUT,
            "/v1/tenants/acme",
            r#"{"edition": "pro", "name": 5}"#.into(),
            "invalid-field",
            Some("name"),
        ),
        (
            Method::PUT,
            "/v1/tenants/acme",
            "5".into(),
            "invalid-field",
            Some("body"),
        ),
    ];
    for (method, path, body, code, field) in cases {
        let what = format!("{method} {path} {:.80}", body);
        let answer = send_raw(&app, method, path, Some("application/json"), body).await;
        if code.is_empty() {
            // Deep but valid: any answer but a 5xx.
            assert_sane(&answer, &what);
            continue;
        }
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{what}: {}",
            answer.body
        );
        assert_problem(&answer, StatusCode::BAD_REQUEST, code);
        if let Some(field) = field {
            assert_eq!(answer.body["field"], field, "{what}: {}", answer.body);
        }
    }

    // Nothing was written by any of them (the deep valid one aside).
    let h = app.history("checkout", "").await;
    let revisions = h.body["revisions"].as_array().unwrap();
    assert!(revisions.len() <= 2, "{}", h.body);
    assert_eq!(revisions[0]["values"], json!({"max_items": 10}));
    let ns = app.get("/v1/namespaces/checkout").await;
    assert_eq!(ns.body["revision"], 1);
    assert_eq!(ns.body["description"], "");
    assert_eq!(app.get("/v1/tenants").await.body["tenants"], json!([]));
}

#[tokio::test]
async fn bad_query_parameters_answer_400_naming_the_parameter() {
    let app = spawn_app().await;
    assert_eq!(
        app.put_namespace("checkout", &json!({})).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put_tenant("acme", "pro").await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put_layer("checkout", "", &json!({"values": {"a": 1}}))
            .await
            .status,
        StatusCode::CREATED
    );
    let body = json!({"values": {"a": 2}});
    let rollback = json!({"revision": 1});
    let empty = json!({});
    let tenant = json!({"edition": "standard"});
    let ns = "/v1/namespaces/checkout";
    let unknown: Vec<(Method, String, Option<&Value>, &str)> = vec![
        (Method::GET, format!("{ns}/layer?foo=1"), None, "foo"),
        (Method::GET, format!("{ns}/layer?ENV=prod"), None, "ENV"),
        (
            Method::GET,
            format!("{ns}/layer?explain=true"),
            None,
            "explain",
        ),
        (Method::PUT, format!("{ns}/layer?foo=1"), Some(&body), "foo"),
        (
            Method::PUT,
            format!("{ns}/layer?position=1"),
            Some(&body),
            "position",
        ),
        (
            Method::PATCH,
            format!("{ns}/layer?explain=true"),
            Some(&body),
            "explain",
        ),
        (Method::DELETE, format!("{ns}/layer?at=x"), None, "at"),
        (
            Method::GET,
            format!("{ns}/layer/history?position=1"),
            None,
            "position",
        ),
        (
            Method::POST,
            format!("{ns}/layer/rollback?foo"),
            Some(&rollback),
            "foo",
        ),
        (Method::GET, format!("{ns}/resolved?foo=1"), None, "foo"),
        (
            Method::GET,
            format!("{ns}/resolved?message=x"),
            None,
            "message",
        ),
        (
            Method::GET,
            "/v1/namespaces?limit=1".to_owned(),
            None,
            "limit",
        ),
        (Method::GET, format!("{ns}?x=1"), None, "x"),
        (Method::PUT, format!("{ns}?x=1"), Some(&empty), "x"),
        (Method::GET, "/v1/tenants?x=1".to_owned(), None, "x"),
        (Method::GET, "/v1/tenants/acme?x=1".to_owned(), None, "x"),
        (
            Method::PUT,
            "/v1/tenants/acme?x=1".to_owned(),
            Some(&tenant),
            "x",
        ),
        (
            Method::GET,
            "/v1/admin/projections?x=1".to_owned(),
            None,
            "x",
        ),
        (
            Method::POST,
            "/v1/admin/projections/rebuild?x=1".to_owned(),
            None,
            "x",
        ),
    ];
    for (method, path, body, field) in unknown {
        let answer = send_with(&app, method.clone(), &path, &[], body).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{method} {path}: {}",
            answer.body
        );
        assert_bad(&answer, "unknown-parameter", field);
    }

    let repeated: Vec<(Method, String, Option<&Value>, &str)> = vec![
        (Method::GET, format!("{ns}/layer?env=a&env=b"), None, "env"),
        (
            Method::PUT,
            format!("{ns}/layer?env=a&env=a"),
            Some(&body),
            "env",
        ),
        (
            Method::DELETE,
            format!("{ns}/layer?tenant=acme&tenant=acme"),
            None,
            "tenant",
        ),
        (
            Method::GET,
            format!("{ns}/resolved?explain=true&explain=true"),
            None,
            "explain",
        ),
        (
            Method::GET,
            format!("{ns}/resolved?position=1&position=2"),
            None,
            "position",
        ),
    ];
    for (method, path, body, field) in repeated {
        let answer = send_with(&app, method.clone(), &path, &[], body).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{method} {path}: {}",
            answer.body
        );
        assert_bad(&answer, "repeated-parameter", field);
    }

    for target in ["layer", "resolved"] {
        for (query, field) in [
            ("at=yesterday", "at"),
            ("at=2024-01-01", "at"),
            ("at=2024-01-01T00:00:00", "at"),
            ("at=", "at"),
            ("position=-1", "position"),
            ("position=abc", "position"),
            ("position=1.5", "position"),
            ("position=", "position"),
            ("position=18446744073709551616", "position"),
            ("at=2024-01-01T00:00:00Z&position=1", "at"),
        ] {
            let answer = app.get(&format!("{ns}/{target}?{query}")).await;
            assert_eq!(
                answer.status,
                StatusCode::BAD_REQUEST,
                "{target}?{query}: {}",
                answer.body
            );
            assert_bad(&answer, "invalid-parameter", field);
        }
    }
    for value in ["yes", "1", "TRUE", "no"] {
        let answer = app.resolved("checkout", &format!("explain={value}")).await;
        assert_bad(&answer, "invalid-parameter", "explain");
    }
    // The accepted spellings.
    for (value, has_sources) in [("true", true), ("", true), ("false", false)] {
        let answer = app.resolved("checkout", &format!("explain={value}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(
            answer.body.get("sources").is_some(),
            has_sources,
            "explain={value}"
        );
    }

    assert_eq!(revisions(&app, "checkout", "").await, 1);
    assert_eq!(revisions(&app, "checkout", "env=a").await, 0);
    assert_eq!(app.get("/v1/tenants/acme").await.body["edition"], "pro");
    assert_eq!(
        app.get("/v1/admin/projections").await.body["rebuilding"],
        false
    );
}

#[tokio::test]
async fn bad_identifiers_in_path_and_query_answer_400_naming_the_field() {
    let app = spawn_app().await;
    assert_eq!(
        app.put_namespace("checkout", &json!({})).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put_tenant("acme", "pro").await.status,
        StatusCode::CREATED
    );
    let long = "x".repeat(65);
    // Percent-encoded as they travel.
    let bad: Vec<&str> = vec![
        "a.b",
        "_x",
        "-x",
        &long,
        "%2e%2e",
        "..",
        "a%20b",
        "%C3%A9t%C3%A9",
        "a%2Fb",
        "%F0%9F%98%80",
        "a*b",
        "a%3Eb",
        "a%2Ab",
    ];
    let layer = r#"{"values": {"a": 1}}"#;
    for id in &bad {
        let path_cases: [(&str, String, &str, &str); 10] = [
            ("GET", format!("/v1/namespaces/{id}"), "", "namespace"),
            ("PUT", format!("/v1/namespaces/{id}"), "{}", "namespace"),
            ("GET", format!("/v1/namespaces/{id}/layer"), "", "namespace"),
            (
                "PUT",
                format!("/v1/namespaces/{id}/layer"),
                layer,
                "namespace",
            ),
            (
                "GET",
                format!("/v1/namespaces/{id}/layer/history"),
                "",
                "namespace",
            ),
            (
                "POST",
                format!("/v1/namespaces/{id}/layer/rollback"),
                r#"{"revision": 1}"#,
                "namespace",
            ),
            (
                "GET",
                format!("/v1/namespaces/{id}/resolved"),
                "",
                "namespace",
            ),
            ("GET", format!("/v1/tenants/{id}"), "", "tenant"),
            (
                "PUT",
                format!("/v1/tenants/{id}"),
                r#"{"edition": "pro"}"#,
                "tenant",
            ),
            (
                "DELETE",
                format!("/v1/namespaces/{id}/layer"),
                "",
                "namespace",
            ),
        ];
        for (method, target, body, field) in path_cases {
            let answer = raw_http(&app, method, &target, body).await;
            assert_eq!(
                answer.status,
                StatusCode::BAD_REQUEST,
                "{method} {target}: {}",
                answer.body
            );
            assert_bad(&answer, "invalid-identifier", field);
        }
    }
    // Invalid UTF-8 in the path is still a 400 problem.
    let answer = raw_http(&app, "GET", "/v1/namespaces/%FF", "").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert_problem(&answer, StatusCode::BAD_REQUEST, answer.code());

    let mut query_bad: Vec<&str> = bad.clone();
    query_bad.extend(["", "a+b", "%FF"]);
    let ns = "/v1/namespaces/checkout";
    for id in &query_bad {
        for field in ["env", "service", "tenant", "edition"] {
            for (method, target, body) in [
                ("GET", format!("{ns}/layer?{field}={id}"), ""),
                ("PUT", format!("{ns}/layer?{field}={id}"), layer),
                ("PATCH", format!("{ns}/layer?{field}={id}"), layer),
                ("DELETE", format!("{ns}/layer?{field}={id}"), ""),
                ("GET", format!("{ns}/layer/history?{field}={id}"), ""),
                (
                    "POST",
                    format!("{ns}/layer/rollback?{field}={id}"),
                    r#"{"revision": 1}"#,
                ),
                ("GET", format!("{ns}/resolved?{field}={id}"), ""),
            ] {
                let answer = raw_http(&app, method, &target, body).await;
                assert_eq!(
                    answer.status,
                    StatusCode::BAD_REQUEST,
                    "{method} {target}: {}",
                    answer.body
                );
                assert_bad(&answer, "invalid-identifier", field);
            }
        }
    }

    // Nothing was created.
    assert_eq!(
        app.get("/v1/namespaces").await.body["namespaces"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        app.get("/v1/tenants").await.body["tenants"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(revisions(&app, "checkout", "").await, 0);
}

#[tokio::test]
async fn malformed_if_match_and_idempotency_key_answer_400() {
    let app = spawn_app().await;
    assert_eq!(
        app.put_namespace("checkout", &json!({"description": "d"}))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put_tenant("acme", "pro").await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put_layer("checkout", "", &json!({"values": {"a": 1}}))
            .await
            .status,
        StatusCode::CREATED
    );
    let layer = json!({"values": {"a": 2}});
    let writes: Vec<(Method, &str, Option<Value>)> = vec![
        (
            Method::PUT,
            "/v1/namespaces/checkout/layer",
            Some(layer.clone()),
        ),
        (Method::PATCH, "/v1/namespaces/checkout/layer", Some(layer)),
        (Method::DELETE, "/v1/namespaces/checkout/layer", None),
        (
            Method::POST,
            "/v1/namespaces/checkout/layer/rollback",
            Some(json!({"revision": 1})),
        ),
        (
            Method::PUT,
            "/v1/namespaces/checkout",
            Some(json!({"description": "e"})),
        ),
        (
            Method::PUT,
            "/v1/tenants/acme",
            Some(json!({"edition": "standard"})),
        ),
    ];
    let long_key = "k".repeat(256);
    for (method, path, body) in &writes {
        for value in [
            "abc",
            "\"x\"",
            "\"-1\"",
            "\"\"",
            "\"1",
            "*",
            "\"1\", \"2\"",
            "1.0",
            "\"18446744073709551616\"",
        ] {
            let answer = send_with(
                &app,
                method.clone(),
                path,
                &[("if-match", value)],
                body.as_ref(),
            )
            .await;
            assert_eq!(
                answer.status,
                StatusCode::BAD_REQUEST,
                "{method} {path} If-Match {value}: {}",
                answer.body
            );
            assert_bad(&answer, "invalid-header", "If-Match");
        }
        let answer = send_with(
            &app,
            method.clone(),
            path,
            &[("idempotency-key", &long_key)],
            body.as_ref(),
        )
        .await;
        assert_bad(&answer, "invalid-header", "Idempotency-Key");
    }
    assert_eq!(revisions(&app, "checkout", "").await, 1);
    assert_eq!(app.get("/v1/namespaces/checkout").await.body["revision"], 1);
    assert_eq!(app.get("/v1/tenants/acme").await.body["revision"], 1);
}

// ---------------------------------------------------------------------------
// 415 and 413
// ---------------------------------------------------------------------------

#[tokio::test]
async fn non_json_content_types_answer_415_and_json_variants_are_accepted() {
    let app = spawn_app().await;
    assert_eq!(
        app.put_namespace("checkout", &json!({})).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put_tenant("acme", "pro").await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put_layer("checkout", "", &json!({"values": {"a": 1}}))
            .await
            .status,
        StatusCode::CREATED
    );
    let writes: [(Method, &str, &str); 5] = [
        (
            Method::PUT,
            "/v1/namespaces/checkout/layer",
            r#"{"values": {"a": 2}}"#,
        ),
        (
            Method::PATCH,
            "/v1/namespaces/checkout/layer",
            r#"{"values": {"a": 2}}"#,
        ),
        (
            Method::POST,
            "/v1/namespaces/checkout/layer/rollback",
            r#"{"revision": 1}"#,
        ),
        (
            Method::PUT,
            "/v1/namespaces/checkout",
            r#"{"description": "x"}"#,
        ),
        (
            Method::PUT,
            "/v1/tenants/acme",
            r#"{"edition": "standard"}"#,
        ),
    ];
    for (method, path, body) in &writes {
        for content_type in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("application/xml"),
            Some("application/jsonx"),
            Some("multipart/form-data; boundary=x"),
            Some("json"),
        ] {
            let answer = send_raw(&app, method.clone(), path, content_type, *body).await;
            assert_eq!(
                answer.status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{method} {path} as {content_type:?}: {}",
                answer.body
            );
            assert_problem(
                &answer,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
            );
        }
    }
    assert_eq!(revisions(&app, "checkout", "").await, 1);
    assert_eq!(app.get("/v1/namespaces/checkout").await.body["revision"], 1);
    assert_eq!(app.get("/v1/tenants/acme").await.body["revision"], 1);

    // JSON under other spellings is accepted.
    let path = "/v1/namespaces/checkout/layer";
    let a = send_raw(
        &app,
        Method::PUT,
        path,
        Some("application/json; charset=utf-8"),
        r#"{"values": {"a": 2}}"#,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let b = send_raw(
        &app,
        Method::PATCH,
        path,
        Some("application/merge-patch+json"),
        r#"{"values": {"b": 3}}"#,
    )
    .await;
    assert_eq!(b.status, StatusCode::OK, "{}", b.body);
    let c = send_raw(
        &app,
        Method::PUT,
        path,
        Some("Application/JSON"),
        r#"{"values": {"c": 4}}"#,
    )
    .await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.body);
    assert_eq!(
        app.get_layer("checkout", "").await.body["values"],
        json!({"c": 4})
    );
}

#[tokio::test]
async fn bodies_over_the_limit_answer_413() {
    let app = spawn_app().await;
    assert_eq!(
        app.put_namespace("checkout", &json!({})).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put_tenant("acme", "pro").await.status,
        StatusCode::CREATED
    );
    let big = "x".repeat(70 * 1024);
    let writes: [(Method, &str, Value); 5] = [
        (
            Method::PUT,
            "/v1/namespaces/checkout/layer",
            json!({"values": {"blob": big}}),
        ),
        (
            Method::PATCH,
            "/v1/namespaces/checkout/layer",
            json!({"values": {"blob": big}}),
        ),
        (
            Method::POST,
            "/v1/namespaces/checkout/layer/rollback",
            json!({"revision": 1, "message": big}),
        ),
        (
            Method::PUT,
            "/v1/namespaces/checkout",
            json!({"description": big}),
        ),
        (
            Method::PUT,
            "/v1/tenants/acme",
            json!({"edition": "pro", "name": big}),
        ),
    ];
    for (method, path, body) in &writes {
        let answer = send_with(&app, method.clone(), path, &[], Some(body)).await;
        assert_eq!(
            answer.status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{method} {path}: {}",
            answer.body
        );
        assert_problem(&answer, StatusCode::PAYLOAD_TOO_LARGE, "body-too-large");
    }
    // Without a Content-Length (chunked), too.
    let text = json!({"values": {"blob": big}}).to_string();
    let chunks: Vec<Result<String, std::io::Error>> = text
        .as_bytes()
        .chunks(8192)
        .map(|c| Ok(String::from_utf8(c.to_vec()).unwrap()))
        .collect();
    let streamed = send_raw(
        &app,
        Method::PUT,
        "/v1/namespaces/checkout/layer",
        Some("application/json"),
        reqwest::Body::wrap_stream(futures::stream::iter(chunks)),
    )
    .await;
    assert_problem(&streamed, StatusCode::PAYLOAD_TOO_LARGE, "body-too-large");

    assert_eq!(revisions(&app, "checkout", "").await, 0);
    assert_eq!(app.get("/v1/namespaces/checkout").await.body["revision"], 1);
    assert_eq!(app.get("/v1/tenants/acme").await.body["revision"], 1);

    // Just under the limit is fine.
    let fits = app
        .put_layer(
            "checkout",
            "",
            &json!({"values": {"blob": "x".repeat(60 * 1024)}}),
        )
        .await;
    assert_eq!(fits.status, StatusCode::CREATED, "{}", fits.body);
}

// ---------------------------------------------------------------------------
// 412
// ---------------------------------------------------------------------------

#[tokio::test]
async fn stale_if_match_answers_412_and_the_current_one_succeeds() {
    let app = spawn_app().await;
    assert_eq!(
        app.put_namespace("checkout", &json!({})).await.status,
        StatusCode::CREATED
    );
    let layer = "/v1/namespaces/checkout/layer";
    let r1 = app
        .put_layer("checkout", "", &json!({"values": {"a": 1}}))
        .await;
    assert_eq!(r1.header("etag"), Some("\"1\""));
    let r2 = app
        .put_layer("checkout", "", &json!({"values": {"a": 2}}))
        .await;
    assert_eq!(r2.status, StatusCode::OK, "{}", r2.body);
    assert_eq!(r2.revision(), 2);

    let stale: [(Method, &str, Option<Value>); 4] = [
        (Method::PUT, layer, Some(json!({"values": {"a": 3}}))),
        (Method::PATCH, layer, Some(json!({"values": {"a": 3}}))),
        (Method::DELETE, layer, None),
        (
            Method::POST,
            "/v1/namespaces/checkout/layer/rollback",
            Some(json!({"revision": 1})),
        ),
    ];
    for (method, path, body) in &stale {
        for value in ["\"1\"", "\"3\"", "W/\"1\""] {
            let answer = send_with(
                &app,
                method.clone(),
                path,
                &[("if-match", value)],
                body.as_ref(),
            )
            .await;
            assert_problem(&answer, StatusCode::PRECONDITION_FAILED, "stale-revision");
            assert_eq!(answer.body["current_revision"], 2, "{}", answer.body);
        }
    }
    assert_eq!(revisions(&app, "checkout", "").await, 2);
    assert_eq!(
        app.get_layer("checkout", "").await.body["values"],
        json!({"a": 2})
    );

    // The current revision succeeds, and each answer's ETag feeds the next.
    let put = send_with(
        &app,
        Method::PUT,
        layer,
        &[("if-match", "\"2\"")],
        Some(&json!({"values": {"a": 3}})),
    )
    .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    assert_eq!(put.revision(), 3);
    let etag = put.header("etag").unwrap().to_owned();
    assert_eq!(etag, "\"3\"");
    let patch = send_with(
        &app,
        Method::PATCH,
        layer,
        &[("if-match", &format!("W/{etag}"))],
        Some(&json!({"values": {"b": 1}})),
    )
    .await;
    assert_eq!(patch.status, StatusCode::OK, "{}", patch.body);
    assert_eq!(patch.revision(), 4);
    let read = app.get_layer("checkout", "").await;
    assert_eq!(read.header("etag"), Some("\"4\""));
    let rollback = send_with(
        &app,
        Method::POST,
        "/v1/namespaces/checkout/layer/rollback",
        &[("if-match", "\"4\"")],
        Some(&json!({"revision": 1})),
    )
    .await;
    assert_eq!(rollback.status, StatusCode::OK, "{}", rollback.body);
    assert_eq!(rollback.revision(), 5);
    let delete = send_with(&app, Method::DELETE, layer, &[("if-match", "\"5\"")], None).await;
    assert_eq!(delete.status, StatusCode::OK, "{}", delete.body);
    assert_eq!(delete.revision(), 6);
    assert_eq!(delete.header("etag"), Some("\"6\""));

    // If-Match "0": create only.
    let prod = "/v1/namespaces/checkout/layer?env=prod";
    let create = send_with(
        &app,
        Method::PUT,
        prod,
        &[("if-match", "\"0\"")],
        Some(&json!({"values": {"p": 1}})),
    )
    .await;
    assert_eq!(create.status, StatusCode::CREATED, "{}", create.body);
    let again = send_with(
        &app,
        Method::PUT,
        prod,
        &[("if-match", "\"0\"")],
        Some(&json!({"values": {"p": 2}})),
    )
    .await;
    assert_problem(&again, StatusCode::PRECONDITION_FAILED, "stale-revision");
    assert_eq!(again.body["current_revision"], 1);

    // If-Match on a layer never written is stale.
    let dev = send_with(
        &app,
        Method::PUT,
        "/v1/namespaces/checkout/layer?env=dev",
        &[("if-match", "\"1\"")],
        Some(&json!({"values": {"d": 1}})),
    )
    .await;
    assert_problem(&dev, StatusCode::PRECONDITION_FAILED, "stale-revision");
    assert_eq!(dev.body["current_revision"], 0);
    assert_eq!(revisions(&app, "checkout", "env=dev").await, 0);
    assert_eq!(revisions(&app, "checkout", "env=prod").await, 1);
    assert_eq!(revisions(&app, "checkout", "").await, 6);
}

// ---------------------------------------------------------------------------
// 422
// ---------------------------------------------------------------------------

#[tokio::test]
async fn writes_failing_the_namespace_schema_answer_422_with_pointers() {
    let app = spawn_app().await;
    assert_eq!(
        app.put_namespace("checkout", &json!({"schema": checkout_schema()}))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put_tenant("acme", "pro").await.status,
        StatusCode::CREATED
    );

    let over = app
        .put_layer("checkout", "", &json!({"values": {"max_items": 5000}}))
        .await;
    assert_problem(&over, StatusCode::UNPROCESSABLE_ENTITY, "schema-violation");
    let violations = over.body["violations"].as_array().expect("violations");
    assert_eq!(violations.len(), 1, "{}", over.body);
    assert_eq!(violations[0]["pointer"], "/max_items");
    assert!(violations[0]["message"].is_string());

    let two = app
        .put_layer(
            "checkout",
            "",
            &json!({"values": {"max_items": "ten", "currency": 5}}),
        )
        .await;
    assert_problem(&two, StatusCode::UNPROCESSABLE_ENTITY, "schema-violation");
    let mut pointers: Vec<&str> = two.body["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["pointer"].as_str().unwrap())
        .collect();
    pointers.sort_unstable();
    assert_eq!(pointers, vec!["/currency", "/max_items"]);

    let ok = app
        .put_layer("checkout", "", &json!({"values": {"max_items": 10}}))
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);

    let nested = app
        .put_layer(
            "checkout",
            "tenant=acme",
            &json!({"values": {"payment": {"provider": 7}}}),
        )
        .await;
    assert_problem(
        &nested,
        StatusCode::UNPROCESSABLE_ENTITY,
        "schema-violation",
    );
    assert_eq!(nested.body["violations"][0]["pointer"], "/payment/provider");

    let patch = app
        .patch(
            "/v1/namespaces/checkout/layer",
            &json!({"values": {"max_items": 0}}),
        )
        .await;
    assert_problem(&patch, StatusCode::UNPROCESSABLE_ENTITY, "schema-violation");
    assert_eq!(patch.body["violations"][0]["pointer"], "/max_items");

    // Nothing written by the refusals.
    assert_eq!(revisions(&app, "checkout", "").await, 1);
    assert_eq!(revisions(&app, "checkout", "tenant=acme").await, 0);
    assert_eq!(
        app.resolved("checkout", "tenant=acme").await.body["values"],
        json!({"currency": "USD", "max_items": 10})
    );
}

#[tokio::test]
async fn writes_overriding_a_lock_answer_422_naming_the_locking_scope() {
    let app = spawn_app().await;
    assert_eq!(
        app.put_namespace("checkout", &json!({})).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put_tenant("acme", "pro").await.status,
        StatusCode::CREATED
    );

    let global = app
        .put_layer(
            "checkout",
            "",
            &json!({"values": {"payment": {"provider": "stripe"}}, "lock": ["/payment/provider"]}),
        )
        .await;
    assert_eq!(global.status, StatusCode::CREATED, "{}", global.body);
    assert_eq!(
        app.get_layer("checkout", "").await.body["locked"],
        json!(["/payment/provider"])
    );

    let prod = app
        .put_layer(
            "checkout",
            "env=prod",
            &json!({"values": {"payment": {"provider": "adyen"}}}),
        )
        .await;
    assert_problem(&prod, StatusCode::UNPROCESSABLE_ENTITY, "locked");
    assert_eq!(
        prod.body["violations"],
        json!([{"pointer": "/payment/provider", "locked_pointer": "/payment/provider", "locked_by": {}}])
    );

    let prod = app
        .put_layer(
            "checkout",
            "env=prod",
            &json!({"values": {"currency": "EUR"}, "lock": ["/currency"]}),
        )
        .await;
    assert_eq!(prod.status, StatusCode::CREATED, "{}", prod.body);

    let tenant = app
        .put_layer(
            "checkout",
            "env=prod&tenant=acme",
            &json!({"values": {"currency": "USD"}}),
        )
        .await;
    assert_problem(&tenant, StatusCode::UNPROCESSABLE_ENTITY, "locked");
    let violation = &tenant.body["violations"][0];
    assert_eq!(violation["pointer"], "/currency");
    assert_eq!(violation["locked_by"], json!({"env": "prod"}));
    assert!(
        tenant.body["detail"].as_str().unwrap().contains("env=prod"),
        "{}",
        tenant.body
    );

    let patch = app
        .patch(
            "/v1/namespaces/checkout/layer?env=prod&tenant=acme",
            &json!({"values": {"payment": {"provider": "paypal"}}}),
        )
        .await;
    assert_problem(&patch, StatusCode::UNPROCESSABLE_ENTITY, "locked");
    assert_eq!(patch.body["violations"][0]["locked_by"], json!({}));

    assert_eq!(revisions(&app, "checkout", "env=prod&tenant=acme").await, 0);
    assert_eq!(revisions(&app, "checkout", "env=prod").await, 1);

    // A layer that cannot apply together with the lock holder may set it.
    let dev = app
        .put_layer(
            "checkout",
            "env=dev&tenant=acme",
            &json!({"values": {"currency": "USD"}}),
        )
        .await;
    assert_eq!(dev.status, StatusCode::CREATED, "{}", dev.body);
    // A weaker layer may still set what a stronger one locks.
    let weaker = app
        .put_layer(
            "checkout",
            "",
            &json!({"values": {"payment": {"provider": "stripe"}, "currency": "GBP"}}),
        )
        .await;
    assert_eq!(weaker.status, StatusCode::OK, "{}", weaker.body);
    // An absent `lock` keeps the current locks.
    assert_eq!(
        app.get_layer("checkout", "").await.body["locked"],
        json!(["/payment/provider"])
    );

    // Bad lock pointers are malformed input.
    for lock in [
        json!(["payment/provider"]),
        json!(["/"]),
        json!(["/a~2"]),
        json!([""]),
    ] {
        let answer = app
            .put_layer(
                "checkout",
                "env=stage",
                &json!({"values": {}, "lock": lock}),
            )
            .await;
        assert_bad(&answer, "invalid-field", "lock");
    }
    assert_eq!(revisions(&app, "checkout", "env=stage").await, 0);
}

#[tokio::test]
async fn namespace_schema_errors_answer_422() {
    let app = spawn_app().await;
    for schema in [
        json!({"type": "no-such-type"}),
        json!(5),
        json!({"minimum": "x"}),
    ] {
        let answer = app
            .put_namespace("checkout", &json!({"schema": schema}))
            .await;
        assert_problem(&answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid-schema");
        assert_eq!(answer.body["field"], "schema", "{}", answer.body);
    }
    assert_problem(
        &app.get("/v1/namespaces/checkout").await,
        StatusCode::NOT_FOUND,
        "namespace-not-found",
    );

    let schema = json!({"type": "object", "properties": {"max_items": {"type": "integer", "maximum": 1000}}});
    assert_eq!(
        app.put_namespace("checkout", &json!({"schema": schema}))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put_tenant("acme", "pro").await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put_layer("checkout", "", &json!({"values": {"max_items": 50}}))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put_layer(
            "checkout",
            "tenant=acme",
            &json!({"values": {"max_items": 900}})
        )
        .await
        .status,
        StatusCode::CREATED
    );

    let stricter =
        json!({"type": "object", "properties": {"max_items": {"type": "integer", "maximum": 100}}});
    let refused = app
        .put_namespace("checkout", &json!({"schema": stricter}))
        .await;
    assert_problem(
        &refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "schema-violation",
    );
    let violations = refused.body["violations"].as_array().unwrap();
    assert_eq!(violations.len(), 1, "{}", refused.body);
    assert_eq!(violations[0]["pointer"], "/max_items");
    assert_eq!(violations[0]["layer"], json!({"tenant": "acme"}));

    let invalid = app
        .put_namespace("checkout", &json!({"schema": {"type": 5}}))
        .await;
    assert_problem(&invalid, StatusCode::UNPROCESSABLE_ENTITY, "invalid-schema");

    let read = app.get("/v1/namespaces/checkout").await;
    assert_eq!(read.body["revision"], 1);
    assert_eq!(read.body["schema"], schema);

    let looser = json!({"type": "object", "properties": {"max_items": {"type": "integer", "minimum": 1, "maximum": 1000}}});
    let accepted = app
        .put_namespace("checkout", &json!({"schema": looser}))
        .await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.body);
    assert_eq!(accepted.revision(), 2);
}

#[tokio::test]
async fn rollback_restores_an_earlier_revision_and_refuses_unknown_ones() {
    let app = spawn_app().await;
    assert_eq!(
        app.put_namespace("checkout", &json!({})).await.status,
        StatusCode::CREATED
    );
    let rollback = "/v1/namespaces/checkout/layer/rollback";
    // Never written: nothing to roll back to.
    let empty = app.post(rollback, &json!({"revision": 1})).await;
    assert_problem(
        &empty,
        StatusCode::UNPROCESSABLE_ENTITY,
        "revision-not-found",
    );
    assert_eq!(revisions(&app, "checkout", "").await, 0);

    assert_eq!(
        app.put_layer(
            "checkout",
            "",
            &json!({"values": {"a": 1}, "lock": ["/a"], "message": "one"})
        )
        .await
        .status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put_layer("checkout", "", &json!({"values": {"a": 2}, "lock": []}))
            .await
            .status,
        StatusCode::OK
    );
    for revision in [0_u64, 2, 3, 99, u64::MAX] {
        let answer = app.post(rollback, &json!({"revision": revision})).await;
        assert_problem(
            &answer,
            StatusCode::UNPROCESSABLE_ENTITY,
            "revision-not-found",
        );
        assert_eq!(answer.body["field"], "revision");
    }
    assert_eq!(revisions(&app, "checkout", "").await, 2);

    let done = app
        .post(rollback, &json!({"revision": 1, "message": "undo"}))
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(done.revision(), 3);
    assert_eq!(done.header("etag"), Some("\"3\""));
    let now = app.get_layer("checkout", "").await;
    assert_eq!(now.body["values"], json!({"a": 1}));
    assert_eq!(now.body["locked"], json!(["/a"]));
    assert_eq!(now.body["message"], "undo");
    assert_eq!(
        now.body["change"],
        json!({"kind": "rolled-back", "to_revision": 1})
    );
    assert_eq!(now.body["position"], done.position());
}

// ---------------------------------------------------------------------------
// Success paths
// ---------------------------------------------------------------------------

#[tokio::test]
async fn layers_are_replaced_patched_cleared_and_keep_their_history() {
    let app = spawn_app().await;
    assert_eq!(
        app.put_namespace("checkout", &json!({})).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put_tenant("acme", "pro").await.status,
        StatusCode::CREATED
    );

    let original = json!({"a": 1, "b": {"c": 2, "d": 3}, "list": [1, 2], "keep": true});
    let first = app
        .put_layer(
            "checkout",
            "",
            &json!({"values": original, "message": "first"}),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(first.revision(), 1);
    assert!(first.body.get("duplicate").is_none(), "{}", first.body);
    let read = app.get_layer("checkout", "").await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.header("etag"), Some("\"1\""));
    assert_eq!(read.body["scope"], json!({}));
    assert_eq!(read.body["values"], original);
    assert_eq!(read.body["revision"], 1);
    assert_eq!(read.body["locked"], json!([]));
    assert_eq!(read.body["position"], first.position());
    assert_eq!(read.body["actor"], "admin");
    assert_eq!(read.body["message"], "first");
    assert_eq!(read.body["change"], json!({"kind": "replaced"}));
    assert!(read.body["at"].is_string());

    // Merge patch: null removes, objects merge, arrays and scalars replace.
    let patched = app
        .patch(
            "/v1/namespaces/checkout/layer",
            &json!({"values": {"a": null, "b": {"c": 5, "d": null, "e": 6}, "list": [3], "new": "x", "gone": null}, "message": "patch"}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.revision(), 2);
    let read = app.get_layer("checkout", "").await;
    assert_eq!(
        read.body["values"],
        json!({"b": {"c": 5, "e": 6}, "list": [3], "new": "x", "keep": true})
    );
    assert_eq!(read.body["change"], json!({"kind": "patched"}));

    // PATCH creates a layer never written.
    let created = app
        .patch(
            "/v1/namespaces/checkout/layer?env=prod",
            &json!({"values": {"x": 1, "y": null}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(
        app.get_layer("checkout", "env=prod").await.body["values"],
        json!({"x": 1})
    );

    // A null in a replaced layer removes an inherited key from the resolution.
    let prod = app
        .put_layer(
            "checkout",
            "env=prod",
            &json!({"values": {"x": 2, "keep": null}}),
        )
        .await;
    assert_eq!(prod.status, StatusCode::OK, "{}", prod.body);
    assert_eq!(
        app.resolved("checkout", "env=prod").await.body["values"],
        json!({"b": {"c": 5, "e": 6}, "list": [3], "new": "x", "x": 2})
    );

    // DELETE: a new, empty revision; history keeps the old ones.
    let cleared = app
        .delete("/v1/namespaces/checkout/layer?message=clear")
        .await;
    assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.body);
    assert_eq!(cleared.revision(), 3);
    let read = app.get_layer("checkout", "").await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.body["values"], json!({}));
    assert_eq!(read.body["revision"], 3);
    assert_eq!(read.body["locked"], json!([]));
    assert_eq!(read.body["message"], "clear");
    assert_eq!(read.body["change"], json!({"kind": "cleared"}));
    assert_eq!(app.resolved("checkout", "").await.body["values"], json!({}));

    let history = app.history("checkout", "").await;
    assert_eq!(history.status, StatusCode::OK, "{}", history.body);
    assert_eq!(history.body["scope"], json!({}));
    let revisions = history.body["revisions"].as_array().unwrap();
    assert_eq!(revisions.len(), 3);
    let numbers: Vec<u64> = revisions
        .iter()
        .map(|r| r["revision"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, vec![1, 2, 3]);
    let positions: Vec<u64> = revisions
        .iter()
        .map(|r| r["position"].as_u64().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    assert_eq!(revisions[0]["values"], original);
    assert_eq!(revisions[0]["message"], "first");
    assert_eq!(revisions[1]["message"], "patch");
    assert_eq!(revisions[2]["message"], "clear");
    for r in revisions {
        assert_eq!(r["actor"], "admin");
        assert!(r["at"].is_string());
    }
    // The past still reads the old revisions.
    let past = app
        .get_layer("checkout", &format!("position={}", first.position()))
        .await;
    assert_eq!(past.body["values"], original);

    // A scope on every dimension, named in any order.
    let full = app
        .put_layer(
            "checkout",
            "env=prod&service=api&tenant=acme&edition=pro",
            &json!({"values": {"z": 1}}),
        )
        .await;
    assert_eq!(full.status, StatusCode::CREATED, "{}", full.body);
    let read = app
        .get_layer("checkout", "edition=pro&service=api&tenant=acme&env=prod")
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(
        read.body["scope"],
        json!({"env": "prod", "service": "api", "tenant": "acme", "edition": "pro"})
    );
    assert_eq!(read.body["values"], json!({"z": 1}));
}

#[tokio::test]
async fn resolved_explains_sources_answers_304_and_resolves_the_past() {
    let app = spawn_app().await;
    assert_eq!(
        app.put_namespace("checkout", &json!({"schema": checkout_schema()}))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put_namespace("other", &json!({})).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put_tenant("acme", "enterprise").await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put_tenant("globex", "standard").await.status,
        StatusCode::CREATED
    );
    let g = app
        .put_layer("checkout", "", &json!({"values": {"max_items": 10}}))
        .await;
    assert_eq!(g.status, StatusCode::CREATED);
    for (scope, n) in [("edition=enterprise", 500), ("edition=pro", 100)] {
        assert_eq!(
            app.put_layer("checkout", scope, &json!({"values": {"max_items": n}}))
                .await
                .status,
            StatusCode::CREATED
        );
    }
    let t = app
        .put_layer(
            "checkout",
            "env=prod&tenant=acme",
            &json!({"values": {"currency": "EUR"}}),
        )
        .await;
    assert_eq!(t.status, StatusCode::CREATED);

    let plain = app.resolved("checkout", "").await;
    assert_eq!(plain.status, StatusCode::OK, "{}", plain.body);
    assert_eq!(
        plain.body["values"],
        json!({"currency": "USD", "max_items": 10})
    );
    assert!(plain.position() >= t.position());
    assert!(plain.body.get("sources").is_none());
    let plain_etag = plain.header("etag").expect("etag").to_owned();

    let explained = app
        .resolved("checkout", "env=prod&tenant=acme&explain=true")
        .await;
    assert_eq!(explained.status, StatusCode::OK, "{}", explained.body);
    assert_eq!(
        explained.body["values"],
        json!({"currency": "EUR", "max_items": 500})
    );
    assert_eq!(
        explained.body["sources"]["/max_items"],
        json!({"origin": "layer", "scope": {"edition": "enterprise"}, "revision": 1})
    );
    assert_eq!(
        explained.body["sources"]["/currency"],
        json!({"origin": "layer", "scope": {"env": "prod", "tenant": "acme"}, "revision": 1})
    );
    let defaults = app.resolved("checkout", "explain=true").await;
    assert_eq!(
        defaults.body["sources"]["/currency"]["origin"], "schema-default",
        "{}",
        defaults.body
    );
    assert_ne!(defaults.header("etag"), Some(plain_etag.as_str()));

    // An explicit edition overrides the tenant's.
    let what_if = app
        .resolved("checkout", "env=prod&tenant=acme&edition=pro")
        .await;
    assert_eq!(
        what_if.body["values"],
        json!({"currency": "EUR", "max_items": 100})
    );
    let no_layer = app
        .resolved("checkout", "tenant=acme&edition=standard")
        .await;
    assert_eq!(no_layer.body["values"]["max_items"], 10);
    assert_eq!(
        app.resolved("checkout", "tenant=globex").await.body["values"]["max_items"],
        10
    );
    assert_eq!(
        app.resolved("checkout", "edition=enterprise").await.body["values"]["max_items"],
        500
    );

    // If-None-Match.
    for value in [
        plain_etag.clone(),
        format!("W/{plain_etag}"),
        format!("\"nope\", {plain_etag}"),
        "*".to_owned(),
    ] {
        let answer = if_none_match(&app, &value).await;
        assert_eq!(
            answer.status,
            StatusCode::NOT_MODIFIED,
            "{value}: {}",
            answer.body
        );
        assert_eq!(answer.body, Value::Null);
        assert_eq!(answer.header("etag"), Some(plain_etag.as_str()));
    }
    let other = if_none_match(&app, "\"nope\"").await;
    assert_eq!(other.status, StatusCode::OK);
    // A change elsewhere keeps the ETag; a change here moves it.
    assert_eq!(
        app.put_layer("other", "", &json!({"values": {"o": 1}}))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        if_none_match(&app, &plain_etag).await.status,
        StatusCode::NOT_MODIFIED
    );
    let g2 = app
        .put_layer("checkout", "", &json!({"values": {"max_items": 20}}))
        .await;
    assert_eq!(g2.status, StatusCode::OK);
    let changed = if_none_match(&app, &plain_etag).await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_eq!(changed.body["values"]["max_items"], 20);
    assert_ne!(changed.header("etag"), Some(plain_etag.as_str()));

    // The past, by position and by time.
    let past = app
        .resolved("checkout", &format!("position={}", g.position()))
        .await;
    assert_eq!(past.status, StatusCode::OK, "{}", past.body);
    assert_eq!(
        past.body["values"],
        json!({"currency": "USD", "max_items": 10})
    );
    assert_eq!(past.position(), g.position());
    let history = app.history("checkout", "").await;
    let at = history.body["revisions"][0]["at"]
        .as_str()
        .unwrap()
        .to_owned();
    let by_time = app.resolved("checkout", &format!("at={}", enc(&at))).await;
    assert_eq!(by_time.status, StatusCode::OK, "{}", by_time.body);
    assert_eq!(by_time.body["values"]["max_items"], 10);
    let future = app.resolved("checkout", "at=9999-12-31T23:59:59Z").await;
    assert_eq!(future.status, StatusCode::OK, "{}", future.body);
    assert_eq!(future.body["values"]["max_items"], 20);
    let ahead = app
        .resolved("checkout", &format!("position={}", g2.position() + 1000))
        .await;
    assert_eq!(ahead.status, StatusCode::OK, "{}", ahead.body);
    assert_eq!(ahead.body["values"]["max_items"], 20);
    assert!(ahead.position() >= g2.position());
}

#[tokio::test]
async fn admin_rebuild_answers_202_and_the_app_becomes_ready_with_the_same_answers() {
    let app = spawn_app().await;
    assert_eq!(
        app.put_namespace("checkout", &json!({"schema": checkout_schema()}))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put_tenant("acme", "enterprise").await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put_layer("checkout", "", &json!({"values": {"max_items": 10}}))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put_layer("checkout", "", &json!({"values": {"max_items": 11}}))
            .await
            .status,
        StatusCode::OK
    );
    let last = app
        .put_layer(
            "checkout",
            "tenant=acme",
            &json!({"values": {"currency": "EUR"}, "lock": ["/currency"]}),
        )
        .await;
    assert_eq!(last.status, StatusCode::CREATED);

    let status = app.get("/v1/admin/projections").await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.body);
    assert_eq!(status.body["caught_up"], true);
    assert_eq!(status.body["rebuilding"], false);
    assert!(status.body["applied"].as_u64().unwrap() >= last.position());
    assert!(status.body["target"].is_u64());

    let query = "tenant=acme&explain=true";
    let before = app.resolved("checkout", query).await;
    let history = app.history("checkout", "").await;
    let namespaces = app.get("/v1/namespaces").await;
    let tenants = app.get("/v1/tenants").await;
    let layer = app.get_layer("checkout", "tenant=acme").await;

    let rebuild = app
        .send(app.request(Method::POST, "/v1/admin/projections/rebuild"))
        .await;
    assert_eq!(rebuild.status, StatusCode::ACCEPTED, "{}", rebuild.body);
    assert_eq!(rebuild.body["rebuilding"], true);
    assert!(rebuild.body["target_position"].as_u64().unwrap() >= last.position());
    // The server stays ready during a rebuild: wait for the switch.
    for _ in 0..1200 {
        if app.get("/v1/admin/projections").await.body["rebuilding"] == false {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let status = app.get("/v1/admin/projections").await;
    assert_eq!(status.body["caught_up"], true);
    assert_eq!(status.body["rebuilding"], false);
    assert!(
        status.body["applied"].as_u64().unwrap()
            >= rebuild.body["target_position"].as_u64().unwrap()
    );
    let after = app.resolved("checkout", query).await;
    assert_eq!(after.status, StatusCode::OK, "{}", after.body);
    assert_eq!(after.body, before.body);
    assert_eq!(after.header("etag"), before.header("etag"));
    assert_eq!(app.history("checkout", "").await.body, history.body);
    assert_eq!(app.get("/v1/namespaces").await.body, namespaces.body);
    assert_eq!(app.get("/v1/tenants").await.body, tenants.body);
    assert_eq!(
        app.get_layer("checkout", "tenant=acme").await.body,
        layer.body
    );
}

// ---------------------------------------------------------------------------
// Robustness
// ---------------------------------------------------------------------------

#[tokio::test]
async fn hostile_inputs_never_answer_5xx() {
    let app = spawn_app().await;
    assert_eq!(
        app.put_namespace("checkout", &json!({"schema": checkout_schema()}))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put_tenant("acme", "pro").await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put_layer("checkout", "", &json!({"values": {"max_items": 10}}))
            .await
            .status,
        StatusCode::CREATED
    );
    let many: serde_json::Map<String, Value> =
        (0..2000).map(|i| (format!("k{i}"), json!(i))).collect();
    let odd_keys =
        json!({"values": {"a/b": 1, "c~d": 2, "": 3, "ü": {"ß": 4}}, "lock": ["/a~1b", "/c~0d"]});
    let requests: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::GET,
            "/v1/namespaces/checkout/resolved?position=9223372036854775807".into(),
            None,
        ),
        (
            Method::GET,
            "/v1/namespaces/checkout/resolved?position=18446744073709551615".into(),
            None,
        ),
        (
            Method::GET,
            "/v1/namespaces/checkout/layer?position=18446744073709551615".into(),
            None,
        ),
        (
            Method::GET,
            "/v1/namespaces/checkout/resolved?position=0".into(),
            None,
        ),
        (
            Method::GET,
            "/v1/namespaces/checkout/resolved?at=0000-01-01T00:00:00Z".into(),
            None,
        ),
        (
            Method::GET,
            "/v1/namespaces/checkout/resolved?at=2024-01-01T00:00:00%2B14:00".into(),
            None,
        ),
        (
            Method::GET,
            "/v1/namespaces/checkout/layer?at=9999-12-31T23:59:59.999999999Z".into(),
            None,
        ),
        (
            Method::PUT,
            "/v1/namespaces/checkout/layer?env=e1".into(),
            Some(json!({"values": many})),
        ),
        (
            Method::PUT,
            "/v1/namespaces/checkout/layer?env=e2".into(),
            Some(odd_keys),
        ),
        (
            Method::PUT,
            "/v1/namespaces/checkout/layer?env=e3".into(),
            Some(json!({"values": {"max_items": 1e300}})),
        ),
        (
            Method::PUT,
            "/v1/namespaces/checkout/layer?env=e4".into(),
            Some(json!({"values": {"max_items": -9_223_372_036_854_775_807_i64}})),
        ),
        (
            Method::PUT,
            "/v1/namespaces/checkout/layer?env=e5".into(),
            Some(json!({"values": {"currency": "\u{0000}\u{ffff}"}, "message": "\u{0000}"})),
        ),
        (
            Method::POST,
            "/v1/namespaces/checkout/layer/rollback".into(),
            Some(json!({"revision": u64::MAX})),
        ),
        (
            Method::PUT,
            "/v1/namespaces/s".into(),
            Some(json!({"schema": {"$ref": "http://example.invalid/schema.json"}})),
        ),
        (
            Method::PUT,
            "/v1/namespaces/s2".into(),
            Some(json!({"schema": {"$ref": "#/$defs/nope"}})),
        ),
        (
            Method::PUT,
            "/v1/namespaces/s3".into(),
            Some(json!({"schema": {"pattern": "("}})),
        ),
        (
            Method::PUT,
            "/v1/namespaces/s4".into(),
            Some(json!({"schema": true})),
        ),
        (
            Method::PUT,
            "/v1/tenants/t1".into(),
            Some(json!({"edition": "pro", "name": "\u{0000}"})),
        ),
    ];
    for (method, path, body) in requests {
        let answer = send_with(
            &app,
            method.clone(),
            &path,
            &[("if-match", "\"18446744073709551615\"")],
            body.as_ref(),
        )
        .await;
        assert_sane(&answer, &format!("{method} {path} (If-Match u64::MAX)"));
        let answer = send_with(&app, method.clone(), &path, &[], body.as_ref()).await;
        assert_sane(&answer, &format!("{method} {path}"));
    }
}

#[tokio::test]
async fn a_position_beyond_i64_resolves_like_any_position_past_the_head() {
    let app = spawn_app().await;
    assert_eq!(
        app.put_namespace("checkout", &json!({})).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put_layer("checkout", "", &json!({"values": {"a": 1}}))
            .await
            .status,
        StatusCode::CREATED
    );
    for position in ["9223372036854775808", "18446744073709551615"] {
        let resolved = app
            .resolved("checkout", &format!("position={position}"))
            .await;
        assert!(
            resolved.status == StatusCode::OK && resolved.body["values"] == json!({"a": 1})
                || resolved.status == StatusCode::BAD_REQUEST,
            "resolved position={position}: {} {}",
            resolved.status,
            resolved.body
        );
        let layer = app
            .get_layer("checkout", &format!("position={position}"))
            .await;
        assert!(
            layer.status == StatusCode::OK && layer.body["values"] == json!({"a": 1})
                || layer.status == StatusCode::BAD_REQUEST,
            "layer position={position}: {} {}",
            layer.status,
            layer.body
        );
    }
}

#[tokio::test]
async fn a_wrong_method_answers_405_as_a_problem() {
    let app = spawn_app().await;
    assert_eq!(
        app.put_namespace("checkout", &json!({})).await.status,
        StatusCode::CREATED
    );
    for (method, path) in [
        (Method::DELETE, "/v1/namespaces/checkout"),
        (Method::POST, "/v1/namespaces"),
        (Method::POST, "/v1/namespaces/checkout/layer"),
        (Method::PUT, "/v1/namespaces/checkout/resolved"),
        (Method::GET, "/v1/namespaces/checkout/layer/rollback"),
        (Method::DELETE, "/v1/tenants/acme"),
        (Method::GET, "/v1/admin/projections/rebuild"),
    ] {
        let answer = send_with(&app, method.clone(), path, &[], Some(&json!({}))).await;
        assert_eq!(
            answer.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {}",
            answer.body
        );
        assert!(
            answer.header("allow").is_some(),
            "{method} {path} without Allow"
        );
        assert_problem(&answer, StatusCode::METHOD_NOT_ALLOWED, answer.code());
    }
    assert_eq!(app.get("/v1/namespaces/checkout").await.body["revision"], 1);
}

#[tokio::test]
async fn json_arrays_are_refused_where_an_object_is_expected() {
    let app = spawn_app().await;
    assert_eq!(
        app.put_namespace("checkout", &json!({"description": "d"}))
            .await
            .status,
        StatusCode::CREATED
    );
    let cases: [(Method, &str, &str); 5] = [
        (
            Method::PUT,
            "/v1/namespaces/checkout/layer",
            r#"[{"a": 1}, "via an array"]"#,
        ),
        (
            Method::PATCH,
            "/v1/namespaces/checkout/layer",
            r#"[{"a": 1}, "via an array"]"#,
        ),
        (
            Method::POST,
            "/v1/namespaces/checkout/layer/rollback",
            "[1]",
        ),
        (
            Method::PUT,
            "/v1/namespaces/checkout",
            r#"["via an array"]"#,
        ),
        (Method::PUT, "/v1/tenants/acme", r#"["pro"]"#),
    ];
    for (method, path, body) in cases {
        let answer = send_raw(&app, method.clone(), path, Some("application/json"), body).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{method} {path} {body}: {}",
            answer.body
        );
        assert_bad(&answer, "invalid-field", "body");
    }
    assert_eq!(revisions(&app, "checkout", "").await, 0);
    assert_eq!(
        app.get("/v1/namespaces/checkout").await.body["description"],
        "d"
    );
    assert_eq!(app.get("/v1/tenants").await.body["tenants"], json!([]));
}

#[tokio::test]
async fn json_syntax_errors_name_the_body() {
    let app = spawn_app().await;
    assert_eq!(
        app.put_namespace("checkout", &json!({})).await.status,
        StatusCode::CREATED
    );
    for body in ["{", "{'values': {}}", "{\"values\": }", "nul"] {
        let answer = send_raw(
            &app,
            Method::PUT,
            "/v1/namespaces/checkout/layer",
            Some("application/json"),
            body,
        )
        .await;
        assert_bad(&answer, "malformed-json", "body");
    }
}

#[tokio::test]
async fn an_unknown_v1_route_answers_a_problem_with_or_without_a_token() {
    let app = spawn_app().await;
    let with = app.get("/v1/no-such-route").await;
    assert_problem(&with, StatusCode::NOT_FOUND, "no-such-route");
    // Without a token the answer is the same 404 (the fallback is not behind
    // the bearer check); it reveals nothing but that the route does not exist.
    let without = app
        .send(app.client.get(format!("{}/v1/no-such-route", app.address)))
        .await;
    assert!(
        without.status == StatusCode::NOT_FOUND || without.status == StatusCode::UNAUTHORIZED,
        "{} {}",
        without.status,
        without.body
    );
    assert!(
        without
            .header("content-type")
            .unwrap_or_default()
            .starts_with("application/problem+json")
    );
}
