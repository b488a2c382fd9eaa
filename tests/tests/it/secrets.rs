//! Secrets as references: a layer stores and serves `{"$secret": "..."}`, never
//! the secret (not even in the raw events stream); the SDK resolves references
//! through its registered resolvers; malformed references are refused; values
//! the schema marks sensitive are masked for roles that may not read them.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull::OrderedConfig};
use ecs_client::{Client, ClientError, ClientSettings, Context, EnvResolver, FileResolver};
use ecs_tests::app::{Answer, TestApp, spawn_app};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The environment of the child process that checks the env resolver (a test
/// may not set its own environment: `unsafe_code` is forbidden).
const CHILD_NATS: &str = "ECS_SECRETS_CHILD_NATS";
const CHILD_VAR: &str = "ECS_SECRETS_CHILD_VAR";
const CHILD_EXPECT: &str = "ECS_SECRETS_CHILD_EXPECT";
const CHILD_FILE_DIR: &str = "ECS_SECRETS_CHILD_FILE_DIR";

fn schema() -> Value {
    json!({"type": "object", "properties": {
        "db": {"type": "object", "properties": {
            "password": {"type": "string"},
            "user": {"type": "string"}
        }},
        "api_key": {"type": "string"},
        "port": {"type": "integer"}
    }})
}

/// Every message of the events stream, as raw text (the global layer's values
/// are not sealed, so a plaintext secret would show here).
async fn raw_events(app: &TestApp) -> String {
    let client = async_nats::connect(app.nats.url()).await.unwrap();
    let js = jetstream::new(client);
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
    let mut out = String::new();
    let mut seen = 0;
    while seen < last {
        let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen = message.info().unwrap().stream_sequence;
        out.push_str(&String::from_utf8_lossy(&message.payload));
        out.push('\n');
    }
    out
}

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

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
async fn a_secret_reference_is_stored_and_served_as_the_reference_and_resolved_by_the_sdk() {
    let app = spawn_app().await;
    assert_eq!(
        app.put_namespace("app", &json!({"schema": schema()}))
            .await
            .status,
        StatusCode::CREATED
    );
    let var = unique("ECS_TEST_DB_PASSWORD_").to_uppercase();
    let env_secret = unique("env-secret-");
    let file_secret = unique("file-secret-");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("api_key");
    std::fs::write(&file, format!("{file_secret}\n")).unwrap();
    let env_ref = format!("env://{var}");
    let file_ref = format!("file://{}", file.display());
    let values = json!({
        "db": {"password": {"$secret": env_ref}, "user": "app"},
        "api_key": {"$secret": file_ref}
    });
    let answer = app
        .put_layer("app", "", &json!({"values": values, "message": "refs"}))
        .await;
    assert!(answer.status.is_success(), "{}", answer.body);

    // Stored and served as the reference: layer, history, resolved.
    let layer = app.get_layer("app", "").await;
    assert_eq!(layer.status, StatusCode::OK);
    assert_eq!(layer.body["values"], values);
    let history = app.history("app", "").await;
    assert_eq!(history.body["revisions"][0]["values"], values);
    let resolved = app.resolved("app", "").await;
    assert_eq!(resolved.body["values"], values);

    // The raw events stream holds the references, never the secrets.
    let events = raw_events(&app).await;
    assert!(events.contains(&env_ref), "{events}");
    assert!(events.contains(&file_ref), "{events}");
    assert!(!events.contains(&env_secret));
    assert!(!events.contains(&file_secret));

    // The SDK distributes references; `resolve` returns them untouched.
    let settings = ClientSettings::new(app.nats.url(), ["app"])
        .unwrap()
        .with_secret_resolver(Arc::new(FileResolver::within(dir.path())));
    let client = Client::connect(settings).await.unwrap();
    let global = Context::default();
    assert_eq!(client.resolve("app", &global).unwrap().values, values);

    // Without an env resolver, the env reference fails clearly.
    let error = client.resolve_secrets("app", &global).unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(&error, ClientError::Secret { pointer, .. } if pointer == "/db/password"),
        "{text}"
    );
    assert!(text.contains("\"env\"") && text.contains(&var), "{text}");
    assert!(!text.contains(&file_secret));

    // An unknown scheme fails clearly too.
    let vault = json!({"values": {"db": {"password": {"$secret": "vault://kv/app#password"}}}});
    assert!(
        app.put_layer("app", "env=prod", &vault)
            .await
            .status
            .is_success()
    );
    let prod = Context::from_pairs([("env", "prod")]).unwrap();
    let applied = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let values = client.resolve("app", &prod).unwrap().values;
            if values["db"]["password"]["$secret"] == "vault://kv/app#password" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(applied.is_ok(), "the prod layer did not reach the client");
    let text = client
        .resolve_secrets("app", &prod)
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("/db/password") && text.contains("\"vault\""),
        "{text}"
    );

    // The file resolver alone resolves the file reference where no env one is.
    let only_file = json!({"values": {"db": {"password": "plain"}}});
    assert!(
        app.put_layer("app", "env=dev", &only_file)
            .await
            .status
            .is_success()
    );
    let dev = Context::from_pairs([("env", "dev")]).unwrap();
    let resolved = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(config) = client.resolve_secrets("app", &dev) {
                return config;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(
        resolved.values,
        json!({"db": {"password": "plain", "user": "app"}, "api_key": file_secret})
    );
    client.close();

    // The env resolver, in a child process whose environment holds the secret.
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "env_resolver_child_process", "--nocapture"])
        .env(CHILD_NATS, app.nats.url())
        .env(CHILD_VAR, &var)
        .env(&var, &env_secret)
        .env(CHILD_EXPECT, &env_secret)
        .env(CHILD_FILE_DIR, dir.path())
        .env("RUST_TEST_THREADS", "1")
        .status()
        .unwrap();
    assert!(status.success(), "the child process failed: {status}");

    // Nothing resolved went back into the log.
    let events = raw_events(&app).await;
    assert!(!events.contains(&env_secret) && !events.contains(&file_secret));
}

/// Runs only as the child process of the test above (otherwise it does
/// nothing): resolves the global layer's references with the env and file
/// resolvers.
#[tokio::test]
async fn env_resolver_child_process() {
    let (Ok(nats), Ok(var), Ok(expect), Ok(dir)) = (
        std::env::var(CHILD_NATS),
        std::env::var(CHILD_VAR),
        std::env::var(CHILD_EXPECT),
        std::env::var(CHILD_FILE_DIR),
    ) else {
        return;
    };
    assert_eq!(std::env::var(&var).unwrap(), expect);
    let settings = ClientSettings::new(nats, ["app"])
        .unwrap()
        .with_secret_resolver(Arc::new(EnvResolver::with_prefix("ECS_TEST_")))
        .with_secret_resolver(Arc::new(FileResolver::within(&dir)));
    let client = Client::connect(settings).await.unwrap();
    let config = client.resolve_secrets("app", &Context::default()).unwrap();
    assert_eq!(config.values["db"]["password"], json!(expect));
    assert_eq!(config.values["db"]["user"], json!("app"));
    assert!(
        config.values["api_key"]
            .as_str()
            .unwrap()
            .starts_with("file-secret-")
    );
    // `resolve` still gives the reference.
    let plain = client.resolve("app", &Context::default()).unwrap();
    assert_eq!(
        plain.values["db"]["password"],
        json!({"$secret": format!("env://{var}")})
    );
    client.close();
}

#[tokio::test]
async fn malformed_references_are_refused_and_references_need_a_string_in_the_schema() {
    let app = spawn_app().await;
    assert_eq!(
        app.put_namespace("app", &json!({"schema": schema()}))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put_namespace("free", &json!({})).await.status,
        StatusCode::CREATED
    );
    for ns in ["app", "free"] {
        for (bad, pointer) in [
            (
                json!({"db": {"password": {"$secret": "env://A", "x": 1}}}),
                "/db/password",
            ),
            (json!({"db": {"password": {"$secret": 42}}}), "/db/password"),
            (
                json!({"db": {"password": {"$secret": null}}}),
                "/db/password",
            ),
            (json!({"api_key": {"$secret": "no-scheme"}}), "/api_key"),
            (
                json!({"api_key": {"$secret": "bad-scheme://x"}}),
                "/api_key",
            ),
            (json!({"$secret": "env://A"}), "/"),
        ] {
            let answer = app.put_layer(ns, "", &json!({"values": bad})).await;
            assert_eq!(
                answer.status,
                StatusCode::BAD_REQUEST,
                "{bad}: {}",
                answer.body
            );
            assert_eq!(answer.body["field"], "values", "{}", answer.body);
            let detail = answer.body["detail"].as_str().unwrap_or_default();
            assert!(detail.contains(pointer), "{detail}");
        }
    }
    // A patch that would merge a reference with another key is refused too.
    let good = json!({"values": {"db": {"password": {"$secret": "env://A"}}}});
    assert!(app.put_layer("app", "", &good).await.status.is_success());
    let answer = app
        .patch(
            "/v1/namespaces/app/layer",
            &json!({"values": {"db": {"password": {"extra": 1}}}}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert_eq!(answer.body["field"], "values");

    // Where the schema expects something other than a string: 422 at the pointer.
    let answer = app
        .put_layer(
            "app",
            "",
            &json!({"values": {"port": {"$secret": "env://PORT"}}}),
        )
        .await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.body
    );
    assert!(answer.body.to_string().contains("/port"), "{}", answer.body);
    // Where it expects a string, the reference is accepted.
    let answer = app
        .put_layer(
            "app",
            "",
            &json!({"values": {"api_key": {"$secret": "vault://kv/app#key"}, "port": 1}}),
        )
        .await;
    assert!(answer.status.is_success(), "{}", answer.body);
    // A schema change that would turn a referenced property into an integer is refused.
    let mut changed = schema();
    changed["properties"]["api_key"] = json!({"type": "integer"});
    let answer = app.put_namespace("app", &json!({"schema": changed})).await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.body
    );
}

#[tokio::test]
async fn sensitive_values_are_masked_for_roles_that_may_not_read_them() {
    let app = spawn_app().await;
    let schema = json!({"type": "object", "properties": {
        "db": {"type": "object", "properties": {
            "password": {"type": "string", "writeOnly": true},
            "user": {"type": "string"}
        }},
        "api_key": {"type": "string", "x-sensitive": true}
    }});
    assert_eq!(
        app.put_namespace("app", &json!({"schema": schema}))
            .await
            .status,
        StatusCode::CREATED
    );
    let password = unique("hunter2-");
    let first =
        json!({"db": {"password": password, "user": "app"}, "api_key": {"$secret": "env://KEY"}});
    assert!(
        app.put_layer("app", "", &json!({"values": first}))
            .await
            .status
            .is_success()
    );
    let second = json!({"db": {"password": "rotated", "user": "app2"}});
    assert!(
        app.put_layer("app", "", &json!({"values": second}))
            .await
            .status
            .is_success()
    );

    let viewer = token(
        &app,
        json!({"name": "viewer", "role": "viewer", "namespaces": ["app"]}),
    )
    .await;
    let editor = token(
        &app,
        json!({"name": "editor", "role": "editor", "namespaces": ["app"]}),
    )
    .await;
    let service = token(
        &app,
        json!({"name": "svc", "role": "service", "env": "prod", "service": "api"}),
    )
    .await;

    // The viewer reads them masked, in the layer and every revision.
    let layer = get_as(&app, &viewer, "/v1/namespaces/app/layer").await;
    assert_eq!(layer.status, StatusCode::OK, "{}", layer.body);
    assert_eq!(
        layer.body["values"],
        json!({"db": {"password": "***", "user": "app2"}})
    );
    let history = get_as(&app, &viewer, "/v1/namespaces/app/layer/history").await;
    assert_eq!(history.status, StatusCode::OK);
    assert_eq!(
        history.body["revisions"][0]["values"],
        json!({"db": {"password": "***", "user": "app"}, "api_key": "***"})
    );
    assert_eq!(
        history.body["revisions"][1]["values"]["db"]["password"],
        "***"
    );
    assert!(!history.body.to_string().contains(&password));
    let past = get_as(&app, &viewer, "/v1/namespaces/app/layer?position=1").await;
    assert!(!past.body.to_string().contains("hunter2"), "{}", past.body);
    let resolved = get_as(&app, &viewer, "/v1/namespaces/app/resolved").await;
    assert_eq!(resolved.body["values"]["db"]["password"], "***");

    // The admin and an editor see them.
    for who in [None, Some(&editor)] {
        let history = match who {
            None => app.history("app", "").await,
            Some(t) => get_as(&app, t, "/v1/namespaces/app/layer/history").await,
        };
        assert_eq!(history.status, StatusCode::OK);
        assert_eq!(
            history.body["revisions"][0]["values"],
            json!({"db": {"password": password, "user": "app"}, "api_key": {"$secret": "env://KEY"}})
        );
        let layer = match who {
            None => app.get_layer("app", "").await,
            Some(t) => get_as(&app, t, "/v1/namespaces/app/layer").await,
        };
        assert_eq!(layer.body["values"]["db"]["password"], "rotated");
    }

    // A service reads its resolved configuration unmasked.
    let resolved = get_as(
        &app,
        &service,
        "/v1/namespaces/app/resolved?env=prod&service=api",
    )
    .await;
    assert_eq!(resolved.status, StatusCode::OK, "{}", resolved.body);
    assert_eq!(resolved.body["values"]["db"]["password"], "rotated");
}

#[tokio::test]
async fn sensitive_values_are_masked_in_the_audit_log_and_watches_for_roles_that_may_not_read_them()
{
    let app = ecs_tests::app::spawn_app().await;
    let schema = serde_json::json!({"type": "object", "properties": {
        "db": {"type": "object", "properties": {"password": {"type": "string", "writeOnly": true}}}
    }});
    assert!(
        app.put_namespace("vault", &serde_json::json!({"schema": schema}))
            .await
            .status
            .is_success()
    );
    let written = app
        .put_layer(
            "vault",
            "",
            &serde_json::json!({"values": {"db": {"password": "plain-hunter2"}}}),
        )
        .await;
    assert!(written.status.is_success(), "{}", written.body);
    let issue = |body: serde_json::Value| {
        let app = &app;
        async move {
            app.post("/v1/tokens", &body).await.body["token"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let auditor = issue(serde_json::json!({"name": "au", "role": "auditor"})).await;
    let viewer =
        issue(serde_json::json!({"name": "vi", "role": "viewer", "namespaces": ["vault"]})).await;

    let as_admin = app.get("/v1/audit?namespace=vault").await;
    assert!(
        as_admin.body.to_string().contains("plain-hunter2"),
        "{}",
        as_admin.body
    );
    for path in [
        "/v1/audit?namespace=vault",
        "/v1/audit/export?namespace=vault",
    ] {
        let answer = app
            .send(
                app.client
                    .get(format!("{}{path}", app.address))
                    .bearer_auth(&auditor),
            )
            .await;
        assert!(answer.status.is_success(), "{path}: {}", answer.status);
        let text = answer.body.to_string();
        assert!(
            !text.contains("plain-hunter2") && text.contains("***"),
            "{path}: {text}"
        );
    }

    let mut stream = app
        .client
        .get(format!("{}/v1/namespaces/vault/watch", app.address))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), stream.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&first);
    assert!(
        text.contains("***") && !text.contains("plain-hunter2"),
        "{text}"
    );
}
