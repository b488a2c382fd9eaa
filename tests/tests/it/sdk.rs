//! The SDK against a real server: live changes, resolution equal to the
//! server's, outages, the cache and O(1) feed messages for global changes.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use ecs_client::{Client, ClientError, ClientSettings, Config, Context, Origin};
use ecs_tests::app::{TestApp, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(20);

async fn seed(app: &TestApp) {
    let schema = json!({"type": "object", "properties": {
        "limit": {"type": "integer", "default": 10},
        "mode": {"type": "string", "default": "safe"},
        "nested": {"type": "object"}
    }});
    assert!(
        app.put_namespace("checkout", &json!({"schema": schema}))
            .await
            .status
            .is_success()
    );
    for (tenant, edition) in [("acme", "pro"), ("globex", "free"), ("initech", "pro")] {
        assert!(app.put_tenant(tenant, edition).await.status.is_success());
    }
    let layers = [
        ("", json!({"limit": 20, "nested": {"a": 1, "b": 2}})),
        ("env=prod", json!({"limit": 30, "nested": {"b": null}})),
        ("edition=pro", json!({"mode": "fast", "nested": {"c": 3}})),
        ("tenant=acme", json!({"limit": 40})),
        ("env=prod&tenant=globex", json!({"mode": "slow"})),
        ("service=api&edition=free", json!({"nested": {"d": 4}})),
        ("env=dev&service=api", json!({"limit": 1})),
    ];
    for (scope, values) in layers {
        let answer = app
            .put_layer("checkout", scope, &json!({"values": values}))
            .await;
        assert!(answer.status.is_success(), "{scope}: {}", answer.body);
    }
}

fn settings(app: &TestApp) -> ClientSettings {
    ClientSettings::new(app.nats.url(), ["checkout"]).unwrap()
}

/// Waits until the receiver holds a document satisfying `done`.
async fn wait_for(
    receiver: &mut watch::Receiver<Config>,
    done: impl Fn(&Config) -> bool,
) -> Config {
    tokio::time::timeout(WAIT, async {
        loop {
            if done(&receiver.borrow_and_update()) {
                return receiver.borrow().clone();
            }
            receiver.changed().await.unwrap();
        }
    })
    .await
    .expect("the watched document did not arrive in time")
}

#[tokio::test]
async fn a_change_written_through_the_api_reaches_a_watching_client() {
    let app = spawn_app().await;
    seed(&app).await;
    let client = Client::connect(settings(&app)).await.unwrap();
    assert_eq!(client.origin(), Origin::Live);
    let context = Context::from_pairs([("env", "prod"), ("tenant", "acme")]).unwrap();
    let mut receiver = client.watch("checkout", &context).unwrap();
    assert_eq!(receiver.borrow().values["limit"], json!(40));

    let answer = app
        .put_layer("checkout", "tenant=acme", &json!({"values": {"limit": 41}}))
        .await;
    assert!(answer.status.is_success());
    let config = wait_for(&mut receiver, |c| c.values["limit"] == json!(41)).await;
    assert!(config.position >= answer.position());

    // A global change reaches every tenant's context.
    let answer = app
        .patch(
            "/v1/namespaces/checkout/layer",
            &json!({"values": {"mode": "global"}}),
        )
        .await;
    assert!(answer.status.is_success());
    let globex = Context::from_pairs([("tenant", "globex")]).unwrap();
    let mut globex_receiver = client.watch("checkout", &globex).unwrap();
    wait_for(&mut globex_receiver, |c| {
        c.values["mode"] == json!("global")
    })
    .await;
    assert!(client.applied_position() >= answer.position());

    #[derive(serde::Deserialize)]
    struct Checkout {
        limit: u32,
        mode: String,
    }
    let typed: Checkout = client.get("checkout", &globex).unwrap();
    assert_eq!((typed.limit, typed.mode.as_str()), (20, "global"));
}

#[tokio::test]
async fn resolution_in_the_sdk_equals_the_servers_for_many_contexts() {
    let app = spawn_app().await;
    seed(&app).await;
    let client = Client::connect(settings(&app)).await.unwrap();
    let envs = [None, Some("prod"), Some("dev"), Some("staging")];
    let services = [None, Some("api"), Some("web")];
    let tenants = [None, Some("acme"), Some("globex"), Some("initech")];
    let editions = [None, Some("pro"), Some("free"), Some("enterprise")];
    let mut compared = 0;
    // A deterministic walk over many combinations.
    for i in 0..(envs.len() * services.len() * tenants.len() * editions.len()) {
        let env = envs[i % 4];
        let service = services[(i / 4) % 3];
        let tenant = tenants[(i / 12) % 4];
        let edition = editions[(i / 48) % 4];
        let pairs: Vec<(&str, &str)> = [
            ("env", env),
            ("service", service),
            ("tenant", tenant),
            ("edition", edition),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
        let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let server = app.resolved("checkout", &query.join("&")).await;
        assert_eq!(server.status, StatusCode::OK, "{}", server.body);
        let local = client
            .resolve("checkout", &Context::from_pairs(pairs).unwrap())
            .unwrap();
        assert_eq!(local.values, server.body["values"], "context {query:?}");
        compared += 1;
    }
    assert_eq!(compared, 192);
}

#[tokio::test]
async fn after_a_nats_outage_the_client_converges_without_gaps_or_duplicates() {
    let mut app = spawn_app().await;
    seed(&app).await;
    let client = Client::connect(settings(&app)).await.unwrap();
    let context = Context::from_pairs([("tenant", "acme")]).unwrap();
    let mut receiver = client.watch("checkout", &context).unwrap();
    let seen = tokio::spawn({
        let mut receiver = receiver.clone();
        async move {
            let mut positions = vec![receiver.borrow_and_update().position];
            while receiver.changed().await.is_ok() {
                let config = receiver.borrow_and_update().clone();
                positions.push(config.position);
                if config.values["limit"] == json!(99) {
                    break;
                }
            }
            positions
        }
    });

    app.nats.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.nats.restart();
    app.wait_ready().await;
    // Writes through the API once NATS is back: the server reconnects.
    let mut last = None;
    for limit in [97, 98, 99] {
        let answer = retry_put(&app, limit).await;
        last = Some(answer);
    }
    let config = wait_for(&mut receiver, |c| c.values["limit"] == json!(99)).await;
    assert!(config.position >= last.unwrap().position());
    let positions = tokio::time::timeout(WAIT, seen).await.unwrap().unwrap();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "positions only grow, each once: {positions:?}"
    );
    assert_eq!(
        client.applied_position(),
        app.get("/v1/admin/projections").await.body["applied"]
            .as_u64()
            .unwrap()
    );
}

/// Writes `limit` for acme, retrying while the server is still reconnecting.
async fn retry_put(app: &TestApp, limit: u64) -> ecs_tests::app::Answer {
    for _ in 0..100 {
        let answer = app
            .put_layer(
                "checkout",
                "tenant=acme",
                &json!({"values": {"limit": limit}}),
            )
            .await;
        if answer.status.is_success() {
            return answer;
        }
        assert_eq!(
            answer.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the write never succeeded");
}

#[tokio::test]
async fn a_client_started_with_nats_down_serves_the_cache_and_without_one_fails_clearly() {
    let mut app = spawn_app().await;
    seed(&app).await;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("ecs-cache.json");
    let context = Context::from_pairs([("env", "prod"), ("tenant", "acme")]).unwrap();
    let expected = app.resolved("checkout", "env=prod&tenant=acme").await.body["values"].clone();
    {
        let client = Client::connect(settings(&app).with_cache(&cache))
            .await
            .unwrap();
        assert_eq!(
            client.resolve("checkout", &context).unwrap().values,
            expected
        );
        // The cache is written shortly after the bootstrap.
        tokio::time::timeout(WAIT, async {
            while !cache.exists() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .unwrap();
        client.close();
    }

    app.stop().await;
    app.nats.kill();
    let client = Client::connect(settings(&app).with_cache(&cache))
        .await
        .unwrap();
    assert_eq!(client.origin(), Origin::Cache);
    assert_eq!(
        client.resolve("checkout", &context).unwrap().values,
        expected
    );

    let error = Client::connect(settings(&app).with_cache(dir.path().join("missing.json")))
        .await
        .err()
        .expect("no NATS and no cache must fail");
    assert!(matches!(error, ClientError::Unavailable { .. }), "{error}");
    assert!(
        error.to_string().contains("cannot reach the feed at nats:"),
        "{error}"
    );
    let error = Client::connect(settings(&app))
        .await
        .err()
        .expect("no NATS, no cache configured");
    assert!(
        error.to_string().contains("no cache file configured"),
        "{error}"
    );

    // Once NATS is back, the cached client catches up and goes live.
    app.nats.restart();
    app.start().await;
    let answer = app
        .put_layer("checkout", "tenant=acme", &json!({"values": {"limit": 77}}))
        .await;
    assert!(answer.status.is_success(), "{}", answer.body);
    let mut receiver = client.watch("checkout", &context).unwrap();
    wait_for(&mut receiver, |c| c.values["limit"] == json!(77)).await;
    assert_eq!(client.origin(), Origin::Live);
}

/// The number of messages in a stream.
async fn stream_messages(app: &TestApp, stream: &str) -> u64 {
    let client = async_nats::connect(app.nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.get_stream(stream)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .messages
}

#[tokio::test]
async fn a_global_change_with_1000_tenants_costs_a_bounded_number_of_messages() {
    let app = spawn_app().await;
    seed(&app).await;
    for i in 0..1000 {
        let answer = app
            .put_tenant(&format!("t{i:04}"), if i % 2 == 0 { "pro" } else { "free" })
            .await;
        assert!(answer.status.is_success(), "{}", answer.body);
    }
    let client = Client::connect(settings(&app)).await.unwrap();
    let context = Context::from_pairs([("tenant", "t0999")]).unwrap();
    let mut receiver = client.watch("checkout", &context).unwrap();

    let events_before = stream_messages(&app, "ECS_EVENTS").await;
    let feed_before = stream_messages(&app, "KV_ecs-feed").await;
    let answer = app
        .patch(
            "/v1/namespaces/checkout/layer",
            &json!({"values": {"mode": "everyone"}}),
        )
        .await;
    assert!(answer.status.is_success());
    wait_for(&mut receiver, |c| c.values["mode"] == json!("everyone")).await;
    let events_after = stream_messages(&app, "ECS_EVENTS").await;
    let feed_after = stream_messages(&app, "KV_ecs-feed").await;
    println!(
        "global change with 1000 tenants: {} event message(s), feed holds {} -> {} messages",
        events_after - events_before,
        feed_before,
        feed_after
    );
    assert_eq!(events_after - events_before, 1, "one event message");
    // The feed admits a fleet of readers, not the server's default 1,000.
    let nats = async_nats::connect(app.nats.url()).await.unwrap();
    let mut feed = async_nats::jetstream::new(nats)
        .get_stream("KV_ecs-feed")
        .await
        .unwrap();
    assert_eq!(
        feed.info().await.unwrap().config.max_consumers,
        ecs_projections::feed::FEED_MAX_CONSUMERS
    );
    // The feed keeps one message per key: the global layer's message replaces
    // its previous one, so the feed's size does not change at all.
    assert_eq!(feed_after, feed_before);
    let all: Value = serde_json::to_value(
        client
            .resolve("checkout", &Context::default())
            .unwrap()
            .values,
    )
    .unwrap();
    assert_eq!(all["mode"], json!("everyone"));
}

#[tokio::test]
async fn a_client_with_only_an_http_token_follows_the_feed_over_http() {
    let app = spawn_app().await;
    seed(&app).await;
    let settings =
        ClientSettings::over_http(&app.address, ecs_tests::app::ADMIN_TOKEN, ["checkout"]).unwrap();
    let client = Client::connect(settings).await.unwrap();
    assert_eq!(client.origin(), Origin::Live);
    let context = Context::from_pairs([("env", "prod"), ("tenant", "globex")]).unwrap();
    let server = app.resolved("checkout", "env=prod&tenant=globex").await;
    assert_eq!(
        client.resolve("checkout", &context).unwrap().values,
        server.body["values"]
    );

    let mut receiver = client.watch("checkout", &context).unwrap();
    let answer = app
        .put_layer(
            "checkout",
            "env=prod&tenant=globex",
            &json!({"values": {"mode": "http"}}),
        )
        .await;
    assert!(answer.status.is_success());
    let config = wait_for(&mut receiver, |c| c.values["mode"] == json!("http")).await;
    assert!(config.position >= answer.position());
    // A tenant's edition change reaches the client too.
    assert!(app.put_tenant("globex", "pro").await.status.is_success());
    wait_for(&mut receiver, |c| c.values["nested"]["c"] == json!(3)).await;

    let bad = ClientSettings::over_http(&app.address, "wrong-token", ["checkout"]).unwrap();
    let error = Client::connect(bad)
        .await
        .err()
        .expect("a bad token must fail");
    assert!(error.to_string().contains("401"), "{error}");
}
