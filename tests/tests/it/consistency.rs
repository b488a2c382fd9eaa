//! Consistency guarantees: optimistic concurrency, idempotent retries,
//! rebuilt projections equal incremental ones, the past equals a replay, and
//! a restart loses nothing.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull::OrderedConfig};
use ecs_commands::{CommandBus, CommandMeta, EventMessage};
use ecs_domain::layer::layer_id;
use ecs_domain::ports::MemoryConfig;
use ecs_domain::{
    Layer, LayerAction, LayerCommand, LayerState, NamespaceName, Precedence, Scope, Services,
    resolve,
};
use ecs_projections::ReadModel;
use ecs_tests::app::{TestApp, spawn_app};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn seed(app: &TestApp) {
    let schema = json!({"type": "object", "properties": {
        "limit": {"type": "integer", "default": 1},
        "flags": {"type": "object"}
    }});
    assert!(
        app.put_namespace("billing", &json!({"schema": schema}))
            .await
            .status
            .is_success()
    );
    assert!(app.put_tenant("acme", "pro").await.status.is_success());
    assert!(app.put_tenant("globex", "free").await.status.is_success());
}

#[tokio::test]
async fn two_writers_with_the_same_if_match_one_wins_the_other_gets_412() {
    let app = spawn_app().await;
    seed(&app).await;
    let first = app
        .put_layer("billing", "", &json!({"values": {"limit": 1}}))
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    for round in 1..=10u64 {
        let write = |n: u64| {
            app.send(
                app.request(Method::PUT, "/v1/namespaces/billing/layer")
                    .header("If-Match", format!("\"{round}\""))
                    .json(&json!({"values": {"limit": n}})),
            )
        };
        let (a, b) = tokio::join!(write(100 + round), write(200 + round));
        let mut statuses = [a.status, b.status];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::PRECONDITION_FAILED],
            "round {round}: {} / {}",
            a.body,
            b.body
        );
        let loser = if a.status == StatusCode::OK { &b } else { &a };
        assert_eq!(loser.code(), "stale-revision");
    }
    let history = app.history("billing", "").await;
    let revisions: Vec<u64> = history.body["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["revision"].as_u64().unwrap())
        .collect();
    assert_eq!(
        revisions,
        (1..=11).collect::<Vec<_>>(),
        "every accepted write is in history, in order"
    );
}

#[tokio::test]
async fn a_retried_write_with_the_same_idempotency_key_produces_one_revision() {
    let app = spawn_app().await;
    seed(&app).await;
    let patch = |key: &'static str| {
        app.send(
            app.request(Method::PATCH, "/v1/namespaces/billing/layer?tenant=acme")
                .header("Idempotency-Key", key)
                .json(&json!({"values": {"flags": {"n": 1}}, "message": "retry me"})),
        )
    };
    // Sequential retries answer with the original outcome.
    let a = patch("key-1").await;
    let b = patch("key-1").await;
    let c = patch("key-1").await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    for retry in [&b, &c] {
        assert!(retry.status.is_success(), "{}", retry.body);
        assert_eq!(
            (retry.revision(), retry.position()),
            (a.revision(), a.position())
        );
        assert_eq!(retry.body["duplicate"], json!(true));
    }
    // Concurrent retries too.
    let (d, e) = tokio::join!(patch("key-2"), patch("key-2"));
    assert!(
        d.status.is_success() && e.status.is_success(),
        "{} / {}",
        d.body,
        e.body
    );
    assert_eq!((d.revision(), d.position()), (e.revision(), e.position()));
    // A retried conditional write is not refused as stale by its own success.
    let cond = |key: &'static str| {
        app.send(
            app.request(Method::PUT, "/v1/namespaces/billing/layer?tenant=acme")
                .header("Idempotency-Key", key)
                .header("If-Match", "\"2\"")
                .json(&json!({"values": {"limit": 9}})),
        )
    };
    let f = cond("key-3").await;
    let g = cond("key-3").await;
    assert_eq!(f.status, StatusCode::OK, "{}", f.body);
    assert_eq!(g.status, StatusCode::OK, "{}", g.body);
    assert_eq!(f.revision(), g.revision());

    let history = app.history("billing", "tenant=acme").await;
    assert_eq!(
        history.body["revisions"].as_array().unwrap().len(),
        3,
        "{}",
        history.body
    );
}

/// A varied series of writes across namespaces, tenants and layers.
async fn write_a_history(app: &TestApp) -> Vec<u64> {
    seed(app).await;
    let mut positions = vec![];
    let writes: Vec<(Method, &str, Value)> = vec![
        (
            Method::PUT,
            "/v1/namespaces/billing/layer",
            json!({"values": {"limit": 5, "flags": {"a": true}}, "lock": ["/flags/a"]}),
        ),
        (
            Method::PUT,
            "/v1/namespaces/billing/layer?edition=pro",
            json!({"values": {"limit": 50}}),
        ),
        (
            Method::PUT,
            "/v1/namespaces/billing/layer?tenant=acme",
            json!({"values": {"flags": {"b": 1}}}),
        ),
        (
            Method::PATCH,
            "/v1/namespaces/billing/layer?tenant=acme",
            json!({"values": {"flags": {"c": 2}}}),
        ),
        (
            Method::PUT,
            "/v1/namespaces/billing/layer?env=prod",
            json!({"values": {"limit": 7, "flags": {"b": null}}}),
        ),
        (Method::PUT, "/v1/tenants/acme", json!({"edition": "free"})),
        (
            Method::PUT,
            "/v1/namespaces/billing/layer?edition=free",
            json!({"values": {"limit": 2}}),
        ),
        (
            Method::DELETE,
            "/v1/namespaces/billing/layer?env=prod",
            Value::Null,
        ),
        (
            Method::POST,
            "/v1/namespaces/billing/layer/rollback?env=prod",
            json!({"revision": 1}),
        ),
        (
            Method::PUT,
            "/v1/namespaces/logging",
            json!({"description": "logs"}),
        ),
        (
            Method::PUT,
            "/v1/namespaces/logging/layer?service=api",
            json!({"values": {"level": "debug"}}),
        ),
        (Method::PUT, "/v1/tenants/acme", json!({"edition": "pro"})),
    ];
    for (method, path, body) in writes {
        let mut request = app.request(method, path);
        if !body.is_null() {
            request = request.json(&body);
        }
        let answer = app.send(request).await;
        assert!(answer.status.is_success(), "{path}: {}", answer.body);
        positions.push(answer.position());
    }
    positions
}

#[tokio::test]
async fn rebuilt_projections_equal_the_incrementally_built_ones() {
    let app = spawn_app().await;
    write_a_history(&app).await;
    let incremental = app.dump_projections().await;
    assert!(!incremental["layer_history"].as_array().unwrap().is_empty());

    app.rebuild_projections().await;
    let rebuilt = app.dump_projections().await;
    assert_eq!(incremental, rebuilt);
}

/// Every message of the events stream up to `last`, decoded, with tenant data
/// opened with the tenants' keys (as any replay must).
async fn read_stream(app: &TestApp) -> Vec<(u64, EventMessage<Value>)> {
    let client = async_nats::connect(app.nats.url()).await.unwrap();
    let js = jetstream::new(client);
    let keyring =
        ecs_commands::keyring::Keyring::connect(&js, app.settings.master_key.as_deref(), 1)
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
    let mut out = vec![];
    while out.len() < last as usize {
        let message = messages.next().await.unwrap().unwrap();
        let seq = message.info().unwrap().stream_sequence;
        let (opened, _) = ecs_commands::message::read_message(&message.payload, Some(&keyring))
            .await
            .unwrap();
        out.push((seq, opened));
    }
    out
}

#[tokio::test]
async fn point_in_time_reads_equal_a_replay_up_to_that_position() {
    let app = spawn_app().await;
    write_a_history(&app).await;
    let messages = read_stream(&app).await;
    let contexts = [
        "",
        "tenant=acme",
        "env=prod&tenant=acme",
        "tenant=globex",
        "edition=pro",
        "env=prod",
        "service=api&tenant=acme",
    ];
    let mut replay = MemoryConfig::default();
    for (position, message) in &messages {
        message.typed_events().unwrap().apply_to(&mut replay);
        for ns in ["billing", "logging"] {
            let name = NamespaceName::parse(ns).unwrap();
            for query in contexts {
                let answer = app
                    .resolved(ns, &format!("{query}&position={position}"))
                    .await;
                let context: Scope =
                    serde_json::from_value(serde_json::to_value(query_pairs(query)).unwrap())
                        .unwrap();
                let Some(namespace) = replay.namespaces.get(&name) else {
                    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{ns} at {position}");
                    continue;
                };
                let edition = match &context.tenant {
                    None => None,
                    Some(t) => match replay.tenants.get(t) {
                        Some(t) => Some(t.edition.clone()),
                        None => {
                            assert_eq!(
                                answer.status,
                                StatusCode::NOT_FOUND,
                                "{query} at {position}"
                            );
                            continue;
                        }
                    },
                };
                let layers: Vec<LayerState> = replay
                    .layers
                    .values()
                    .filter(|l| l.namespace == name)
                    .cloned()
                    .collect();
                let refs: Vec<_> = layers.iter().map(LayerState::as_ref).collect();
                let expected = resolve(
                    &namespace.defaults(),
                    &refs,
                    &context.with_tenant_edition(edition),
                    &Precedence::default(),
                );
                assert_eq!(
                    answer.status,
                    StatusCode::OK,
                    "{ns}?{query} at {position}: {}",
                    answer.body
                );
                assert_eq!(
                    answer.body["values"], expected.values,
                    "{ns}?{query} at {position}"
                );
                assert_eq!(answer.position(), *position);
            }
        }
    }
    // The same holds for a layer read at each position.
    let scope = Scope {
        tenant: Some("acme".parse().unwrap()),
        ..Scope::default()
    };
    let mut replay = MemoryConfig::default();
    for (position, message) in &messages {
        message.typed_events().unwrap().apply_to(&mut replay);
        let expected = replay
            .layers
            .get(&(NamespaceName::parse("billing").unwrap(), scope.clone()));
        let answer = app
            .get_layer("billing", &format!("tenant=acme&position={position}"))
            .await;
        match expected {
            None => assert_eq!(answer.status, StatusCode::NOT_FOUND),
            Some(layer) => {
                assert_eq!(answer.body["values"], layer.values);
                assert_eq!(answer.revision(), layer.revision);
            }
        }
    }
}

fn query_pairs(query: &str) -> serde_json::Map<String, Value> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
        .collect()
}

#[tokio::test]
async fn restarting_the_server_loses_nothing_and_resumes_projections() {
    let mut app = spawn_app().await;
    write_a_history(&app).await;
    let before = app.dump_projections().await;

    // Crash the server, then append while it is down, straight to the stream.
    app.crash().await;
    let client = async_nats::connect(app.nats.url()).await.unwrap();
    let bus = CommandBus::new(jetstream::new(client), "ECS_EVENTS");
    let pool = app.db.pool().await.unwrap();
    let services = Services {
        reader: Arc::new(ReadModel::new(pool)),
        precedence: Precedence::default(),
    };
    let ns = NamespaceName::parse("billing").unwrap();
    let scope = Scope {
        tenant: Some("globex".parse().unwrap()),
        ..Scope::default()
    };
    let mut last = 0;
    for n in 1..=3 {
        let command = LayerCommand {
            namespace: ns.clone(),
            scope: scope.clone(),
            action: LayerAction::Replace {
                values: json!({"limit": n}),
                lock: None,
            },
            message: format!("offline {n}"),
            expected_revision: None,
        };
        let meta = CommandMeta {
            command_id: format!("offline-{n}"),
            actor: "test".into(),
            metadata: Default::default(),
        };
        last = bus
            .execute::<Layer>(&layer_id(&ns, &scope), command, &services, &meta)
            .await
            .unwrap()
            .position;
    }

    // Restart: everything acknowledged before is still there, and the
    // projections pick up exactly what was appended meanwhile.
    app.start().await;
    let status = app.get("/v1/admin/projections").await;
    assert_eq!(status.body["applied"].as_u64(), Some(last));
    let layer = app.get_layer("billing", "tenant=globex").await;
    assert_eq!(layer.revision(), 3);
    assert_eq!(layer.body["values"], json!({"limit": 3}));
    let after = app.dump_projections().await;
    for table in [
        "namespaces",
        "tenants",
        "namespace_history",
        "tenant_history",
    ] {
        assert_eq!(before[table], after[table], "{table}");
    }
    assert_eq!(
        after["layer_history"].as_array().unwrap().len(),
        before["layer_history"].as_array().unwrap().len() + 3
    );

    // And a rebuild from the stream agrees with the resumed projections.
    app.rebuild_projections().await;
    assert_eq!(app.dump_projections().await, after);
}
