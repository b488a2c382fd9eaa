//! What Config Studio needs from the server: `GET /v1/whoami` (the signed-in
//! principal's role, scope and rights) and the built app served at
//! `/studio/` with a strict Content-Security-Policy, against real NATS and
//! PostgreSQL.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use ecs_tests::app::{Answer, TestApp, spawn_app, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn token(app: &TestApp, body: Value) -> String {
    let answer = app.post("/v1/tokens", &body).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    answer.body["token"].as_str().unwrap().to_owned()
}

async fn whoami(app: &TestApp, token: &str) -> Answer {
    app.send(
        app.client
            .request(Method::GET, format!("{}/v1/whoami", app.address))
            .bearer_auth(token),
    )
    .await
}

#[tokio::test]
async fn whoami_names_the_role_its_scope_and_what_it_may_do() {
    let app = spawn_app().await;
    assert!(app.put_tenant("acme", "pro").await.status.is_success());
    let tenant_admin = token(
        &app,
        json!({"name": "acme-admin", "role": "tenant-admin", "tenant": "acme"}),
    )
    .await;
    let viewer = token(
        &app,
        json!({"name": "v", "role": "viewer", "namespaces": ["checkout"]}),
    )
    .await;
    let auditor = token(&app, json!({"name": "a", "role": "auditor"})).await;

    let admin = app.get("/v1/whoami").await;
    assert_eq!(admin.status, StatusCode::OK, "{}", admin.body);
    assert_eq!(admin.body["principal"], "admin");
    assert_eq!(admin.body["via"], "bootstrap");
    assert_eq!(admin.body["role"], json!({"role": "admin"}));
    assert_eq!(
        admin.body["may"],
        json!({"administer": true, "write_layers": true, "read_audit": true,
               "manage_tokens": true, "read_sensitive": true})
    );

    let tenant = whoami(&app, &tenant_admin).await;
    assert_eq!(tenant.status, StatusCode::OK, "{}", tenant.body);
    assert!(
        tenant.body["principal"]
            .as_str()
            .unwrap()
            .starts_with("token:")
    );
    assert_eq!(tenant.body["via"], "api-key");
    assert_eq!(
        tenant.body["role"],
        json!({"role": "tenant-admin", "tenant": "acme"})
    );
    assert_eq!(
        tenant.body["may"],
        json!({"administer": false, "write_layers": true, "read_audit": false,
               "manage_tokens": true, "read_sensitive": true})
    );

    let viewer = whoami(&app, &viewer).await;
    assert_eq!(
        viewer.body["role"],
        json!({"role": "viewer", "namespaces": ["checkout"]})
    );
    assert_eq!(viewer.body["may"]["write_layers"], false);
    assert_eq!(viewer.body["may"]["read_sensitive"], false);

    let auditor = whoami(&app, &auditor).await;
    assert_eq!(auditor.body["may"]["read_audit"], true);
    assert_eq!(auditor.body["may"]["write_layers"], false);

    let anonymous = app
        .send(app.client.get(format!("{}/v1/whoami", app.address)))
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let unknown = whoami(&app, "not-a-token").await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn whoami_is_in_the_openapi_document() {
    let app = spawn_app().await;
    let doc = app.get("/v1/openapi.json").await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(
        doc.body["paths"]["/v1/whoami"]["get"].is_object(),
        "{}",
        doc.body["paths"]
    );
}

#[tokio::test]
async fn locks_name_what_a_layer_may_not_set_and_who_locked_it() {
    let app = spawn_app().await;
    assert!(app.put_tenant("acme", "pro").await.status.is_success());
    assert!(app.put_tenant("globex", "pro").await.status.is_success());
    assert!(
        app.put_namespace("checkout", &json!({}))
            .await
            .status
            .is_success()
    );
    for (scope, body) in [
        ("", json!({"values": {"limit": 5}, "lock": ["/limit"]})),
        (
            "env=prod",
            json!({"values": {"mode": "safe"}, "lock": ["/mode"]}),
        ),
        ("env=dev", json!({"values": {"x": 1}, "lock": ["/x"]})),
        ("tenant=acme", json!({"values": {"other": 1}})),
    ] {
        let r = app.put_layer("checkout", scope, &body).await;
        assert!(r.status.is_success(), "{scope}: {}", r.body);
    }
    let mut failures = Vec::new();
    for (scope, expected) in [
        (
            "env=prod&tenant=acme",
            json!([{"pointer": "/limit", "locked_by": {}},
                   {"pointer": "/mode", "locked_by": {"env": "prod"}}]),
        ),
        (
            "tenant=acme",
            json!([{"pointer": "/limit", "locked_by": {}},
                   {"pointer": "/mode", "locked_by": {"env": "prod"}},
                   {"pointer": "/x", "locked_by": {"env": "dev"}}]),
        ),
        ("env=prod", json!([{"pointer": "/limit", "locked_by": {}}])),
        ("", json!([])),
    ] {
        let r = app
            .get(&format!("/v1/namespaces/checkout/locks?{scope}"))
            .await;
        let mut locks = r.body["locks"].as_array().cloned().unwrap_or_default();
        locks.sort_by_key(|l| l["pointer"].as_str().unwrap_or_default().to_owned());
        if r.status != StatusCode::OK || Value::Array(locks.clone()) != expected {
            failures.push(format!("{scope}: {} {locks:?}", r.status));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // A tenant admin learns the locks binding its own layers, and nothing of
    // another tenant's.
    let acme = token(
        &app,
        json!({"name": "acme-admin", "role": "tenant-admin", "tenant": "acme"}),
    )
    .await;
    let as_acme = |query: &str| {
        app.client
            .get(format!(
                "{}/v1/namespaces/checkout/locks?{query}",
                app.address
            ))
            .bearer_auth(&acme)
    };
    let own = app.send(as_acme("tenant=acme")).await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.body);
    assert_eq!(own.body["locks"].as_array().unwrap().len(), 3);
    let other = app.send(as_acme("tenant=globex")).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND, "{}", other.body);
    let bad = app.get("/v1/namespaces/checkout/locks?tenant=a.b").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    let missing = app.get("/v1/namespaces/nothing/locks").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.body);
}

/// A built Studio in a temporary directory: an index page and one asset.
fn fake_build(dir: &Path) {
    std::fs::create_dir_all(dir.join("assets")).unwrap();
    std::fs::write(
        dir.join("index.html"),
        "<!doctype html><title>Config Studio</title><div id=\"root\"></div>",
    )
    .unwrap();
    std::fs::write(dir.join("assets/app-1234.js"), "console.log('studio');").unwrap();
    std::fs::write(dir.join("assets/app-1234.css"), "body{margin:0}").unwrap();
}

async fn get_raw(app: &TestApp, path: &str) -> reqwest::Response {
    // Studio's pages need no credential: the app signs in by itself.
    app.client
        .get(format!("{}{path}", app.address))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn studio_is_served_with_spa_fallback_content_types_and_a_strict_csp() {
    let dir = tempfile::tempdir().unwrap();
    fake_build(dir.path());
    let studio_dir = dir.path().to_string_lossy().into_owned();
    let app = spawn_app_with(|s| s.studio_dir = studio_dir).await;

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let bare = client
        .get(format!("{}/studio", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(bare.headers()["location"], "/studio/");

    let mut failures = Vec::new();
    for (path, status, content_type, body) in [
        ("/studio/", 200, "text/html", "Config Studio"),
        ("/studio/index.html", 200, "text/html", "Config Studio"),
        (
            "/studio/namespaces/checkout",
            200,
            "text/html",
            "Config Studio",
        ),
        ("/studio/signin?next=%2F", 200, "text/html", "Config Studio"),
        (
            "/studio/assets/app-1234.js",
            200,
            "text/javascript",
            "studio",
        ),
        ("/studio/assets/app-1234.css", 200, "text/css", "margin"),
        ("/studio/assets/missing.js", 404, "", ""),
        ("/studio/assets/..%2f..%2fCargo.toml", 404, "", ""),
    ] {
        let response = get_raw(&app, path).await;
        let got_status = response.status().as_u16();
        let got_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let csp = response
            .headers()
            .get("content-security-policy")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let nosniff = response
            .headers()
            .get("x-content-type-options")
            .is_some_and(|v| v == "nosniff");
        let text = response.text().await.unwrap();
        if got_status != status {
            failures.push(format!("{path}: status {got_status}, expected {status}"));
            continue;
        }
        if status == 200 && !got_type.starts_with(content_type) {
            failures.push(format!("{path}: content type {got_type}"));
        }
        if !text.contains(body) {
            failures.push(format!("{path}: body {text:?}"));
        }
        if !csp.contains("default-src 'self'")
            || !csp.contains("script-src 'self'")
            || csp.contains("unsafe")
            || !csp.contains("frame-ancestors 'none'")
        {
            failures.push(format!("{path}: Content-Security-Policy {csp:?}"));
        }
        if !nosniff {
            failures.push(format!("{path}: no X-Content-Type-Options: nosniff"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The API is unaffected: /v1 still needs a token.
    assert_eq!(
        get_raw(&app, "/v1/namespaces").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn without_a_build_studio_answers_a_page_saying_how_to_build_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("not-built").to_string_lossy().into_owned();
    let app = spawn_app_with(|s| s.studio_dir = missing).await;
    for path in ["/studio/", "/studio/namespaces/checkout"] {
        let response = get_raw(&app, path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let text = response.text().await.unwrap();
        assert!(text.contains("npm run build"), "{text}");
        assert!(text.contains("ECS_STUDIO_DIR"), "{text}");
    }
}

#[test]
fn studio_dir_defaults_to_studio_dist() {
    assert_eq!(ecs_api::Settings::default().studio_dir, "studio/dist");
}

async fn get_as(app: &TestApp, token: &str, path: &str) -> Answer {
    app.send(
        app.client
            .request(Method::GET, format!("{}{path}", app.address))
            .bearer_auth(token),
    )
    .await
}

/// `(namespace, scope, pointer)` of each match.
fn found(answer: &Answer) -> Vec<(String, Value, String)> {
    answer.body["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["namespace"].as_str().unwrap().to_owned(),
                m["scope"].clone(),
                m["pointer"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn search_finds_keys_and_values_the_caller_may_read_and_nothing_else() {
    let app = spawn_app().await;
    assert!(app.put_tenant("acme", "pro").await.status.is_success());
    assert!(app.put_tenant("globex", "pro").await.status.is_success());
    let schema = json!({"type": "object", "properties": {
        "banner": {"type": "string"},
        "limit": {"type": "integer"},
        "api_key": {"type": "string", "x-sensitive": true},
    }});
    for ns in ["checkout", "billing"] {
        let answer = app.put_namespace(ns, &json!({"schema": schema})).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    }
    let writes = [
        (
            "checkout",
            "",
            json!({"banner": "Winter sale", "limit": 40}),
        ),
        (
            "checkout",
            "tenant=acme",
            json!({"banner": "Acme winter sale", "api_key": "winter-secret"}),
        ),
        (
            "checkout",
            "tenant=globex",
            json!({"banner": "Globex winter"}),
        ),
        ("billing", "", json!({"banner": "Winter invoices"})),
    ];
    for (ns, scope, values) in writes {
        let answer = app.put_layer(ns, scope, &json!({"values": values})).await;
        assert!(answer.status.is_success(), "{}", answer.body);
    }

    // The admin finds values by their contents across namespaces and scopes,
    // sensitive ones included, and keys by name.
    let admin = app.get("/v1/search?q=WINTER").await;
    assert_eq!(admin.status, StatusCode::OK, "{}", admin.body);
    let admin_found = found(&admin);
    assert_eq!(admin_found.len(), 5, "{}", admin.body);
    assert!(admin_found.contains(&(
        "checkout".into(),
        json!({"tenant": "acme"}),
        "/api_key".into()
    )));
    assert_eq!(admin.body["truncated"], false);
    let by_key = app.get("/v1/search?q=limit").await;
    assert_eq!(
        found(&by_key),
        [("checkout".to_owned(), json!({}), "/limit".to_owned())]
    );
    assert_eq!(by_key.body["matches"][0]["value"], 40);
    assert_eq!(by_key.body["matches"][0]["revision"], 1);
    // Every word must match: key and value together.
    assert_eq!(found(&app.get("/v1/search?q=banner%20acme").await).len(), 1);

    // A viewer bound to one namespace and one tenant finds its own only, and
    // no sensitive value, not even through the words it holds.
    let viewer = token(
        &app,
        json!({"name": "v", "role": "viewer", "namespaces": ["checkout"], "tenant": "acme"}),
    )
    .await;
    let seen = get_as(&app, &viewer, "/v1/search?q=winter").await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    // Its own tenant's layer only: a tenant-bound role reads no other layer.
    assert_eq!(
        found(&seen),
        [(
            "checkout".to_owned(),
            json!({"tenant": "acme"}),
            "/banner".to_owned()
        )],
        "{}",
        seen.body
    );
    assert!(!seen.body.to_string().contains("winter-secret"));
    let secret = get_as(&app, &viewer, "/v1/search?q=secret").await;
    assert!(found(&secret).is_empty(), "{}", secret.body);

    // The limit truncates and says so.
    let limited = app.get("/v1/search?q=winter&limit=2").await;
    assert_eq!(found(&limited).len(), 2);
    assert_eq!(limited.body["truncated"], true);

    // Bad input names its field.
    for (path, field) in [
        ("/v1/search", "q"),
        ("/v1/search?q=%20%20", "q"),
        ("/v1/search?q=a&limit=0", "limit"),
        ("/v1/search?q=a&limit=x", "limit"),
    ] {
        let answer = app.get(path).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            answer.body
        );
        assert_eq!(answer.body["field"], field, "{path}: {}", answer.body);
    }
    let openapi = app.get("/v1/openapi.json").await;
    assert!(openapi.body["paths"]["/v1/search"]["get"].is_object());
}

#[tokio::test]
async fn a_tenants_timeline_lists_its_layer_changes_across_namespaces_newest_first() {
    let app = spawn_app().await;
    assert!(app.put_tenant("acme", "pro").await.status.is_success());
    assert!(app.put_tenant("globex", "pro").await.status.is_success());
    let schema = json!({"type": "object", "properties": {
        "banner": {"type": "string"},
        "api_key": {"type": "string", "x-sensitive": true},
    }});
    for ns in ["checkout", "billing"] {
        let answer = app.put_namespace(ns, &json!({"schema": schema})).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    }
    let writes = [
        ("checkout", "tenant=acme", json!({"banner": "one"})),
        ("billing", "tenant=acme&env=prod", json!({"banner": "two"})),
        (
            "checkout",
            "tenant=globex",
            json!({"banner": "other tenant"}),
        ),
        ("checkout", "", json!({"banner": "global"})),
        (
            "checkout",
            "tenant=acme",
            json!({"banner": "three", "api_key": "acme-secret"}),
        ),
    ];
    for (ns, scope, values) in writes {
        let answer = app
            .put_layer(
                ns,
                scope,
                &json!({"values": values, "message": format!("{ns} {scope}")}),
            )
            .await;
        assert!(answer.status.is_success(), "{}", answer.body);
    }
    let summary = |answer: &Answer| -> Vec<(String, Value, u64, String)> {
        answer.body["revisions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["namespace"].as_str().unwrap().to_owned(),
                    r["scope"].clone(),
                    r["revision"].as_u64().unwrap(),
                    r["values"]["banner"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };

    // Only acme's layers, every namespace, newest first.
    let all = app.get("/v1/tenants/acme/history").await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.body);
    assert_eq!(
        summary(&all),
        [
            (
                "checkout".to_owned(),
                json!({"tenant": "acme"}),
                2,
                "three".to_owned()
            ),
            (
                "billing".to_owned(),
                json!({"env": "prod", "tenant": "acme"}),
                1,
                "two".to_owned()
            ),
            (
                "checkout".to_owned(),
                json!({"tenant": "acme"}),
                1,
                "one".to_owned()
            ),
        ]
    );
    assert_eq!(all.body["revisions"][0]["values"]["api_key"], "acme-secret");
    assert_eq!(all.body["revisions"][0]["message"], "checkout tenant=acme");
    assert!(all.body["next_cursor"].is_null());

    // Pages follow each other without a gap or a repeat.
    let first = app.get("/v1/tenants/acme/history?limit=2").await;
    assert_eq!(summary(&first), summary(&all)[..2]);
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let second = app
        .get(&format!("/v1/tenants/acme/history?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(summary(&second), summary(&all)[2..]);
    assert!(second.body["next_cursor"].is_null());

    // A viewer of one namespace sees that namespace's changes, masked; a
    // role bound to another tenant does not learn the tenant exists.
    let viewer = token(
        &app,
        json!({"name": "v", "role": "viewer", "namespaces": ["checkout"]}),
    )
    .await;
    let seen = get_as(&app, &viewer, "/v1/tenants/acme/history").await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    assert_eq!(
        summary(&seen),
        [summary(&all)[0].clone(), summary(&all)[2].clone()]
    );
    assert_eq!(seen.body["revisions"][0]["values"]["api_key"], "***");
    let globex_admin = token(
        &app,
        json!({"name": "g", "role": "tenant-admin", "tenant": "globex"}),
    )
    .await;
    let hidden = get_as(&app, &globex_admin, "/v1/tenants/acme/history").await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND, "{}", hidden.body);
    assert_eq!(
        app.get("/v1/tenants/nobody/history").await.status,
        StatusCode::NOT_FOUND
    );

    for (path, field) in [
        ("/v1/tenants/acme/history?limit=0", "limit"),
        ("/v1/tenants/acme/history?cursor=zz", "cursor"),
    ] {
        let answer = app.get(path).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            answer.body
        );
        assert_eq!(answer.body["field"], field, "{path}: {}", answer.body);
    }
}

fn fixture(name: &str) -> String {
    format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn auth_config_names_the_oidc_issuer_for_studio_without_a_credential() {
    // Without an OIDC client id, only tokens sign in.
    let plain = spawn_app().await;
    let response = get_raw(&plain, "/v1/auth/config").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({ "oidc": null })
    );
    let csp = get_raw(&plain, "/studio/").await.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("connect-src 'self';"), "{csp}");

    let app = spawn_app_with(|s| {
        s.jwt_jwks_file = Some(fixture("jwks.json"));
        s.jwt_issuer = Some("https://idp.example.test:8443/realms/ecs".into());
        s.oidc_client_id = Some("ecs-studio".into());
        s.oidc_scopes = "openid profile".into();
    })
    .await;
    let response = get_raw(&app, "/v1/auth/config").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({ "oidc": {
            "issuer": "https://idp.example.test:8443/realms/ecs",
            "client_id": "ecs-studio",
            "scopes": "openid profile",
        } })
    );
    // Studio may fetch from the issuer's origin (discovery, token), and from
    // nowhere else.
    let csp = get_raw(&app, "/studio/").await.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("connect-src 'self' https://idp.example.test:8443;"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe"), "{csp}");

    // Bad input is a 400 naming the parameter.
    let refused = get_raw(&app, "/v1/auth/config?client=x").await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(
        refused.text().await.unwrap().contains("client"),
        "the problem names the parameter"
    );

    let doc = app.get("/v1/openapi.json").await;
    assert!(
        doc.body["paths"]["/v1/auth/config"]["get"].is_object(),
        "{}",
        doc.body["paths"]
    );
}

#[test]
fn an_oidc_client_id_needs_an_issuer_url_and_its_keys() {
    let mut settings = ecs_api::Settings {
        oidc_client_id: Some("ecs-studio".into()),
        ..ecs_api::Settings::default()
    };
    let error = settings.validate().unwrap_err().to_string();
    assert!(error.contains("ECS_OIDC_CLIENT_ID"), "{error}");
    settings.jwt_issuer = Some("not a url".into());
    settings.jwt_jwks_file = Some(fixture("jwks.json"));
    assert!(settings.validate().is_err());
    settings.jwt_issuer = Some("https://idp.example.test".into());
    settings.validate().unwrap();
}
