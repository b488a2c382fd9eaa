//! Reads that return configuration values: sensitive values stay masked on
//! every one of them for every role that may not read them; the HTTP feed
//! loses no change written while a reader follows it; a service key sees no
//! tenant; a layer's history comes a page at a time.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ecs_tests::app::{Answer, TestApp, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn token(app: &TestApp, body: Value) -> String {
    let answer = app.post("/v1/tokens", &body).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    answer.body["token"].as_str().unwrap().to_owned()
}

async fn get_as(app: &TestApp, token: &str, path: &str) -> Answer {
    app.send(
        app.client
            .request(Method::GET, format!("{}{path}", app.address))
            .bearer_auth(token),
    )
    .await
}

/// The body of a server-sent events answer as read within `within`, or up
/// to the first occurrence of `until` (an event name line).
async fn read_events(
    app: &TestApp,
    token: &str,
    path: &str,
    until: &str,
    within: Duration,
) -> (StatusCode, String) {
    let mut response = app
        .client
        .get(format!("{}{path}", app.address))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let deadline = Instant::now() + within;
    let mut text = String::new();
    while !text.contains(until) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, response.chunk()).await {
            Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            _ => break,
        }
    }
    (status, text)
}

/// A schema that marks values sensitive through every keyword that can
/// reach one: `properties`, `items`, `additionalProperties`,
/// `patternProperties`, `$ref`/`$defs`, `allOf`, `anyOf` and `oneOf`; and a
/// sensitive `default`.
fn schema(secret: &dyn Fn(&str) -> String) -> Value {
    json!({
        "type": "object",
        "$defs": {"credential": {"type": "string", "writeOnly": true, "default": secret("default")}},
        "properties": {
            "db": {"type": "object", "properties": {
                "password": {"type": "string", "writeOnly": true},
                "user": {"type": "string"}
            }},
            "keys": {"type": "array", "items": {"type": "string", "x-sensitive": true}},
            "tokens": {"type": "object", "additionalProperties": {"type": "string", "writeOnly": true}},
            "env": {"type": "object",
                    "patternProperties": {"_SECRET$": {"type": "string", "writeOnly": true}},
                    "additionalProperties": {"type": "string"}},
            "signing": {"$ref": "#/$defs/credential"},
            "smtp": {"allOf": [{"type": "object", "properties": {"password": {"writeOnly": true}}}]},
            "oauth": {"anyOf": [{"type": "object", "properties": {"client_secret": {"writeOnly": true}}}]},
            "webhook": {"oneOf": [{"type": "object", "properties": {"token": {"writeOnly": true}}}]},
            "plain": {"type": "string"}
        }
    })
}

/// Global layer values with a secret under each keyword of [`schema`].
fn global_values(secret: &dyn Fn(&str) -> String) -> Value {
    json!({
        "db": {"password": secret("db"), "user": "app"},
        "keys": [secret("key0"), secret("key1")],
        "tokens": {"github": secret("github")},
        "env": {"DB_SECRET": secret("env"), "HOME": "/home/app"},
        "signing": secret("signing"),
        "smtp": {"password": secret("smtp")},
        "oauth": {"client_secret": secret("oauth")},
        "webhook": {"token": secret("webhook")},
        "plain": "visible"
    })
}

/// One read that returns values: which route (as the OpenAPI document names
/// it), the request, and how to read it.
struct Read {
    route: &'static str,
    path: String,
    /// Server-sent events: read up to this event (or a time limit).
    events_until: Option<&'static str>,
}

impl Read {
    fn json(route: &'static str, path: impl Into<String>) -> Read {
        Read {
            route,
            path: path.into(),
            events_until: None,
        }
    }

    fn events(route: &'static str, path: impl Into<String>, until: &'static str) -> Read {
        Read {
            route,
            path: path.into(),
            events_until: Some(until),
        }
    }

    async fn body(&self, app: &TestApp, token: &str) -> (StatusCode, String) {
        match self.events_until {
            Some(until) => read_events(app, token, &self.path, until, Duration::from_secs(3)).await,
            None => {
                let answer = get_as(app, token, &self.path).await;
                let text = match &answer.body {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                (answer.status, text)
            }
        }
    }
}

/// GET routes that return no configuration values (names, ids, roles,
/// statuses, positions); every other GET route must be in the matrix below.
const WITHOUT_VALUES: [&str; 16] = [
    "/healthz",
    "/readyz",
    "/metrics",
    "/v1/openapi.json",
    "/v1/admin/projections",
    "/v1/tenants",
    "/v1/tenants/{tenant}",
    "/v1/tokens",
    "/v1/whoami",
    "/v1/namespaces/{ns}/locks",
    // Rollout plans: a flag's key, its variants' names, percentages and times.
    "/v1/namespaces/{ns}/rollouts",
    "/v1/namespaces/{ns}/rollouts/{id}",
    // The OIDC issuer, client id and scopes Studio signs in with.
    "/v1/auth/config",
    // OFREP change events: "refetch" notices with a time, never an evaluation.
    "/ofrep/v1/events",
    // SDK instances and their positions; keys read and never read (names only).
    "/v1/drift",
    "/v1/usage",
];

#[tokio::test]
async fn every_read_that_returns_values_masks_sensitive_ones_for_every_role_that_may_not_read_them()
{
    let app = spawn_app().await;
    let nonce = format!("{:x}", rand_nonce());
    let marker = format!("leak{nonce}");
    let secret = |what: &str| format!("{marker}-{what}");
    // The approval policy comes after the global and tenant layers: it
    // covers every layer that reaches prod, and those two do.
    let namespace = json!({"schema": schema(&secret)});
    assert_eq!(
        app.put_namespace("app", &namespace).await.status,
        StatusCode::CREATED
    );
    assert!(app.put_tenant("acme", "pro").await.status.is_success());
    let global = app
        .put_layer("app", "", &json!({"values": global_values(&secret)}))
        .await;
    assert_eq!(global.status, StatusCode::CREATED, "{}", global.body);
    let tenant = app
        .put_layer(
            "app",
            "tenant=acme",
            &json!({"values": {"db": {"password": secret("acme")}, "keys": [secret("acme-key")]}}),
        )
        .await;
    assert_eq!(tenant.status, StatusCode::CREATED, "{}", tenant.body);
    let governed = json!({"schema": schema(&secret), "approval": {"scopes": [{"env": "prod"}]}});
    let policy = app.put_namespace("app", &governed).await;
    assert!(policy.status.is_success(), "{}", policy.body);
    // Writes to prod need approval: a replacement and a patch, left open.
    let replace = app
        .put_layer(
            "app",
            "env=prod",
            &json!({"values": {"tokens": {"slack": secret("proposed")}, "plain": "p"}}),
        )
        .await;
    assert_eq!(replace.status, StatusCode::ACCEPTED, "{}", replace.body);
    let replace_id = replace.body["change_request"].as_str().unwrap().to_owned();
    let patch = app
        .patch(
            "/v1/namespaces/app/layer?env=prod&tenant=acme",
            &json!({"values": {"env": {"API_SECRET": secret("patched")}}}),
        )
        .await;
    assert_eq!(patch.status, StatusCode::ACCEPTED, "{}", patch.body);
    let patch_id = patch.body["change_request"].as_str().unwrap().to_owned();

    let p = global.position();
    let reads = vec![
        Read::json("/v1/namespaces", "/v1/namespaces"),
        Read::json("/v1/namespaces/{ns}", "/v1/namespaces/app"),
        Read::json("/v1/namespaces/{ns}/layer", "/v1/namespaces/app/layer"),
        Read::json(
            "/v1/namespaces/{ns}/layer",
            "/v1/namespaces/app/layer?tenant=acme",
        ),
        Read::json(
            "/v1/namespaces/{ns}/layer",
            format!("/v1/namespaces/app/layer?position={p}"),
        ),
        Read::json(
            "/v1/namespaces/{ns}/layer/history",
            "/v1/namespaces/app/layer/history",
        ),
        Read::json(
            "/v1/namespaces/{ns}/layer/history",
            "/v1/namespaces/app/layer/history?tenant=acme&limit=1",
        ),
        Read::json(
            "/v1/namespaces/{ns}/resolved",
            "/v1/namespaces/app/resolved?explain=true",
        ),
        Read::json(
            "/v1/namespaces/{ns}/resolved",
            "/v1/namespaces/app/resolved?tenant=acme&explain=true",
        ),
        Read::json(
            "/v1/namespaces/{ns}/resolved",
            format!("/v1/namespaces/app/resolved?tenant=acme&position={p}"),
        ),
        Read::events(
            "/v1/namespaces/{ns}/watch",
            "/v1/namespaces/app/watch?tenant=acme",
            "\n\n",
        ),
        Read::events("/v1/feed", "/v1/feed?namespaces=app", "event: synced"),
        Read::json("/v1/change-requests", "/v1/change-requests"),
        Read::json(
            "/v1/change-requests",
            "/v1/change-requests?status=open&namespace=app",
        ),
        Read::json(
            "/v1/change-requests/{id}",
            format!("/v1/change-requests/{replace_id}"),
        ),
        Read::json(
            "/v1/change-requests/{id}",
            format!("/v1/change-requests/{patch_id}"),
        ),
        Read::json("/v1/audit", "/v1/audit"),
        Read::json("/v1/audit", "/v1/audit?namespace=app&tenant=acme"),
        Read::json("/v1/audit/export", "/v1/audit/export"),
        Read::json("/v1/search", format!("/v1/search?q={marker}")),
        Read::json("/v1/tenants/{tenant}/history", "/v1/tenants/acme/history"),
        Read::json("/v1/tenants/{tenant}/export", "/v1/tenants/acme/export"),
    ];

    // Every GET route of the API is either in the matrix or returns no values,
    // so a new route cannot be forgotten here.
    let openapi = app.get("/v1/openapi.json").await.body;
    let covered: BTreeSet<&str> = reads.iter().map(|r| r.route).collect();
    let unclassified: Vec<&String> = openapi["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(path, item)| {
            item.get("get").is_some()
                && !covered.contains(path.as_str())
                && !WITHOUT_VALUES.contains(&path.as_str())
        })
        .map(|(path, _)| path)
        .collect();
    assert!(
        unclassified.is_empty(),
        "GET routes neither in the masking matrix nor known to return no values: {unclassified:?}"
    );

    // The admin reads the values in each (the matrix is not vacuous).
    let mut mismatches = Vec::new();
    for read in &reads {
        let (status, body) = read.body(&app, ecs_tests::app::ADMIN_TOKEN).await;
        if status != StatusCode::OK || !body.contains(&marker) {
            mismatches.push(format!(
                "admin GET {}: {status}, values {}shown: {body:.300}",
                read.path,
                if body.contains(&marker) { "" } else { "not " }
            ));
        }
    }

    let viewer = token(
        &app,
        json!({"name": "viewer", "role": "viewer", "namespaces": ["app"]}),
    )
    .await;
    let acme_viewer = token(
        &app,
        json!({"name": "acme-viewer", "role": "viewer", "namespaces": ["app"], "tenant": "acme"}),
    )
    .await;
    let auditor = token(&app, json!({"name": "auditor", "role": "auditor"})).await;
    let mut masked_reads = 0;
    for (who, token) in [
        ("viewer", &viewer),
        ("acme viewer", &acme_viewer),
        ("auditor", &auditor),
    ] {
        for read in &reads {
            let (status, body) = read.body(&app, token).await;
            if body.contains(&marker) {
                mismatches.push(format!(
                    "{who} GET {} ({status}) reads a sensitive value: {body:.600}",
                    read.path
                ));
            }
            if status == StatusCode::OK && body.contains("***") {
                masked_reads += 1;
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    // Each role reads most routes (masked), so the absence of secrets is not
    // just a refusal.
    assert!(masked_reads >= 30, "only {masked_reads} masked reads");

    // A service reads its configuration (resolved and the feed) unmasked: it
    // needs it to run.
    let service = token(
        &app,
        json!({"name": "svc", "role": "service", "env": "prod", "service": "api"}),
    )
    .await;
    let resolved = get_as(
        &app,
        &service,
        "/v1/namespaces/app/resolved?env=prod&service=api&tenant=acme",
    )
    .await;
    assert_eq!(resolved.status, StatusCode::OK, "{}", resolved.body);
    assert_eq!(
        resolved.body["values"]["db"]["password"],
        json!(secret("acme"))
    );
    let (status, feed) = read_events(
        &app,
        &service,
        "/v1/feed?namespaces=app",
        "event: synced",
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(feed.contains(&secret("signing")), "{feed}");
}

fn rand_nonce() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    now.as_nanos() as u64 ^ u64::from(std::process::id())
}

/// One reader of `/v1/feed`: the newest values per layer key it was sent,
/// once they are all `expected` (or when `stop` fires).
async fn follow_feed(
    address: String,
    namespaces: &'static str,
    expected: Arc<HashMap<String, Value>>,
    stop: tokio_util::sync::CancellationToken,
) -> HashMap<String, (u64, Value)> {
    let client = reqwest::Client::new();
    let mut response = client
        .get(format!("{address}/v1/feed?namespaces={namespaces}"))
        .bearer_auth(ecs_tests::app::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut seen: HashMap<String, (u64, Value)> = HashMap::new();
    let mut buffer = String::new();
    loop {
        let chunk = tokio::select! {
            _ = stop.cancelled() => break,
            chunk = response.chunk() => chunk,
        };
        let Ok(Some(chunk)) = chunk else { break };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let Some(data) = event.lines().find_map(|l| l.strip_prefix("data:")) else {
                continue;
            };
            let Ok(message) = serde_json::from_str::<Value>(data.trim()) else {
                continue;
            };
            if message["kind"] != "layer" {
                continue;
            }
            if message["scope"]["service"].is_null() {
                continue; // ballast
            }
            let key = message["scope"].to_string();
            let position = message["position"].as_u64().unwrap();
            let entry = seen.entry(key).or_insert((0, Value::Null));
            if position > entry.0 {
                *entry = (position, message["values"].clone());
            }
        }
        if expected
            .iter()
            .all(|(key, values)| seen.get(key).is_some_and(|(_, v)| v == values))
        {
            break;
        }
    }
    seen
}

/// Layers written once each per round by this many concurrent writers.
const LAYERS: usize = 120;
const WRITERS: usize = 4;

/// One round: `LAYERS` new layers written once each (so a change a reader
/// misses is never sent to it again) while readers keep joining; what each
/// reader never received.
async fn feed_round(app: &TestApp, round: usize) -> Vec<String> {
    let stop = tokio_util::sync::CancellationToken::new();
    let key = move |i: usize| json!({"service": format!("r{round}s{i}")});
    let expected: Arc<HashMap<String, Value>> = Arc::new(
        (0..LAYERS)
            .map(|i| (key(i).to_string(), json!({"n": i})))
            .collect(),
    );
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let client = app.client.clone();
        let address = app.address.clone();
        writers.push(tokio::spawn(async move {
            for i in (w..LAYERS).step_by(WRITERS) {
                let response = client
                    .put(format!(
                        "{address}/v1/namespaces/live/layer?service=r{round}s{i}"
                    ))
                    .bearer_auth(ecs_tests::app::ADMIN_TOKEN)
                    .json(&json!({"values": {"n": i}}))
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success(), "{}", response.status());
                // Paced, so the writes span the time readers keep joining.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    // Readers join one after another for as long as the writes land.
    let mut readers = Vec::new();
    while readers.len() < 30 && writers.iter().any(|w| !w.is_finished()) {
        readers.push(tokio::spawn(follow_feed(
            app.address.clone(),
            "live",
            expected.clone(),
            stop.clone(),
        )));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        readers.len() >= 10,
        "the writes ended too soon to test anything"
    );
    for writer in writers {
        writer.await.unwrap();
    }
    // Each reader is pushed every change and ends once it holds them all;
    // a reader that missed one waits until this deadline.
    let deadline = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            stop.cancel();
        })
    };
    let mut failures = Vec::new();
    let readers_count = readers.len();
    for (r, reader) in readers.into_iter().enumerate() {
        let seen = reader.await.unwrap();
        let mut missing: Vec<&String> = expected
            .iter()
            .filter(|(key, values)| seen.get(*key).map(|(_, v)| v) != Some(*values))
            .map(|(key, _)| key)
            .collect();
        if !missing.is_empty() {
            let count = missing.len();
            missing.sort();
            missing.truncate(10);
            failures.push(format!(
                "round {round}, reader {r} of {readers_count} never got {count} of {LAYERS} \
                 layers, such as {missing:?}"
            ));
        }
    }
    deadline.abort();
    failures
}

#[tokio::test]
async fn http_feed_readers_that_join_while_writes_land_end_with_every_change() {
    let app = spawn_app().await;
    assert!(
        app.put_namespace("live", &json!({}))
            .await
            .status
            .is_success()
    );
    // Ballast: large layers make each reader's first batch take a while to
    // read, so writes land while it is read (as in production, where the
    // first batch is every layer of the namespace).
    let ballast = json!({"blob": "x".repeat(40_000)});
    let mut fill = Vec::new();
    for w in 0..WRITERS {
        let client = app.client.clone();
        let address = app.address.clone();
        let ballast = ballast.clone();
        fill.push(tokio::spawn(async move {
            for i in (w..60).step_by(WRITERS) {
                let response = client
                    .put(format!("{address}/v1/namespaces/live/layer?env=ballast{i}"))
                    .bearer_auth(ecs_tests::app::ADMIN_TOKEN)
                    .json(&json!({"values": ballast}))
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success(), "{}", response.status());
            }
        }));
    }
    for task in fill {
        task.await.unwrap();
    }
    // The race is a matter of timing: two rounds make a lost change far more
    // likely to show, should the feed lose one.
    let mut failures = feed_round(&app, 0).await;
    failures.extend(feed_round(&app, 1).await);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_service_key_sees_no_tenant_and_tenant_bound_keys_see_their_own() {
    let app = spawn_app().await;
    assert!(
        app.put_namespace("app", &json!({}))
            .await
            .status
            .is_success()
    );
    for (id, name) in [("acme", "Acme Corp"), ("globex", "Globex Inc")] {
        let answer = app
            .put(
                &format!("/v1/tenants/{id}"),
                &json!({"edition": "pro", "name": name}),
            )
            .await;
        assert!(answer.status.is_success(), "{}", answer.body);
    }
    let service = token(
        &app,
        json!({"name": "svc", "role": "service", "env": "prod", "service": "api"}),
    )
    .await;
    let acme_viewer = token(
        &app,
        json!({"name": "v", "role": "viewer", "namespaces": ["app"], "tenant": "acme"}),
    )
    .await;
    let auditor = token(&app, json!({"name": "a", "role": "auditor"})).await;

    let ids = |answer: &Answer| -> Vec<String> {
        answer.body["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let listed = get_as(&app, &service, "/v1/tenants").await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(ids(&listed), Vec::<String>::new(), "{}", listed.body);
    let one = get_as(&app, &service, "/v1/tenants/acme").await;
    assert_eq!(one.status, StatusCode::NOT_FOUND, "{}", one.body);
    assert!(!one.body.to_string().contains("Acme Corp"));
    assert_eq!(
        ids(&get_as(&app, &acme_viewer, "/v1/tenants").await),
        ["acme"]
    );
    assert_eq!(
        ids(&get_as(&app, &auditor, "/v1/tenants").await),
        ["acme", "globex"]
    );

    // The service follows every tenant's edition in the feed (it resolves
    // their contexts), not their names.
    let (status, feed) = read_events(
        &app,
        &service,
        "/v1/feed?namespaces=app",
        "event: synced",
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(feed.contains("\"tenant\":\"globex\""), "{feed}");
    assert!(!feed.contains("Globex Inc"), "{feed}");
    // And resolves a tenant's context as before.
    let resolved = get_as(
        &app,
        &service,
        "/v1/namespaces/app/resolved?env=prod&service=api&tenant=acme",
    )
    .await;
    assert_eq!(resolved.status, StatusCode::OK, "{}", resolved.body);
}

#[tokio::test]
async fn layer_history_comes_a_page_at_a_time_with_a_cursor() {
    let app = spawn_app().await;
    assert!(
        app.put_namespace("app", &json!({}))
            .await
            .status
            .is_success()
    );
    for n in 1..=7 {
        let answer = app
            .put_layer("app", "env=prod", &json!({"values": {"n": n}}))
            .await;
        assert!(answer.status.is_success(), "{}", answer.body);
    }
    // Pages of 3: revisions 1-3, 4-6, 7.
    let mut pages = Vec::new();
    let mut query = "env=prod&limit=3".to_owned();
    loop {
        let page = app.history("app", &query).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let revisions: Vec<u64> = page.body["revisions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["revision"].as_u64().unwrap())
            .collect();
        pages.push(revisions);
        match page.body["next_cursor"].as_str() {
            Some(cursor) => query = format!("env=prod&limit=3&cursor={cursor}"),
            None => break,
        }
        assert!(pages.len() < 10, "the cursor does not advance");
    }
    assert_eq!(pages, [vec![1, 2, 3], vec![4, 5, 6], vec![7]]);

    // Without a limit: up to 100, and no cursor when everything fits.
    let all = app.history("app", "env=prod").await;
    assert_eq!(all.body["revisions"].as_array().unwrap().len(), 7);
    assert_eq!(all.body["next_cursor"], Value::Null);

    // Malformed paging answers 400 naming the parameter.
    for (query, field) in [
        ("env=prod&limit=0", "limit"),
        ("env=prod&limit=1001", "limit"),
        ("env=prod&limit=x", "limit"),
        ("env=prod&cursor=zz", "cursor"),
        ("env=prod&cursor=", "cursor"),
    ] {
        let answer = app.history("app", query).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            answer.body
        );
        assert_eq!(answer.body["field"], field, "{query}: {}", answer.body);
    }

    // The OpenAPI document describes the paging.
    let openapi = app.get("/v1/openapi.json").await.body;
    let params: Vec<&str> =
        openapi["paths"]["/v1/namespaces/{ns}/layer/history"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
    assert!(
        params.contains(&"limit") && params.contains(&"cursor"),
        "{params:?}"
    );
}
