//! Sealing and erasure: the store's encryption framing lives outside user
//! data, so any JSON a client sends round-trips exactly; and an erasure leaves
//! nothing of the tenant readable — not in the streams, the tables, the feed
//! or a running SDK — and no credential or key with which to write it again.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull::OrderedConfig};
use ecs_client::{Client, ClientError, ClientSettings, Context};
use ecs_commands::EventMessage;
use ecs_commands::keyring::Keyring;
use ecs_commands::store::subject;
use ecs_domain::layer::layer_id;
use ecs_domain::{Layer, NamespaceName, Scope, Tenant, TenantId};
use ecs_tests::app::{Answer, TestApp, spawn_app};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

/// Values that look like the store's own framing, at the top and nested.
fn look_alikes() -> Value {
    json!({
        "$sealed": 1,
        "$erased": true,
        "$anything": ["x", {"$sealed": "y"}],
        "nested": {"$sealed": {"v": 1, "tenant": "acme", "nonce": "AAAA", "ct": "AAAA"}},
        "list": [{"$sealed": {"tenant": "nobody"}}, {"$erased": true}],
        "text": "$sealed:{\"$sealed\": {}}"
    })
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

async fn issue(app: &TestApp, body: Value) -> String {
    let answer = app.post("/v1/tokens", &body).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    answer.body["token"].as_str().unwrap().to_owned()
}

/// Waits until `probe` holds, or fails naming `what`.
async fn eventually<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if probe().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn values_that_look_like_the_envelope_round_trip_everywhere() {
    let app = spawn_app().await;
    let values = look_alikes();
    let name = "$sealed:{\"$sealed\": {\"v\": 1}}";
    assert!(
        app.put_namespace("ns", &json!({"schema": {"type": "object"}}))
            .await
            .status
            .is_success()
    );
    let tenant = app
        .put("/v1/tenants/acme", &json!({"edition": "pro", "name": name}))
        .await;
    assert!(tenant.status.is_success(), "{}", tenant.body);

    for scope in ["", "tenant=acme"] {
        let written = app
            .put_layer(
                "ns",
                scope,
                &json!({"values": values, "message": "$sealed"}),
            )
            .await;
        assert_eq!(
            written.status,
            StatusCode::CREATED,
            "{scope}: {}",
            written.body
        );
        let read = app.get_layer("ns", scope).await;
        assert_eq!(read.status, StatusCode::OK, "{scope}: {}", read.body);
        assert_eq!(read.body["values"], values, "{scope}");
        let history = app.history("ns", scope).await;
        assert_eq!(history.status, StatusCode::OK, "{scope}: {}", history.body);
        assert_eq!(history.body["revisions"][0]["values"], values, "{scope}");
    }
    let resolved = app.resolved("ns", "tenant=acme").await;
    assert_eq!(resolved.status, StatusCode::OK, "{}", resolved.body);
    assert_eq!(resolved.body["values"], values);
    let shown = app.get("/v1/tenants/acme").await;
    assert_eq!(shown.body["name"], name, "{}", shown.body);

    // The feed, through the SDK.
    let client = Client::connect(ClientSettings::new(app.nats.url(), ["ns"]).unwrap())
        .await
        .unwrap();
    let acme = Context::from_pairs([("tenant", "acme")]).unwrap();
    assert_eq!(
        client.resolve("ns", &Context::default()).unwrap().values,
        values
    );
    assert_eq!(client.resolve("ns", &acme).unwrap().values, values);
    client.close();

    // A change request holding look-alikes, approved by another principal. The
    // policy comes now: it covers every layer that reaches prod, the global
    // and tenant layers written above included.
    let governed = json!({"schema": {"type": "object"}, "approval": {"scopes": [{"env": "prod"}]}});
    assert!(app.put_namespace("ns", &governed).await.status.is_success());
    let opened = app
        .put_layer(
            "ns",
            "env=prod&tenant=acme",
            &json!({"values": values, "message": "$erased"}),
        )
        .await;
    assert_eq!(opened.status, StatusCode::ACCEPTED, "{}", opened.body);
    let id = opened.body["change_request"].as_str().unwrap().to_owned();
    let request = app.get(&format!("/v1/change-requests/{id}")).await;
    assert_eq!(request.status, StatusCode::OK, "{}", request.body);
    assert_eq!(request.body["change"]["values"], values, "{}", request.body);
    let editor = issue(
        &app,
        json!({"name": "e", "role": "editor", "namespaces": ["ns"]}),
    )
    .await;
    let approved = as_(
        &app,
        &editor,
        Method::POST,
        &format!("/v1/change-requests/{id}/approve"),
        Some(json!({})),
    )
    .await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.body);
    assert_eq!(
        app.get_layer("ns", "env=prod&tenant=acme").await.body["values"],
        values
    );

    // Later writes to the same layers (the policy lifted) still succeed, and
    // read back exactly.
    let open = json!({"schema": {"type": "object"}});
    assert!(app.put_namespace("ns", &open).await.status.is_success());
    for scope in ["", "tenant=acme"] {
        let patched = app
            .patch(
                &format!("/v1/namespaces/ns/layer?{scope}"),
                &json!({"values": {"$sealed": {"tenant": "acme"}}}),
            )
            .await;
        assert_eq!(patched.status, StatusCode::OK, "{scope}: {}", patched.body);
        let mut expected = values.clone();
        expected["$sealed"] = json!({"tenant": "acme"});
        assert_eq!(app.get_layer("ns", scope).await.body["values"], expected);
    }

    // A rebuild replays the stream into the same tables.
    let before = app.dump_projections().await;
    assert_eq!(
        app.post("/v1/admin/projections/rebuild", &json!({}))
            .await
            .status,
        StatusCode::ACCEPTED
    );
    app.wait_ready().await;
    eventually("the rebuild to finish", || async {
        app.dump_projections().await == before
    })
    .await;
}

const NAME: &str = "tenant-name-4471";
const VALUE: &str = "tenant-value-4472";
const LAYER_MESSAGE: &str = "layer-message-4473";
const TOKEN_NAME: &str = "token-name-4474";
const REQUEST_ID: &str = "request-id-4475";
const PROPOSAL: &str = "proposal-message-4476";
const REASON: &str = "rejection-reason-4477";
const REFUSED_REQUEST: &str = "refused-request-4478";
const REFUSED_VALUE: &str = "refused-value-4479";
const MARKERS: [&str; 9] = [
    NAME,
    VALUE,
    LAYER_MESSAGE,
    TOKEN_NAME,
    REQUEST_ID,
    PROPOSAL,
    REASON,
    REFUSED_REQUEST,
    REFUSED_VALUE,
];

/// Every stored message of a stream, payload and headers, as text.
async fn raw_stream(js: &jetstream::Context, name: &str) -> String {
    let mut stream = js.get_stream(name).await.unwrap();
    let info = stream.info().await.unwrap();
    let (first, last) = (info.state.first_sequence, info.state.last_sequence);
    let mut text = String::new();
    if info.state.messages == 0 {
        return text;
    }
    let consumer = stream
        .create_consumer(OrderedConfig {
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let _ = first;
    loop {
        let message = tokio::time::timeout(WAIT, messages.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(&message.subject);
        if let Some(headers) = &message.headers {
            text.push_str(&format!("{headers:?}"));
        }
        text.push_str(&String::from_utf8_lossy(&message.payload));
        text.push('\n');
        if message.info().unwrap().stream_sequence >= last {
            break;
        }
    }
    text
}

/// Every row of every table of the database, as text.
async fn every_table(app: &TestApp) -> String {
    let pool = app.db.pool().await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name)
         FROM information_schema.tables
         WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
           AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(tables.len() > 5, "{tables:?}");
    let mut text = String::new();
    for table in tables {
        let rows: Vec<String> = match sqlx::query_scalar(&format!("SELECT t::text FROM {table} t"))
            .fetch_all(&pool)
            .await
        {
            Ok(rows) => rows,
            // Dropped since it was listed (a rebuild removing its shadow
            // tables): nothing in it is readable any more.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => continue,
            Err(e) => panic!("cannot read {table}: {e}"),
        };
        text.push_str(&format!("{table}: {}\n", rows.join("\n")));
    }
    pool.close().await;
    text
}

fn assert_clean(place: &str, text: &str) {
    for marker in MARKERS {
        assert!(
            !text.contains(marker),
            "{place} still holds {marker}: {}",
            &text[text.find(marker).unwrap().saturating_sub(300)..]
                .chars()
                .take(600)
                .collect::<String>()
        );
    }
}

#[tokio::test]
async fn erasure_leaves_nothing_of_the_tenant_readable_or_writable() {
    let app = spawn_app().await;
    assert!(
        app.put_namespace(
            "crm",
            &json!({"schema": {"type": "object", "properties": {"age": {"type": "integer"}}}})
        )
        .await
        .status
        .is_success()
    );
    let defined = app
        .put(
            "/v1/tenants/acme",
            &json!({"edition": "pro", "name": format!("Acme {NAME}")}),
        )
        .await;
    assert!(defined.status.is_success(), "{}", defined.body);
    assert!(app.put_tenant("globex", "pro").await.status.is_success());
    let written = app
        .send(
            app.request(Method::PUT, "/v1/namespaces/crm/layer?tenant=acme")
                .header("x-request-id", REQUEST_ID)
                .header("x-correlation-id", REQUEST_ID)
                .json(&json!({"values": {"contact": VALUE}, "message": LAYER_MESSAGE})),
        )
        .await;
    assert_eq!(written.status, StatusCode::CREATED, "{}", written.body);
    assert!(
        app.put_layer(
            "crm",
            "tenant=globex",
            &json!({"values": {"contact": "globex"}})
        )
        .await
        .status
        .is_success()
    );
    // The policy comes after the tenants' own layers, which reach prod too.
    let governed = json!({"schema": {"type": "object", "properties": {"age": {"type": "integer"}}},
                          "approval": {"scopes": [{"env": "prod"}]}});
    assert!(
        app.put_namespace("crm", &governed)
            .await
            .status
            .is_success()
    );
    let tenant_admin = issue(
        &app,
        json!({"name": TOKEN_NAME, "role": "tenant-admin", "tenant": "acme"}),
    )
    .await;
    let editor = issue(
        &app,
        json!({"name": format!("{TOKEN_NAME}-editor"), "role": "editor", "namespaces": ["crm"], "tenant": "acme"}),
    )
    .await;
    // A change request of the tenant, proposed and rejected.
    let opened = as_(
        &app,
        &editor,
        Method::PUT,
        "/v1/namespaces/crm/layer?env=prod&tenant=acme",
        Some(json!({"values": {"contact": format!("{VALUE}-prod")}, "message": PROPOSAL})),
    )
    .await;
    assert_eq!(opened.status, StatusCode::ACCEPTED, "{}", opened.body);
    let id = opened.body["change_request"].as_str().unwrap().to_owned();
    let rejected = app
        .post(
            &format!("/v1/change-requests/{id}/reject"),
            &json!({"reason": REASON}),
        )
        .await;
    assert_eq!(rejected.status, StatusCode::OK, "{}", rejected.body);
    // A refused attempt by the tenant's key, recorded in the audit log.
    let refused = app
        .send(
            app.client
                .put(format!("{}/v1/namespaces/other", app.address))
                .bearer_auth(&tenant_admin)
                .header("x-request-id", REFUSED_REQUEST)
                .json(&json!({"schema": {"type": "object"}})),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    // And a refused write whose reason quotes what the tenant sent.
    let invalid = as_(
        &app,
        &editor,
        Method::PUT,
        "/v1/namespaces/crm/layer?tenant=acme",
        Some(json!({"values": {}, REFUSED_VALUE: 1})),
    )
    .await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST, "{}", invalid.body);
    eventually("the refusals in the audit log", || async {
        let refusals = app.get("/v1/audit?outcome=refused").await.body.to_string();
        refusals.contains(REFUSED_REQUEST) && refusals.contains(REFUSED_VALUE)
    })
    .await;

    // A service following the tenant, with a cache file.
    let cache = tempfile::tempdir().unwrap();
    let cache_path = cache.path().join("ecs-cache.json");
    let mut settings = ClientSettings::new(app.nats.url(), ["crm"]).unwrap();
    settings.cache_path = Some(cache_path.clone());
    let client = Client::connect(settings).await.unwrap();
    let acme = Context::from_pairs([("tenant", "acme")]).unwrap();
    // And one following the feed over HTTP.
    let over_http = Client::connect(
        ClientSettings::over_http(&app.address, ecs_tests::app::ADMIN_TOKEN, ["crm"]).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(
        over_http.resolve("crm", &acme).unwrap().values["contact"],
        VALUE
    );
    assert_eq!(
        client.resolve("crm", &acme).unwrap().values["contact"],
        VALUE
    );
    eventually("the cache file", || async {
        std::fs::read_to_string(&cache_path).is_ok_and(|t| t.contains(VALUE))
    })
    .await;

    // The tenant's data is sealed in the streams before the erasure already.
    let nats = async_nats::connect(app.nats.url()).await.unwrap();
    let js = jetstream::new(nats);
    assert_clean("the events stream", &raw_stream(&js, "ECS_EVENTS").await);
    assert_clean("the audit stream", &raw_stream(&js, "ECS_AUDIT").await);

    let erased = app.post("/v1/tenants/acme/erase", &json!({})).await;
    assert_eq!(erased.status, StatusCode::OK, "{}", erased.body);

    // The tenant's keys no longer open anything.
    for token in [&tenant_admin, &editor] {
        let answer = as_(&app, token, Method::GET, "/v1/tenants/acme", None).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
    }
    // Nobody writes new data for the tenant: no layer, no key, no tenant.
    let write = app
        .put_layer("crm", "tenant=acme", &json!({"values": {"contact": "new"}}))
        .await;
    assert!(
        write.status.is_client_error(),
        "{}: {}",
        write.status,
        write.body
    );
    let reissued = app
        .post(
            "/v1/tokens",
            &json!({"name": "again", "role": "tenant-admin", "tenant": "acme"}),
        )
        .await;
    assert_eq!(reissued.status, StatusCode::GONE, "{}", reissued.body);
    assert_eq!(reissued.body["code"], "tenant-erased", "{}", reissued.body);
    assert_eq!(app.put_tenant("acme", "pro").await.status, StatusCode::GONE);

    // The running SDK forgets the tenant, and its cache file too.
    eventually("the SDK to forget the tenant", || async {
        matches!(
            client.resolve("crm", &acme),
            Err(ClientError::TenantNotFound(_))
        )
    })
    .await;
    eventually("the SDK over HTTP to forget the tenant", || async {
        matches!(
            over_http.resolve("crm", &acme),
            Err(ClientError::TenantNotFound(_))
        )
    })
    .await;
    over_http.close();
    let late = Client::connect(
        ClientSettings::over_http(&app.address, ecs_tests::app::ADMIN_TOKEN, ["crm"]).unwrap(),
    )
    .await
    .unwrap();
    assert!(
        matches!(
            late.resolve("crm", &acme),
            Err(ClientError::TenantNotFound(_))
        ),
        "a client started after the erasure never holds the tenant"
    );
    late.close();
    eventually("the cache file without the tenant", || async {
        std::fs::read_to_string(&cache_path)
            .is_ok_and(|t| MARKERS.iter().all(|m| !t.contains(m)) && !t.contains("tenant.acme"))
    })
    .await;
    assert!(
        client
            .resolve("crm", &Context::from_pairs([("tenant", "globex")]).unwrap())
            .is_ok()
    );
    client.close();

    // Nothing of the tenant is readable: streams, feed bucket, every table.
    eventually("the audit projection to settle", || async {
        !every_table(&app).await.contains(REFUSED_REQUEST)
    })
    .await;
    assert_clean("the events stream", &raw_stream(&js, "ECS_EVENTS").await);
    assert_clean("the audit stream", &raw_stream(&js, "ECS_AUDIT").await);
    assert_clean("the feed bucket", &raw_stream(&js, "KV_ecs-feed").await);
    assert_clean(
        "the key bucket",
        &raw_stream(&js, "KV_ecs-tenant-keys").await,
    );
    assert_clean("the tables", &every_table(&app).await);

    // And a rebuild from the stream brings none of it back: it builds the
    // same tables the erasure left.
    let incremental = app.dump_projections().await;
    assert_eq!(
        app.post("/v1/admin/projections/rebuild", &json!({}))
            .await
            .status,
        StatusCode::ACCEPTED
    );
    app.wait_ready().await;
    eventually("the rebuild to replay the tenant's layers", || async {
        app.get_layer("crm", "tenant=globex").await.status == StatusCode::OK
    })
    .await;
    assert_clean("the rebuilt tables", &every_table(&app).await);
    assert_eq!(incremental, app.dump_projections().await);
    let tokens = app.get("/v1/tokens").await;
    assert_clean("the token list", &tokens.body.to_string());
}

/// Publishes one message of format version 1 (as main wrote them) directly.
async fn publish_v1(js: &jetstream::Context, subject: String, message: &EventMessage<Value>) {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", message.command_id.as_str());
    js.publish_with_headers(
        subject,
        headers,
        serde_json::to_vec(message).unwrap().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
}

fn v1(aggregate_type: &str, aggregate_id: &str, event: Value) -> EventMessage<Value> {
    EventMessage {
        v: 1,
        command_id: uuid::Uuid::now_v7().to_string(),
        aggregate_type: aggregate_type.to_owned(),
        aggregate_id: aggregate_id.to_owned(),
        revision: 1,
        at: time::OffsetDateTime::now_utc(),
        actor: "admin".to_owned(),
        events: vec![event],
        metadata: Default::default(),
        sealed: None,
    }
}

#[tokio::test]
async fn messages_of_format_1_are_still_read_and_their_look_alikes_are_data() {
    let app = spawn_app().await;
    assert!(
        app.put_namespace("ns", &json!({"schema": {"type": "object"}}))
            .await
            .status
            .is_success()
    );
    assert!(app.put_tenant("acme", "pro").await.status.is_success());
    let nats = async_nats::connect(app.nats.url()).await.unwrap();
    let js = jetstream::new(nats);
    let keyring = Keyring::connect(&js, app.settings.master_key.as_deref(), 1)
        .await
        .unwrap();
    // Format 1 sealed in place, without associated data.
    let legacy = |sealed: ecs_domain::sealed::Sealed| json!({"$sealed": {"v": 1, "tenant": sealed.tenant, "nonce": sealed.nonce, "ct": sealed.ct}});
    let layer_event = |scope: Value, values: Value| {
        json!({"LayerChanged": {"namespace": "ns", "scope": scope, "revision": 1,
            "values": values, "lock": [], "message": "v1", "change": {"kind": "replaced"}}})
    };
    let acme = TenantId::parse("acme").unwrap();
    let sealed = keyring
        .seal(&acme, br#"{"contact": "legacy"}"#, b"")
        .await
        .unwrap();
    let ns = NamespaceName::parse("ns").unwrap();
    let tenant_scope = Scope::from_pairs([("tenant", "acme")]).unwrap();
    let tenant_layer = layer_id(&ns, &tenant_scope);
    publish_v1(
        &js,
        subject::<Layer>(&tenant_layer),
        &v1(
            "layer",
            &tenant_layer,
            layer_event(json!({"tenant": "acme"}), legacy(sealed)),
        ),
    )
    .await;
    // What format 1 could not project: a client's look-alike at global scope.
    let global_layer = layer_id(&ns, &Scope::default());
    publish_v1(
        &js,
        subject::<Layer>(&global_layer),
        &v1(
            "layer",
            &global_layer,
            layer_event(json!({}), json!({"$sealed": 1})),
        ),
    )
    .await;
    let initech = TenantId::parse("initech").unwrap();
    let name = keyring.seal(&initech, br#""Initech""#, b"").await.unwrap();
    publish_v1(
        &js,
        subject::<Tenant>("initech"),
        &v1(
            "tenant",
            "initech",
            json!({"TenantDefined": {"id": "initech", "revision": 1, "edition": "pro",
                "name": format!("$sealed:{}", legacy(name))}}),
        ),
    )
    .await;

    eventually("the format 1 messages to be projected", || async {
        app.get_layer("ns", "").await.status == StatusCode::OK
            && app.get_layer("ns", "tenant=acme").await.status == StatusCode::OK
            && app.get("/v1/tenants/initech").await.status == StatusCode::OK
    })
    .await;
    assert_eq!(
        app.get_layer("ns", "tenant=acme").await.body["values"],
        json!({"contact": "legacy"})
    );
    assert_eq!(
        app.get_layer("ns", "").await.body["values"],
        json!({"$sealed": 1})
    );
    assert_eq!(app.get("/v1/tenants/initech").await.body["name"], "Initech");

    // The aggregates load from those messages: later writes succeed.
    for scope in ["", "tenant=acme"] {
        let patched = app
            .patch(
                &format!("/v1/namespaces/ns/layer?{scope}"),
                &json!({"values": {"more": 1}}),
            )
            .await;
        assert_eq!(patched.status, StatusCode::OK, "{scope}: {}", patched.body);
        assert_eq!(patched.revision(), 2);
    }
    assert_eq!(
        app.get_layer("ns", "").await.body["values"],
        json!({"$sealed": 1, "more": 1})
    );
    assert_eq!(
        app.get_layer("ns", "tenant=acme").await.body["values"],
        json!({"contact": "legacy", "more": 1})
    );
}
