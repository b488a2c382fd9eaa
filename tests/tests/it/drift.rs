//! Drift and usage end to end (ADR 24, 25): real SDK clients report over
//! NATS and over HTTP; `GET /v1/drift` judges each against the latest
//! position of what it follows; `GET /v1/usage` lists the keys read and the
//! keys never read.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use ecs_client::{Client, ClientSettings, Context};
use ecs_tests::app::{Answer, TestApp, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

async fn seed(app: &TestApp) {
    let schema = json!({"type": "object", "properties": {
        "limit": {"type": "integer", "default": 10},
        "mode": {"type": "string", "default": "safe"},
        "retired": {"type": "boolean"}
    }});
    assert!(
        app.put_namespace("checkout", &json!({"schema": schema}))
            .await
            .status
            .is_success()
    );
    assert!(app.put_tenant("acme", "pro").await.status.is_success());
    let answer = app
        .put_layer("checkout", "", &json!({"values": {"limit": 20}}))
        .await;
    assert!(answer.status.is_success(), "{}", answer.body);
}

async fn token(app: &TestApp, body: Value) -> String {
    let answer = app.post("/v1/tokens", &body).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    answer.body["token"].as_str().unwrap().to_owned()
}

async fn as_(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Answer {
    let mut request = app
        .client
        .request(method, format!("{}{path}", app.address))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    app.send(request).await
}

/// A client of `service` in prod, reporting every second as `instance`.
fn reporting(settings: ClientSettings, service: &str, instance: &str) -> ClientSettings {
    settings
        .reporting_as(service, "prod")
        .unwrap()
        .with_report_interval(Duration::from_secs(1))
        .with_instance_id(instance)
        .unwrap()
}

/// Polls `GET /v1/drift` until `done` holds of the instances it lists.
async fn drift_until(app: &TestApp, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let mut last = Vec::new();
    let reached = tokio::time::timeout(WAIT, async {
        loop {
            let answer = app.get("/v1/drift").await;
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
            last = answer.body["instances"].as_array().unwrap().clone();
            if done(&last) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(reached.is_ok(), "{what}: {last:#?}");
    last
}

fn instance<'a>(instances: &'a [Value], id: &str) -> Option<&'a Value> {
    instances.iter().find(|i| i["instance"] == id)
}

#[tokio::test]
async fn a_stopped_client_shows_as_behind_and_a_live_one_as_current() {
    let app = spawn_app().await;
    seed(&app).await;
    let base = || ClientSettings::new(app.nats.url(), ["checkout"]).unwrap();
    let live = Client::connect(reporting(base(), "storefront", "web-live"))
        .await
        .unwrap();
    let stopped = Client::connect(reporting(
        base().for_tenant("acme").unwrap(),
        "worker",
        "worker-1",
    ))
    .await
    .unwrap();
    let _watch = live.watch("checkout", &Context::default()).unwrap();

    let before = drift_until(&app, "both clients report as current", |all| {
        ["web-live", "worker-1"].iter().all(|id| {
            instance(all, id).is_some_and(|i| i["status"] == "current" && i["stale"] == false)
        })
    })
    .await;
    let web = instance(&before, "web-live").unwrap();
    assert_eq!(web["service"], "storefront");
    assert_eq!(web["env"], "prod");
    assert_eq!(web["via"], "nats");
    assert_eq!(web["subscribers"], 1);
    assert!(web["started_at"].is_string(), "{web}");
    assert_eq!(web["followed"][0]["namespace"], "checkout");
    assert_eq!(
        web["followed"][0]["applied_position"],
        web["followed"][0]["latest_position"]
    );
    let worker = instance(&before, "worker-1").unwrap();
    assert_eq!(worker["followed"][0]["tenants"], json!(["acme"]));

    // The worker stops (its last report says so); a change follows.
    stopped.shutdown().await;
    let answer = app
        .put_layer("checkout", "tenant=acme", &json!({"values": {"limit": 30}}))
        .await;
    assert!(answer.status.is_success(), "{}", answer.body);
    let position = answer.position();

    let after = drift_until(
        &app,
        "the stopped client behind, the live one current",
        |all| {
            let live_current = instance(all, "web-live").is_some_and(|i| {
                i["status"] == "current" && i["followed"][0]["applied_position"] == position
            });
            let stopped_behind = instance(all, "worker-1")
                .is_some_and(|i| i["status"] == "behind" && i["stale"] == true);
            live_current && stopped_behind
        },
    )
    .await;
    let worker = instance(&after, "worker-1").unwrap();
    assert_eq!(worker["followed"][0]["latest_position"], position);
    assert!(worker["followed"][0]["applied_position"].as_u64().unwrap() < position);
    assert!(worker["behind_since"].is_string(), "{worker}");
    assert_eq!(worker["stopping"], true);

    // A tenant-bound role sees only the instance that follows its tenant,
    // and a service its own instances.
    let acme_admin = token(
        &app,
        json!({"name": "acme-admin", "role": "tenant-admin", "tenant": "acme"}),
    )
    .await;
    let seen = as_(&app, &acme_admin, Method::GET, "/v1/drift", None).await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    let ids: Vec<&str> = seen.body["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["instance"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["worker-1"]);
    let web_token = token(
        &app,
        json!({"name": "storefront", "role": "service", "env": "prod", "service": "storefront"}),
    )
    .await;
    let seen = as_(&app, &web_token, Method::GET, "/v1/drift", None).await;
    let ids: Vec<&str> = seen.body["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["instance"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["web-live"]);

    // The live client measured the change's propagation and reported it.
    let mut scraped = String::new();
    let measured = tokio::time::timeout(WAIT, async {
        loop {
            scraped = app
                .request(Method::GET, "/metrics")
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            if scraped
                .lines()
                .any(|l| l.starts_with("ecs_propagation_seconds_count{service=\"storefront\"}"))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(measured.is_ok(), "{scraped}");
    live.shutdown().await;
}

#[tokio::test]
async fn an_http_client_reports_through_the_api_and_usage_shows_read_and_never_read_keys() {
    let app = spawn_app().await;
    seed(&app).await;
    let web = token(
        &app,
        json!({"name": "web", "role": "service", "env": "prod", "service": "web"}),
    )
    .await;
    let settings = reporting(
        ClientSettings::over_http(&app.address, &web, ["checkout"]).unwrap(),
        "web",
        "web-http",
    );
    let client = Client::connect(settings).await.unwrap();
    let context = Context::from_pairs([("env", "prod"), ("service", "web")]).unwrap();
    for _ in 0..5 {
        let limit: u64 = client.get_field("checkout", &context, "/limit").unwrap();
        assert_eq!(limit, 20);
    }

    let all = drift_until(&app, "the HTTP client reports", |all| {
        instance(all, "web-http").is_some_and(|i| i["status"] == "current")
    })
    .await;
    assert_eq!(instance(&all, "web-http").unwrap()["via"], "http");

    let mut usage = Value::Null;
    let counted = tokio::time::timeout(WAIT, async {
        loop {
            let answer = app.get("/v1/usage?namespace=checkout&window=1h").await;
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
            usage = answer.body;
            if usage["read"][0]["reads"].as_u64().unwrap_or(0) >= 5 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(counted.is_ok(), "{usage:#}");
    assert_eq!(usage["read"][0]["key"], "limit");
    assert_eq!(
        usage["read"][0]["read_by"],
        json!([{"env": "prod", "service": "web", "reads": 5}])
    );
    assert_eq!(usage["read"].as_array().unwrap().len(), 1, "{usage:#}");
    assert_eq!(usage["never_read"], json!(["mode", "retired"]));

    // An instance that goes silent (killed: no last report) turns stale
    // after 3 of its intervals.
    let silent = json!({"v": 1, "service": "web", "env": "prod", "instance": "web-killed",
        "sdk_version": "0.1.0", "interval_secs": 1,
        "followed": [{"namespace": "checkout", "applied_position": 1}]});
    let sent = as_(&app, &web, Method::POST, "/v1/drift/reports", Some(silent)).await;
    assert_eq!(sent.status, StatusCode::NO_CONTENT, "{}", sent.body);
    let seen = drift_until(&app, "the silent instance reported", |all| {
        instance(all, "web-killed").is_some()
    })
    .await;
    assert_eq!(instance(&seen, "web-killed").unwrap()["stale"], false);
    drift_until(&app, "the silent instance stale", |all| {
        instance(all, "web-killed").is_some_and(|i| i["stale"] == true && i["stopping"] == false)
    })
    .await;

    // Refusals: another service's report, a malformed one, a bad window.
    let report = json!({"v": 1, "service": "api", "env": "prod", "instance": "x",
        "sdk_version": "1", "interval_secs": 15, "followed": []});
    let forged = as_(
        &app,
        &web,
        Method::POST,
        "/v1/drift/reports",
        Some(report.clone()),
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.body);
    let mut bad = report.clone();
    bad["service"] = json!("web");
    bad["interval_secs"] = json!(0);
    let bad = as_(&app, &web, Method::POST, "/v1/drift/reports", Some(bad)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    assert_eq!(bad.body["field"], "interval_secs");
    let window = app.get("/v1/usage?namespace=checkout&window=5y").await;
    assert_eq!(window.status, StatusCode::BAD_REQUEST, "{}", window.body);
    assert_eq!(window.body["field"], "window");
    let unknown = app.get("/v1/usage?namespace=nope").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.body);
    client.shutdown().await;
}
