//! The audit log: every accepted change and every refused attempt, recorded
//! once, filtered, paged, exported, and kept across rebuilds and restarts.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::time::Duration;

use ecs_tests::app::{Answer, TestApp, spawn_app, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// How long a refusal may take to reach the audit log.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(15);

fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {"max_items": {"type": "integer", "minimum": 1}}
    })
}

/// `GET /v1/audit?<query>` as the admin, expecting 200.
async fn audit_page(app: &TestApp, query: &str) -> Answer {
    let r = app.get(&format!("/v1/audit?{query}")).await;
    assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.body);
    r
}

/// Every entry matching `query`, paging with `limit`, newest first.
async fn all_entries(app: &TestApp, query: &str, limit: u32) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let mut q = format!("{query}&limit={limit}");
        if let Some(c) = &cursor {
            q.push_str(&format!("&cursor={c}"));
        }
        let page = audit_page(app, &q).await;
        let entries = page.body["entries"].as_array().unwrap();
        assert!(entries.len() <= limit as usize);
        out.extend(entries.iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(entries.len(), limit as usize, "only full pages go on");
                cursor = Some(c.to_owned());
            }
            None => return out,
        }
    }
    panic!("paging did not end");
}

/// Polls the refused entries until `done` holds for them (or fails after
/// [`REFUSAL_TIMEOUT`]); the audit projector is asynchronous.
async fn wait_for_refusals(app: &TestApp, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + REFUSAL_TIMEOUT;
    loop {
        let entries = all_entries(app, "outcome=refused", 1000).await;
        if done(&entries) {
            return entries;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "refusals missing from the audit log: {entries:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The attempts a failed-authentication record stands for
/// (`... (N attempts from ...)`); 0 for other records.
fn attempts(entry: &Value) -> u64 {
    entry["reason"]
        .as_str()
        .filter(|r| r.starts_with("authentication"))
        .and_then(|r| r.rsplit_once(" attempt"))
        .and_then(|(head, _)| head.rsplit_once('(').map(|(_, n)| n.to_owned()))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn with_request_id<'a>(entries: &'a [Value], id: &str) -> Vec<&'a Value> {
    entries.iter().filter(|e| e["request_id"] == id).collect()
}

/// Issues a token as the admin; returns (id, bearer credential).
async fn issue(app: &TestApp, body: Value) -> (String, String) {
    let r = app.post("/v1/tokens", &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    (
        r.body["id"].as_str().unwrap().to_owned(),
        r.body["token"].as_str().unwrap().to_owned(),
    )
}

fn at_of(entry: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(entry["at"].as_str().unwrap(), &Rfc3339).unwrap()
}

fn ids(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn every_accepted_change_is_recorded_once_with_its_facts() {
    let app = spawn_app().await;
    let ns = json!({"description": "Checkout", "schema": schema()});
    let with_ids = |builder: reqwest::RequestBuilder, n: u32| {
        builder
            .header("x-request-id", format!("req-{n}"))
            .header("x-correlation-id", format!("corr-{n}"))
    };
    let r = app
        .send(with_ids(
            app.request(Method::PUT, "/v1/namespaces/checkout")
                .json(&ns),
            1,
        ))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let ns_position = r.position();
    let r = app
        .put_namespace(
            "checkout",
            &json!({"description": "Checkout v2", "schema": schema()}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let put = app
        .send(with_ids(
            app.request(Method::PUT, "/v1/namespaces/checkout/layer")
                .json(&json!({"values": {"max_items": 10}, "message": "first"})),
            2,
        ))
        .await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.body);
    let patch = app
        .send(with_ids(
            app.request(Method::PATCH, "/v1/namespaces/checkout/layer")
                .json(&json!({"values": {"max_items": 20}, "message": "second"})),
            3,
        ))
        .await;
    assert_eq!(patch.status, StatusCode::OK, "{}", patch.body);
    let rollback = app
        .post(
            "/v1/namespaces/checkout/layer/rollback",
            &json!({"revision": 1, "message": "back"}),
        )
        .await;
    assert_eq!(rollback.status, StatusCode::OK, "{}", rollback.body);
    let clear = app
        .delete("/v1/namespaces/checkout/layer?message=gone")
        .await;
    assert_eq!(clear.status, StatusCode::OK, "{}", clear.body);
    assert_eq!(
        app.put_tenant("acme", "enterprise").await.status,
        StatusCode::CREATED
    );
    let (editor_id, editor) = issue(
        &app,
        json!({"name": "ed", "role": "editor", "namespaces": ["checkout"], "tenant": "acme"}),
    )
    .await;
    let tenant_put = app
        .send(
            app.client
                .put(format!(
                    "{}/v1/namespaces/checkout/layer?env=prod&tenant=acme",
                    app.address
                ))
                .bearer_auth(&editor)
                .header("x-request-id", "req-editor")
                .header("x-correlation-id", "corr-editor")
                .json(&json!({"values": {"max_items": 5}, "message": "acme's"})),
        )
        .await;
    assert_eq!(
        tenant_put.status,
        StatusCode::CREATED,
        "{}",
        tenant_put.body
    );
    let r = app.delete(&format!("/v1/tokens/{editor_id}")).await;
    assert!(r.status.is_success(), "{}", r.body);

    // Read-your-writes: the entries are there as soon as the writes answered.
    let entries = all_entries(&app, "outcome=accepted", 1000).await;
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "token.revoked",
            "layer.replaced",
            "token.issued",
            "tenant.defined",
            "layer.cleared",
            "layer.rolled-back",
            "layer.patched",
            "layer.replaced",
            "namespace.defined",
            "namespace.defined",
        ],
        "{entries:#?}"
    );
    // Exactly once each: one entry per stream position.
    let positions: HashSet<u64> = entries
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions.len(), entries.len());
    for e in &entries {
        assert_eq!(e["outcome"], "accepted");
        assert_eq!(
            e["id"],
            format!("accepted:{}", e["position"].as_u64().unwrap())
        );
        assert!(OffsetDateTime::parse(e["at"].as_str().unwrap(), &Rfc3339).is_ok());
        assert!(e["reason"].is_null());
    }

    let by_request = |id: &str| {
        let found = with_request_id(&entries, id);
        assert_eq!(found.len(), 1, "{id}: {entries:#?}");
        found[0].clone()
    };
    let first_ns = by_request("req-1");
    assert_eq!(first_ns["action"], "namespace.defined");
    assert_eq!(first_ns["position"], ns_position);
    assert_eq!(first_ns["correlation_id"], "corr-1");
    assert_eq!(first_ns["actor"], "admin");
    assert_eq!(first_ns["role"], "admin");
    assert_eq!(first_ns["namespace"], "checkout");
    assert!(first_ns["before"].is_null());
    assert_eq!(
        first_ns["after"],
        json!({"description": "Checkout", "schema": schema()})
    );
    assert_eq!(
        entries[8]["before"],
        json!({"description": "Checkout", "schema": schema()})
    );
    assert_eq!(entries[8]["after"]["description"], "Checkout v2");

    let replaced = by_request("req-2");
    assert_eq!(replaced["action"], "layer.replaced");
    assert_eq!(replaced["correlation_id"], "corr-2");
    assert_eq!(replaced["position"], put.position());
    assert_eq!(replaced["scope"], json!({}));
    assert!(replaced["before"].is_null());
    assert_eq!(replaced["after"], json!({"max_items": 10}));
    assert_eq!(replaced["message"], "first");
    assert!(replaced["tenant"].is_null());

    let patched = by_request("req-3");
    assert_eq!(patched["action"], "layer.patched");
    assert_eq!(patched["correlation_id"], "corr-3");
    assert_eq!(patched["before"], json!({"max_items": 10}));
    assert_eq!(patched["after"], json!({"max_items": 20}));
    assert_eq!(patched["message"], "second");

    let rolled = &entries[5];
    assert_eq!(rolled["position"], rollback.position());
    assert_eq!(rolled["before"], json!({"max_items": 20}));
    assert_eq!(rolled["after"], json!({"max_items": 10}));
    assert_eq!(rolled["message"], "back");
    // A request without x-request-id gets one from the server.
    assert!(rolled["request_id"].as_str().is_some_and(|r| !r.is_empty()));
    assert!(rolled["correlation_id"].is_null());

    let cleared = &entries[4];
    assert_eq!(cleared["position"], clear.position());
    assert_eq!(cleared["before"], json!({"max_items": 10}));
    assert_eq!(cleared["after"], json!({}));
    assert_eq!(cleared["message"], "gone");

    let tenant = &entries[3];
    assert_eq!(tenant["tenant"], "acme");
    assert!(tenant["before"].is_null());
    assert_eq!(tenant["after"]["edition"], "enterprise");

    let by_editor = by_request("req-editor");
    assert_eq!(by_editor["actor"], format!("token:{editor_id}"));
    assert_eq!(by_editor["role"], "editor");
    assert_eq!(by_editor["correlation_id"], "corr-editor");
    assert_eq!(by_editor["tenant"], "acme");
    assert_eq!(by_editor["scope"], json!({"env": "prod", "tenant": "acme"}));
    assert_eq!(by_editor["after"], json!({"max_items": 5}));
    assert_eq!(by_editor["position"], tenant_put.position());

    // Tokens: the name and role, never anything secret.
    let issued = &entries[2];
    assert_eq!(issued["after"]["name"], "ed");
    assert_eq!(issued["after"]["role"]["role"], "editor");
    assert_eq!(issued["tenant"], "acme");
    let revoked = &entries[0];
    assert_eq!(revoked["before"]["name"], "ed");
    assert_eq!(revoked["after"]["revoked"], true);
    let secret = editor.rsplit('_').next().unwrap();
    for e in [issued, revoked] {
        let text = e.to_string();
        assert!(!text.contains(secret), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }
}

#[tokio::test]
async fn every_refused_attempt_is_recorded_once_with_its_kind() {
    let app = spawn_app_with(|s| s.jwt_hs256_secret = Some("secret".into())).await;
    assert_eq!(
        app.put_namespace("checkout", &json!({"description": "", "schema": schema()}))
            .await
            .status,
        StatusCode::CREATED
    );
    let url = format!("{}/v1/namespaces", app.address);
    let attempt = |request_id: &str, bearer: Option<&str>| {
        let mut builder = app
            .client
            .get(&url)
            .header("x-request-id", request_id)
            .header("x-correlation-id", format!("c-{request_id}"));
        if let Some(bearer) = bearer {
            builder = builder.bearer_auth(bearer);
        }
        builder
    };
    let unauthorized = |r: &Answer| assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);

    unauthorized(&app.send(attempt("r-missing", None)).await);
    unauthorized(
        &app.send(attempt("r-malformed", Some("ecs_nounderscore")))
            .await,
    );
    unauthorized(&app.send(attempt("r-unknown", Some("ecs_abc_def"))).await);

    let (revoked_id, revoked) = issue(
        &app,
        json!({"name": "old", "role": "viewer", "namespaces": ["checkout"]}),
    )
    .await;
    assert!(
        app.delete(&format!("/v1/tokens/{revoked_id}"))
            .await
            .status
            .is_success()
    );
    unauthorized(&app.send(attempt("r-revoked", Some(&revoked))).await);

    let expires = OffsetDateTime::now_utc() + Duration::from_secs(2);
    let (_, expiring) = issue(
        &app,
        json!({"name": "brief", "role": "viewer", "namespaces": ["checkout"],
               "expires_at": expires.format(&Rfc3339).unwrap()}),
    )
    .await;
    assert_eq!(
        app.send(attempt("r-before-expiry", Some(&expiring)))
            .await
            .status,
        StatusCode::OK
    );
    // Wait until the key has expired (its expiry is in whole seconds).
    let expired_at = expires.unix_timestamp();
    while OffsetDateTime::now_utc().unix_timestamp() < expired_at + 1 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    unauthorized(&app.send(attempt("r-expired", Some(&expiring))).await);

    let claims = json!({
        "sub": "mallory",
        "exp": OffsetDateTime::now_utc().unix_timestamp() + 600,
        "ecs_role": {"role": "admin"},
    });
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"another secret"),
    )
    .unwrap();
    unauthorized(&app.send(attempt("r-jwt", Some(&forged))).await);
    // The right secret passes (so the refusal above is the signature's).
    let genuine = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"secret"),
    )
    .unwrap();
    assert_eq!(
        app.send(attempt("r-jwt-ok", Some(&genuine))).await.status,
        StatusCode::OK
    );

    let (viewer_id, viewer) = issue(
        &app,
        json!({"name": "v", "role": "viewer", "namespaces": ["checkout"]}),
    )
    .await;
    let denied = app
        .send(
            app.client
                .put(format!("{}/v1/namespaces/checkout/layer", app.address))
                .bearer_auth(&viewer)
                .header("x-request-id", "r-denied")
                .json(&json!({"values": {"max_items": 3}})),
        )
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN, "{}", denied.body);

    let invalid = app
        .send(
            app.request(Method::PUT, "/v1/namespaces/checkout/layer")
                .header("x-request-id", "r-invalid")
                .json(&json!({"values": {"max_items": "many"}, "message": "bad"})),
        )
        .await;
    assert_eq!(
        invalid.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        invalid.body
    );

    let expected = [
        ("r-missing", "authentication: no bearer credential"),
        ("r-malformed", "authentication: malformed credential"),
        ("r-unknown", "authentication: unknown credential"),
        ("r-revoked", "authentication: revoked credential"),
        ("r-expired", "authentication: expired credential"),
        ("r-jwt", "authentication: invalid JWT"),
        ("r-denied", "authorization: "),
        ("r-invalid", "validation: schema-violation"),
    ];
    let entries = wait_for_refusals(&app, |entries| {
        expected
            .iter()
            .all(|(id, _)| !with_request_id(entries, id).is_empty())
    })
    .await;
    for (id, reason) in expected {
        let found = with_request_id(&entries, id);
        assert_eq!(found.len(), 1, "{id} recorded once: {entries:#?}");
        let e = found[0];
        assert_eq!(e["outcome"], "refused");
        assert!(
            e["reason"].as_str().unwrap().starts_with(reason),
            "{id}: {e}"
        );
        assert!(e["id"].as_str().unwrap().starts_with("refused:"));
        assert!(e["position"].is_null());
        assert!(OffsetDateTime::parse(e["at"].as_str().unwrap(), &Rfc3339).is_ok());
    }
    // Accepted requests are not refusals.
    for id in ["r-before-expiry", "r-jwt-ok"] {
        assert!(with_request_id(&entries, id).is_empty(), "{id}");
    }
    let missing = with_request_id(&entries, "r-missing")[0];
    assert_eq!(missing["action"], "http:GET /v1/namespaces");
    assert_eq!(missing["correlation_id"], "c-r-missing");
    assert!(missing["actor"].is_null());
    let denied = with_request_id(&entries, "r-denied")[0];
    assert_eq!(denied["actor"], format!("token:{viewer_id}"));
    assert_eq!(denied["role"], "viewer");
    assert_eq!(denied["namespace"], "checkout");
    assert_eq!(denied["action"], "http:PUT /v1/namespaces/{ns}/layer");
    let invalid = with_request_id(&entries, "r-invalid")[0];
    assert_eq!(invalid["actor"], "admin");
    assert_eq!(invalid["namespace"], "checkout");
    // No refusal left an accepted entry behind.
    let accepted = all_entries(&app, "outcome=accepted&namespace=checkout", 1000).await;
    assert_eq!(accepted.len(), 1, "{accepted:#?}");
}

#[tokio::test]
async fn filters_pages_export_and_who_may_read() {
    let app = spawn_app().await;
    assert_eq!(
        app.put_namespace("pages", &json!({"description": "", "schema": null}))
            .await
            .status,
        StatusCode::CREATED
    );
    for i in 0..24 {
        let r = app
            .put_layer(
                "pages",
                "",
                &json!({"values": {"n": i}, "message": format!("write {i}")}),
            )
            .await;
        assert!(r.status.is_success(), "{}", r.body);
    }
    assert_eq!(
        app.put_tenant("acme", "pro").await.status,
        StatusCode::CREATED
    );
    let (editor_id, editor) = issue(
        &app,
        json!({"name": "ed", "role": "editor", "namespaces": ["pages"]}),
    )
    .await;
    let r = app
        .send(
            app.client
                .patch(format!(
                    "{}/v1/namespaces/pages/layer?tenant=acme",
                    app.address
                ))
                .bearer_auth(&editor)
                .json(&json!({"values": {"n": 100}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    // 25 entries for the namespace, paged by 10: no duplicates, no gaps.
    let everything = all_entries(&app, "namespace=pages", 1000).await;
    assert_eq!(everything.len(), 26, "{everything:#?}");
    let first_25 = everything[1..].to_vec();
    let until_editor = everything[0]["at"].as_str().unwrap().to_owned();
    let q = format!("namespace=pages&until={}", urlencode(&until_editor));
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut query = format!("{q}&limit=10");
        if let Some(c) = &cursor {
            query.push_str(&format!("&cursor={c}"));
        }
        let page = audit_page(&app, &query).await;
        pages += 1;
        paged.extend(page.body["entries"].as_array().unwrap().iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(paged, first_25);
    assert_eq!(ids(&paged).into_iter().collect::<HashSet<_>>().len(), 25);
    // Newest first.
    let times: Vec<OffsetDateTime> = everything.iter().map(at_of).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]));
    let positions: Vec<u64> = everything
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] > w[1]));
    // Default page size: everything here fits in the 100 of one page.
    let page = audit_page(&app, "namespace=pages").await;
    assert_eq!(page.body["entries"].as_array().unwrap().len(), 26);
    assert!(page.body["next_cursor"].is_null());

    // Filters.
    let tenant = all_entries(&app, "tenant=acme", 1000).await;
    let actions: Vec<&str> = tenant
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["layer.patched", "tenant.defined"]);
    let by_editor = all_entries(&app, &format!("actor=token:{editor_id}"), 1000).await;
    assert_eq!(by_editor.len(), 1);
    assert_eq!(by_editor[0]["tenant"], "acme");
    let patched = all_entries(&app, "action=layer.patched", 1000).await;
    assert_eq!(ids(&patched), ids(&by_editor));
    let replaced = all_entries(&app, "action=layer.replaced&namespace=pages", 1000).await;
    assert_eq!(replaced.len(), 24);
    let mid = everything[12]["at"].as_str().unwrap();
    let since = all_entries(
        &app,
        &format!("namespace=pages&since={}", urlencode(mid)),
        7,
    )
    .await;
    let expected_since: Vec<Value> = everything
        .iter()
        .zip(&times)
        .filter(|(_, at)| **at >= times[12])
        .map(|(e, _)| e.clone())
        .collect();
    assert!(since.len() >= 13);
    assert_eq!(ids(&since), ids(&expected_since));
    let until = all_entries(
        &app,
        &format!("namespace=pages&until={}", urlencode(mid)),
        7,
    )
    .await;
    assert_eq!(since.len() + until.len(), everything.len());
    assert!(until.iter().all(|e| at_of(e) < times[12]));
    let both = all_entries(
        &app,
        &format!(
            "namespace=pages&since={}&until={}",
            urlencode(everything[20]["at"].as_str().unwrap()),
            urlencode(mid)
        ),
        1000,
    )
    .await;
    assert!(!both.is_empty());
    assert!(
        both.iter()
            .all(|e| at_of(e) < times[12] && at_of(e) >= times[20])
    );

    // Both routes are documented.
    let doc = app.get("/v1/openapi.json").await;
    for path in ["/v1/audit", "/v1/audit/export"] {
        assert!(doc.body["paths"][path]["get"].is_object(), "{path}");
    }

    // Who may read: the auditor yes, a viewer no (and that refusal is audited).
    let (_, auditor) = issue(&app, json!({"name": "aud", "role": "auditor"})).await;
    let r = app
        .send(
            app.client
                .get(format!("{}/v1/audit?namespace=pages&limit=1", app.address))
                .bearer_auth(&auditor),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["entries"][0], everything[0]);
    let (viewer_id, viewer) = issue(
        &app,
        json!({"name": "v", "role": "viewer", "namespaces": ["pages"]}),
    )
    .await;
    for path in ["/v1/audit", "/v1/audit/export"] {
        let r = app
            .send(
                app.client
                    .get(format!("{}{path}", app.address))
                    .bearer_auth(&viewer),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.body);
    }
    let viewer_actor = format!("token:{viewer_id}");
    let refused = wait_for_refusals(&app, |entries| {
        entries
            .iter()
            .filter(|e| e["actor"] == viewer_actor.as_str())
            .count()
            >= 2
    })
    .await;
    assert!(refused.iter().all(|e| e["outcome"] == "refused"));
    let refused_by_viewer = all_entries(
        &app,
        &format!("actor={viewer_actor}&outcome=refused&action=http:GET%20/v1/audit"),
        1000,
    )
    .await;
    assert_eq!(refused_by_viewer.len(), 1);
    assert!(
        refused_by_viewer[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("authorization")
    );
    let accepted = all_entries(&app, "outcome=accepted", 1000).await;
    assert!(accepted.iter().all(|e| e["outcome"] == "accepted"));
    assert!(accepted.len() >= 29);

    // Bad parameters: 400 naming the field.
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("outcome=maybe", "outcome"),
        ("since=yesterday", "since"),
        ("until=2024-13-01T00:00:00Z", "until"),
        ("cursor=zz", "cursor"),
        ("cursor=3132", "cursor"),
        ("tenant=a.b", "tenant"),
        ("namespace=*", "namespace"),
        ("actor=", "actor"),
        ("colour=red", "colour"),
        ("limit=5&limit=6", "limit"),
    ] {
        let r = app.get(&format!("/v1/audit?{query}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.body);
        assert_eq!(r.body["field"], field, "{query}: {}", r.body);
    }
    let r = app.get("/v1/audit/export?limit=5").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.body["field"], "limit");

    // Export: JSON Lines, the same entries as paging.
    for query in ["namespace=pages", "outcome=accepted"] {
        let response = app
            .request(Method::GET, &format!("/v1/audit/export?{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "application/x-ndjson"
        );
        let text = response.text().await.unwrap();
        assert!(text.ends_with('\n'));
        let exported: Vec<Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(exported, all_entries(&app, query, 10).await, "{query}");
    }
    let text = app
        .request(Method::GET, "/v1/audit/export?namespace=nothing-here")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, "");
}

/// Percent-encodes what an RFC 3339 time holds that a query may not (`+`, `:`).
fn urlencode(text: &str) -> String {
    text.replace('%', "%25")
        .replace('+', "%2B")
        .replace(':', "%3A")
}

#[tokio::test]
async fn rebuilds_and_restarts_keep_the_audit_log() {
    let mut app = spawn_app().await;
    assert_eq!(
        app.put_namespace("checkout", &json!({"description": "", "schema": schema()}))
            .await
            .status,
        StatusCode::CREATED
    );
    for i in 1..=3 {
        let r = app
            .put_layer(
                "checkout",
                "env=prod",
                &json!({"values": {"max_items": i}, "message": format!("v{i}")}),
            )
            .await;
        assert!(r.status.is_success(), "{}", r.body);
    }
    let (id, _) = issue(&app, json!({"name": "k", "role": "auditor"})).await;
    assert!(
        app.delete(&format!("/v1/tokens/{id}"))
            .await
            .status
            .is_success()
    );
    for n in 0..3 {
        let r = app
            .send(
                app.client
                    .get(format!("{}/v1/tenants", app.address))
                    .header("x-request-id", format!("nope-{n}")),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = app
        .put_layer("checkout", "", &json!({"values": {"max_items": 0}}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    // The three failed authentications are counted in one record per
    // window (ADR 12): wait until all three are, and the validation failure.
    let refused = wait_for_refusals(&app, |entries| {
        entries.iter().map(attempts).sum::<u64>() == 3
            && entries.iter().any(|e| {
                e["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("validation")
            })
    })
    .await;
    let before = all_entries(&app, "", 1000).await;
    assert_eq!(before.len(), 6 + refused.len(), "{before:#?}");

    app.rebuild_projections().await;
    let after = all_entries(&app, "", 1000).await;
    assert_eq!(after, before);

    // A restart resumes the audit projector after its offset: nothing twice,
    // and new refusals still arrive.
    app.stop().await;
    app.start().await;
    let r = app
        .send(
            app.client
                .get(format!("{}/v1/tenants", app.address))
                .header("x-request-id", "after-restart"),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let refused = wait_for_refusals(&app, |entries| {
        !with_request_id(entries, "after-restart").is_empty()
    })
    .await;
    let now = all_entries(&app, "", 3).await;
    assert_eq!(now.len(), before.len() + 1, "{refused:#?}");
    assert_eq!(&now[1..], &before[..]);
}
