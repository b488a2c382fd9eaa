//! GDPR: a tenant's data exported as one archive, and erased everywhere — the
//! API, every projection, the feed, and replays of the immutable stream.

#![allow(clippy::unwrap_used)]

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull::OrderedConfig};
use ecs_commands::keyring::Keyring;
use ecs_tests::app::{TestApp, spawn_app};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ACME_MARKER: &str = "acme-personal-data-5521";
const GLOBEX_MARKER: &str = "globex-personal-data-8830";

async fn seed(app: &TestApp) {
    assert!(
        app.put_namespace("crm", &json!({"schema": {"type": "object"}}))
            .await
            .status
            .is_success()
    );
    assert!(
        app.put(
            "/v1/tenants/acme",
            &json!({"edition": "pro", "name": format!("Acme {ACME_MARKER}")})
        )
        .await
        .status
        .is_success()
    );
    assert!(app.put_tenant("globex", "pro").await.status.is_success());
    for (scope, values) in [
        ("", json!({"greeting": "hello"})),
        ("tenant=acme", json!({"contact": ACME_MARKER})),
        (
            "env=prod&tenant=acme",
            json!({"contact": format!("{ACME_MARKER}-prod")}),
        ),
        ("tenant=globex", json!({"contact": GLOBEX_MARKER})),
    ] {
        let answer = app
            .put_layer("crm", scope, &json!({"values": values, "message": "seed"}))
            .await;
        assert!(answer.status.is_success(), "{}", answer.body);
    }
    let patch = app
        .patch(
            "/v1/namespaces/crm/layer?tenant=acme",
            &json!({"values": {"phone": format!("{ACME_MARKER}-phone")}}),
        )
        .await;
    assert!(patch.status.is_success());
}

async fn token(app: &TestApp, body: Value) -> String {
    let answer = app.post("/v1/tokens", &body).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    answer.body["token"].as_str().unwrap().to_owned()
}

async fn get_as(app: &TestApp, token: &str, path: &str) -> ecs_tests::app::Answer {
    app.send(
        app.client
            .request(Method::GET, format!("{}{path}", app.address))
            .bearer_auth(token),
    )
    .await
}

/// Every message payload of the events stream, raw and opened with the keys.
async fn stream_texts(app: &TestApp) -> (String, String) {
    let client = async_nats::connect(app.nats.url()).await.unwrap();
    let js = jetstream::new(client);
    let keyring = Keyring::connect(&js, app.settings.master_key.as_deref(), 1)
        .await
        .unwrap();
    let mut stream = js.get_stream("ECS_EVENTS").await.unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let consumer = stream
        .create_consumer(OrderedConfig {
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let (mut raw, mut opened) = (String::new(), String::new());
    for _ in 0..last {
        let message = messages.next().await.unwrap().unwrap();
        raw.push_str(&String::from_utf8_lossy(&message.payload));
        let (decoded, _) = ecs_commands::message::read_message(&message.payload, Some(&keyring))
            .await
            .unwrap();
        opened.push_str(&serde_json::to_string(&decoded).unwrap());
    }
    (raw, opened)
}

async fn feed_keys(app: &TestApp) -> Vec<String> {
    let client = async_nats::connect(app.nats.url()).await.unwrap();
    let js = jetstream::new(client);
    let store = js.get_key_value("ecs-feed").await.unwrap();
    let mut keys = store.keys().await.unwrap();
    let mut out = vec![];
    while let Some(key) = keys.next().await {
        out.push(key.unwrap());
    }
    out
}

#[tokio::test]
async fn export_holds_everything_about_a_tenant_and_nothing_about_others() {
    let app = spawn_app().await;
    seed(&app).await;
    let export = app.get("/v1/tenants/acme/export").await;
    assert_eq!(export.status, StatusCode::OK, "{}", export.body);
    let text = export.body.to_string();
    assert!(text.contains(ACME_MARKER));
    assert!(!text.contains(GLOBEX_MARKER));
    assert_eq!(export.body["layers"].as_array().unwrap().len(), 2);
    assert_eq!(export.body["layer_history"].as_array().unwrap().len(), 3);
    assert!(!export.body["audit"].as_array().unwrap().is_empty());
    assert_eq!(export.body["tenant"][0]["id"], "acme");

    let acme_admin = token(
        &app,
        json!({"name": "a", "role": "tenant-admin", "tenant": "acme"}),
    )
    .await;
    let globex_admin = token(
        &app,
        json!({"name": "g", "role": "tenant-admin", "tenant": "globex"}),
    )
    .await;
    let viewer = token(
        &app,
        json!({"name": "v", "role": "viewer", "namespaces": ["crm"]}),
    )
    .await;
    assert_eq!(
        get_as(&app, &acme_admin, "/v1/tenants/acme/export")
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        get_as(&app, &globex_admin, "/v1/tenants/acme/export")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get_as(&app, &viewer, "/v1/tenants/acme/export")
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get("/v1/tenants/nobody/export").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn tenant_data_is_encrypted_in_the_immutable_stream() {
    let app = spawn_app().await;
    seed(&app).await;
    let (raw, opened) = stream_texts(&app).await;
    assert!(
        !raw.contains(ACME_MARKER),
        "tenant values must not be plaintext in the stream"
    );
    assert!(!raw.contains(GLOBEX_MARKER));
    assert!(raw.contains("hello"), "global values are not tenant data");
    assert!(opened.contains(ACME_MARKER), "the tenant's key opens them");
}

#[tokio::test]
async fn after_erase_no_value_of_the_tenant_can_be_read_anywhere() {
    let app = spawn_app().await;
    seed(&app).await;
    assert!(feed_keys(&app).await.iter().any(|k| k.contains(".acme.")));
    let viewer = token(
        &app,
        json!({"name": "v", "role": "editor", "namespaces": ["crm"], "tenant": "acme"}),
    )
    .await;

    let tenant_admin = token(
        &app,
        json!({"name": "a", "role": "tenant-admin", "tenant": "acme"}),
    )
    .await;
    let denied = app
        .send(
            app.client
                .post(format!("{}/v1/tenants/acme/erase", app.address))
                .bearer_auth(&tenant_admin),
        )
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN, "only an admin erases");

    let erased = app.post("/v1/tenants/acme/erase", &json!({})).await;
    assert_eq!(erased.status, StatusCode::OK, "{}", erased.body);
    assert_eq!(erased.body["erased"], "acme");

    // The API.
    let mut bodies = vec![];
    for path in [
        "/v1/namespaces/crm/layer?tenant=acme",
        "/v1/namespaces/crm/layer?env=prod&tenant=acme",
        "/v1/namespaces/crm/layer/history?tenant=acme",
        "/v1/namespaces/crm/layer/history?env=prod&tenant=acme",
        "/v1/namespaces/crm/resolved?tenant=acme",
        "/v1/namespaces/crm/resolved?env=prod&tenant=acme&explain=true",
        "/v1/tenants/acme",
        "/v1/tenants",
        "/v1/tenants/acme/export",
        "/v1/audit?tenant=acme",
        "/v1/audit/export?tenant=acme",
        "/v1/change-requests",
    ] {
        let answer = app.get(path).await;
        assert!(answer.status.as_u16() < 500, "{path}: {}", answer.status);
        bodies.push(format!("{path}: {}", answer.body));
    }
    let resolved = app.resolved("crm", "tenant=acme").await;
    assert_eq!(
        resolved.status,
        StatusCode::NOT_FOUND,
        "an erased tenant does not resolve"
    );
    let history = app.history("crm", "tenant=acme").await;
    assert_eq!(
        history.body["revisions"].as_array().unwrap().len(),
        2,
        "what was erased stays visible"
    );
    assert_eq!(
        history.body["revisions"][0]["values"],
        json!({"$erased": true})
    );
    let audit = app.get("/v1/audit?tenant=acme&action=tenant.erased").await;
    assert_eq!(
        audit.body["entries"].as_array().unwrap().len(),
        1,
        "{}",
        audit.body
    );
    assert_eq!(audit.body["entries"][0]["actor"], "admin");
    let as_editor = get_as(&app, &viewer, "/v1/namespaces/crm/layer?tenant=acme").await;
    bodies.push(as_editor.body.to_string());
    for body in &bodies {
        assert!(!body.contains(ACME_MARKER), "erased data readable: {body}");
    }
    assert!(
        bodies.iter().any(|b| b.contains(GLOBEX_MARKER))
            || app
                .get_layer("crm", "tenant=globex")
                .await
                .body
                .to_string()
                .contains(GLOBEX_MARKER)
    );

    // No further use of the tenant.
    let write = app
        .put_layer("crm", "tenant=acme", &json!({"values": {"contact": "new"}}))
        .await;
    assert_eq!(write.status, StatusCode::NOT_FOUND, "{}", write.body);
    let redefine = app.put_tenant("acme", "pro").await;
    assert_eq!(redefine.status, StatusCode::GONE, "{}", redefine.body);

    // The feed, the stream replayed, and the projections rebuilt from it.
    let feed = feed_keys(&app).await;
    assert!(
        !feed
            .iter()
            .any(|k| k.contains(".acme.") || k == "tenant.acme"),
        "{feed:?}"
    );
    let (raw, opened) = stream_texts(&app).await;
    assert!(
        !raw.contains(ACME_MARKER) && !opened.contains(ACME_MARKER),
        "a replay cannot read erased values"
    );
    assert!(
        opened.contains(GLOBEX_MARKER),
        "other tenants are untouched"
    );
    let before = app.dump_projections().await.to_string();
    assert!(!before.contains(ACME_MARKER));
    app.rebuild_projections().await;
    let rebuilt = app.dump_projections().await.to_string();
    assert!(!rebuilt.contains(ACME_MARKER));
    assert!(rebuilt.contains(GLOBEX_MARKER));
    let audit_rows = app
        .get("/v1/audit/export?tenant=acme")
        .await
        .body
        .to_string();
    assert!(!audit_rows.contains(ACME_MARKER));
}
