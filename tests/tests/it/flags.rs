//! Flags namespaces over the HTTP API against real NATS and PostgreSQL:
//! `"kind": "flags"` is stored and read back, flag definitions are validated
//! in every context a write changes (422 with pointers, nothing written), and
//! flags layer and resolve like any configuration.

#![allow(clippy::unwrap_used)]

use ecs_tests::app::{Answer, TestApp, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[track_caller]
fn assert_status(answer: &Answer, status: StatusCode) {
    assert_eq!(answer.status, status, "{}", answer.body);
}

/// The `(context, pointer)` pairs of a 422 `schema-violation`.
#[track_caller]
fn refused_pointers(answer: &Answer) -> Vec<(Value, String)> {
    assert_status(answer, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.code(), "schema-violation", "{}", answer.body);
    answer.body["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            assert!(v["message"].is_string(), "{v}");
            (
                v["context"].clone(),
                v["pointer"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn checkout_flag() -> Value {
    json!({
        "state": "ENABLED",
        "variants": { "on": true, "off": false },
        "defaultVariant": "off",
        "targeting": { "if": [{ "ends_with": [{ "var": "email" }, "@acme.example"] }, "on", null] }
    })
}

async fn flags_app() -> TestApp {
    let app = spawn_app().await;
    assert_status(
        &app.put_namespace("flags", &json!({ "kind": "flags" }))
            .await,
        StatusCode::CREATED,
    );
    assert_status(&app.put_tenant("acme", "pro").await, StatusCode::CREATED);
    app
}

#[tokio::test]
async fn a_namespace_kind_is_stored_and_defaults_to_config() {
    let app = flags_app().await;
    assert_status(
        &app.put_namespace("checkout", &json!({})).await,
        StatusCode::CREATED,
    );
    let flags = app.get("/v1/namespaces/flags").await;
    assert_eq!(flags.body["kind"], "flags", "{}", flags.body);
    let checkout = app.get("/v1/namespaces/checkout").await;
    assert_eq!(checkout.body["kind"], "config", "{}", checkout.body);
    let bad = app
        .put_namespace("other", &json!({ "kind": "widgets" }))
        .await;
    assert!(bad.status.is_client_error(), "{} {}", bad.status, bad.body);
    // The kind survives a rebuild of the projections from the stream.
    app.rebuild_projections().await;
    let flags = app.get("/v1/namespaces/flags").await;
    assert_eq!(flags.body["kind"], "flags", "{}", flags.body);
}

#[tokio::test]
async fn invalid_flag_definitions_are_refused_with_pointers_and_nothing_is_written() {
    let app = flags_app().await;
    let refused = app
        .put_layer(
            "flags",
            "",
            &json!({ "values": { "flags": {
                "a": { "state": "ENABLED", "variants": { "on": true }, "defaultVariant": "gone" },
                "b": { "state": "ENABLED", "variants": { "on": true }, "defaultVariant": "on",
                       "targeting": { "if": [true, "on", "missing"] } },
                "c": { "state": "ENABLED", "variants": { "on": true }, "defaultVariant": "on",
                       "targeting": { "no_such_operator": [] } }
            }}}),
        )
        .await;
    assert_eq!(
        refused_pointers(&refused),
        [
            (json!({}), "/flags/a/defaultVariant".to_owned()),
            (json!({}), "/flags/b/targeting/if/2".to_owned()),
            (json!({}), "/flags/c/targeting".to_owned()),
        ]
    );
    assert_status(&app.get_layer("flags", "").await, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn flags_layer_and_resolve_and_an_override_is_checked_in_its_context() {
    let app = flags_app().await;
    assert_status(
        &app.put_layer(
            "flags",
            "",
            &json!({ "values": { "flags": { "new-checkout": checkout_flag() } } }),
        )
        .await,
        StatusCode::CREATED,
    );
    // The pro edition turns it on for everyone: a partial override.
    assert_status(
        &app.put_layer(
            "flags",
            "edition=pro",
            &json!({ "values": { "flags": { "new-checkout": { "defaultVariant": "on" } } } }),
        )
        .await,
        StatusCode::CREATED,
    );
    let resolved = app.resolved("flags", "tenant=acme").await;
    assert_eq!(
        resolved.body["values"]["flags"]["new-checkout"]["defaultVariant"], "on",
        "{}",
        resolved.body
    );
    assert_eq!(
        resolved.body["values"]["flags"]["new-checkout"]["variants"],
        json!({ "on": true, "off": false })
    );
    // A tenant override whose targeting names a variant the flag lacks
    // breaks acme's flags.
    let refused = app
        .put_layer(
            "flags",
            "tenant=acme",
            &json!({ "values": { "flags": { "new-checkout": {
                "targeting": { "if": [true, "maybe", null] }
            } } } }),
        )
        .await;
    assert_eq!(
        refused_pointers(&refused),
        [(
            json!({ "tenant": "acme", "edition": "pro" }),
            "/flags/new-checkout/targeting/if/1".to_owned()
        )]
    );
    assert_status(
        &app.get_layer("flags", "tenant=acme").await,
        StatusCode::NOT_FOUND,
    );
    // A configuration namespace takes the same document without flag checks.
    assert_status(
        &app.put_namespace("plain", &json!({})).await,
        StatusCode::CREATED,
    );
    assert_status(
        &app.put_layer(
            "plain",
            "",
            &json!({ "values": { "flags": { "x": { "defaultVariant": "maybe" } } } }),
        )
        .await,
        StatusCode::CREATED,
    );
    // Nor can a namespace become a flags namespace while its documents are
    // not valid flags.
    let refused = app
        .put_namespace("plain", &json!({ "kind": "flags" }))
        .await;
    assert_status(&refused, StatusCode::UNPROCESSABLE_ENTITY);
}

// ---- OFREP ----

/// Flags of every type, a targeted rule, a rollout, a disabled flag; the pro
/// edition turns `new-checkout` on by default.
async fn ofrep_app() -> TestApp {
    let app = flags_app().await;
    assert_status(&app.put_tenant("globex", "free").await, StatusCode::CREATED);
    let flags = json!({ "flags": {
        "new-checkout": checkout_flag(),
        "banner": { "state": "ENABLED", "variants": { "a": "hello", "b": "bye" }, "defaultVariant": "a" },
        "limit": { "state": "ENABLED", "variants": { "low": 10, "high": 1000 }, "defaultVariant": "low" },
        "theme": { "state": "ENABLED", "variants": { "dark": { "bg": "black" } }, "defaultVariant": "dark" },
        "rollout": { "state": "ENABLED", "variants": { "on": true, "off": false }, "defaultVariant": "off",
                     "targeting": { "fractional": [["on", 50], ["off", 50]] } },
        "retired": { "state": "DISABLED", "variants": { "on": true }, "defaultVariant": "on" }
    }});
    assert_status(
        &app.put_layer("flags", "", &json!({ "values": flags }))
            .await,
        StatusCode::CREATED,
    );
    assert_status(
        &app.put_layer(
            "flags",
            "edition=pro",
            &json!({ "values": { "flags": { "new-checkout": { "defaultVariant": "on" } } } }),
        )
        .await,
        StatusCode::CREATED,
    );
    app
}

async fn ofrep(app: &TestApp, path: &str, auth: (&str, &str), context: Value) -> Answer {
    let request = app
        .client
        .post(format!("{}/ofrep/v1/evaluate/flags{path}", app.address))
        .header(auth.0, auth.1)
        .json(&json!({ "context": context }));
    app.send(request).await
}

fn admin() -> (&'static str, String) {
    (
        "authorization",
        format!("Bearer {}", ecs_tests::app::ADMIN_TOKEN),
    )
}

#[tokio::test]
async fn ofrep_evaluates_one_flag_with_value_reason_and_variant() {
    let app = ofrep_app().await;
    let (h, v) = admin();
    let auth = (h, v.as_str());
    let cases = [
        ("/banner", json!({}), json!("hello"), "STATIC"),
        ("/limit", json!({}), json!(10), "STATIC"),
        ("/theme", json!({}), json!({ "bg": "black" }), "STATIC"),
        (
            "/new-checkout",
            json!({ "email": "jo@acme.example" }),
            json!(true),
            "TARGETING_MATCH",
        ),
        (
            "/new-checkout",
            json!({ "email": "jo@other.example" }),
            json!(false),
            "DEFAULT",
        ),
        // The tenant's edition (pro) layer turns it on.
        (
            "/new-checkout",
            json!({ "tenant": "acme", "email": "x@y.z" }),
            json!(true),
            "DEFAULT",
        ),
        (
            "/rollout",
            json!({ "targetingKey": "user-1" }),
            Value::Null,
            "SPLIT",
        ),
    ];
    for (path, context, value, reason) in cases {
        let answer = ofrep(&app, path, auth, context.clone()).await;
        assert_status(&answer, StatusCode::OK);
        assert_eq!(answer.body["key"], path.trim_start_matches('/'));
        assert_eq!(
            answer.body["reason"], reason,
            "{path} {context}: {}",
            answer.body
        );
        if !value.is_null() {
            assert_eq!(
                answer.body["value"], value,
                "{path} {context}: {}",
                answer.body
            );
        }
        assert!(answer.body["variant"].is_string(), "{}", answer.body);
    }
    // A sticky rollout: the same user always lands in the same bucket.
    let first = ofrep(&app, "/rollout", auth, json!({ "targetingKey": "user-1" })).await;
    for _ in 0..3 {
        let again = ofrep(&app, "/rollout", auth, json!({ "targetingKey": "user-1" })).await;
        assert_eq!(again.body["value"], first.body["value"]);
    }
    let disabled = ofrep(&app, "/retired", auth, json!({})).await;
    assert_status(&disabled, StatusCode::OK);
    assert_eq!(disabled.body["reason"], "DISABLED", "{}", disabled.body);
    assert!(disabled.body.get("value").is_none(), "{}", disabled.body);

    let missing = ofrep(&app, "/nope", auth, json!({})).await;
    assert_status(&missing, StatusCode::NOT_FOUND);
    assert_eq!(missing.body["errorCode"], "FLAG_NOT_FOUND");
    assert_eq!(missing.body["key"], "nope");
    let bad = ofrep(&app, "/banner", auth, json!({ "tenant": "not a tenant!" })).await;
    assert_status(&bad, StatusCode::BAD_REQUEST);
    assert_eq!(bad.body["errorCode"], "INVALID_CONTEXT", "{}", bad.body);
    // A configuration namespace holds no flags.
    assert_status(
        &app.put_namespace("checkout", &json!({})).await,
        StatusCode::CREATED,
    );
    let config = ofrep(&app, "/banner", auth, json!({ "namespace": "checkout" })).await;
    assert_status(&config, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn ofrep_bulk_answers_every_flag_with_an_etag() {
    let app = ofrep_app().await;
    let (h, v) = admin();
    let first = ofrep(&app, "", (h, v.as_str()), json!({ "tenant": "acme" })).await;
    assert_status(&first, StatusCode::OK);
    let flags = first.body["flags"].as_array().unwrap();
    assert_eq!(flags.len(), 6, "{}", first.body);
    let checkout = flags.iter().find(|f| f["key"] == "new-checkout").unwrap();
    assert_eq!(checkout["value"], true);
    let etag = first.header("etag").unwrap().to_owned();
    let request = app
        .client
        .post(format!("{}/ofrep/v1/evaluate/flags", app.address))
        .header(h, v.as_str())
        .header("if-none-match", etag.as_str())
        .json(&json!({ "context": { "tenant": "acme" } }));
    let unchanged = app.send(request).await;
    assert_eq!(unchanged.status, StatusCode::NOT_MODIFIED);
    // Another context's answer differs, so its ETag does too.
    let other = ofrep(&app, "", (h, v.as_str()), json!({ "tenant": "globex" })).await;
    assert_ne!(other.header("etag").unwrap(), etag);
    // The answer names its change-event stream (OFREP's `eventStreams`),
    // whose URL carries a signed ticket; a forged or altered one is refused.
    let stream = &first.body["eventStreams"][0];
    assert_eq!(stream["type"], "sse", "{}", first.body);
    let uri = stream["endpoint"]["requestUri"].as_str().unwrap();
    assert!(uri.starts_with("/ofrep/v1/events?ticket="), "{uri}");
    for bad in [
        "/ofrep/v1/events",
        "/ofrep/v1/events?ticket=forged",
        &format!("{uri}x"),
    ] {
        let refused = app
            .send(app.client.get(format!("{}{bad}", app.address)))
            .await;
        assert_status(&refused, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn ofrep_takes_an_api_key_and_a_tenant_bound_key_cannot_evaluate_another_tenant() {
    let app = ofrep_app().await;
    let issued = app
        .post(
            "/v1/tokens",
            &json!({ "name": "acme reader", "role": "viewer", "tenant": "acme", "namespaces": ["flags"] }),
        )
        .await;
    assert_status(&issued, StatusCode::CREATED);
    let key = issued.body["token"].as_str().unwrap().to_owned();
    let own = ofrep(
        &app,
        "/banner",
        ("x-api-key", &key),
        json!({ "tenant": "acme" }),
    )
    .await;
    assert_status(&own, StatusCode::OK);
    let bearer = format!("Bearer {key}");
    let own = ofrep(
        &app,
        "/banner",
        ("authorization", &bearer),
        json!({ "tenant": "acme" }),
    )
    .await;
    assert_status(&own, StatusCode::OK);
    let other = ofrep(
        &app,
        "/banner",
        ("x-api-key", &key),
        json!({ "tenant": "globex" }),
    )
    .await;
    assert_status(&other, StatusCode::FORBIDDEN);
    let bulk = ofrep(&app, "", ("x-api-key", &key), json!({ "tenant": "globex" })).await;
    assert_status(&bulk, StatusCode::FORBIDDEN);
    let nobody = ofrep(&app, "/banner", ("x-api-key", "wrong"), json!({})).await;
    assert_status(&nobody, StatusCode::UNAUTHORIZED);
}

// ---- a real third-party client: OpenFeature's Node.js SDK and OFREP provider ----

/// Installs `tests/ofrep/` from its lock file once per run: `npm ci` empties
/// `node_modules` first, so the tests that use it must not run it twice at once.
async fn npm_ci() {
    static INSTALLED: tokio::sync::OnceCell<Result<(), String>> =
        tokio::sync::OnceCell::const_new();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ofrep");
    let installed = INSTALLED
        .get_or_init(|| async move {
            let install = tokio::process::Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir)
                .output()
                .await
                .map_err(|e| format!("npm does not run: {e}"))?;
            if install.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&install.stderr).into_owned())
            }
        })
        .await;
    if let Err(error) = installed {
        panic!("npm ci: {error}");
    }
}

/// Runs `tests/ofrep/client.mjs` (installed with `npm ci` from its committed
/// lock file) against the server: a boolean, string, number and object flag,
/// a targeted rule, a percentage rollout, a disabled and a missing flag.
#[tokio::test]
async fn openfeatures_node_ofrep_provider_evaluates_ecs_flags() {
    let app = ofrep_app().await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ofrep");
    npm_ci().await;
    let run = tokio::process::Command::new("node")
        .arg("client.mjs")
        .current_dir(&dir)
        .env("ECS_URL", &app.address)
        .env("ECS_TOKEN", ecs_tests::app::ADMIN_TOKEN)
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("9 checks passed"), "{stdout}");
}

// ---- a real third-party client: OpenFeature's web SDK and OFREP web provider ----

/// Runs `tests/ofrep/web-client.mjs`: OpenFeature's web SDK and OFREP web
/// provider (in Node.js, with the `eventsource` package as `EventSource`)
/// evaluate every kind of flag from the bulk answer, re-fetch with the ETag
/// (304 when nothing changed for them) when the event stream notifies, and
/// see a change written through the API.
#[tokio::test]
async fn openfeatures_web_provider_follows_ofrep_change_events() {
    let app = ofrep_app().await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ofrep");
    npm_ci().await;
    let run = tokio::process::Command::new("node")
        .arg("web-client.mjs")
        .current_dir(&dir)
        .env("ECS_URL", &app.address)
        .env("ECS_TOKEN", ecs_tests::app::ADMIN_TOKEN)
        .kill_on_drop(true)
        .output();
    let run = tokio::time::timeout(std::time::Duration::from_secs(120), run)
        .await
        .expect("the web client finishes")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("11 checks passed"), "{stdout}");
}

// ---- a real third-party client: OpenFeature's Python SDK and OFREP provider ----

/// Runs `tests/ofrep/client.py` in a virtual environment installed from the
/// pinned `tests/ofrep/requirements.txt`, with the same checks as the Node.js
/// client.
#[tokio::test]
async fn openfeatures_python_ofrep_provider_evaluates_ecs_flags() {
    let app = ofrep_app().await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ofrep");
    let run = |program: &str, args: &[&str]| {
        let mut command = tokio::process::Command::new(program);
        command.args(args).current_dir(&dir);
        command
    };
    for (program, args) in [
        ("python3", &["-m", "venv", ".venv"][..]),
        (
            ".venv/bin/pip",
            &[
                "install",
                "-q",
                "--disable-pip-version-check",
                "-r",
                "requirements.txt",
            ][..],
        ),
    ] {
        let done = run(program, args).output().await.expect("python runs");
        assert!(
            done.status.success(),
            "{program}: {}",
            String::from_utf8_lossy(&done.stderr)
        );
    }
    let done = run(".venv/bin/python", &["client.py"])
        .env("ECS_URL", &app.address)
        .env("ECS_TOKEN", ecs_tests::app::ADMIN_TOKEN)
        .output()
        .await
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&done.stdout);
    assert!(
        done.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(stdout.contains("9 checks passed"), "{stdout}");
}

// ---- the Rust SDK: local evaluation and its `open-feature` provider ----

/// Every rollout user evaluated over OFREP and by the SDK lands in the same
/// bucket; every other flag answers the same value, variant and reason.
#[tokio::test]
async fn the_sdk_and_its_openfeature_provider_evaluate_locally_as_ofrep_does() {
    use ecs_client::openfeature::EcsProvider;
    use ecs_client::{Client, ClientSettings, Context};
    use open_feature::{EvaluationContext, EvaluationErrorCode, EvaluationReason, OpenFeature};

    let app = ofrep_app().await;
    let (h, v) = admin();
    let auth = (h, v.as_str());
    let client = Client::connect(ClientSettings::new(app.nats.url(), ["flags"]).unwrap())
        .await
        .unwrap();

    // The SDK answers exactly what OFREP answers, for every flag and context.
    let contexts = [
        json!({}),
        json!({ "email": "jo@acme.example" }),
        json!({ "tenant": "acme", "email": "x@y.z" }),
        json!({ "tenant": "globex", "targetingKey": "user-7" }),
    ];
    let mut contexts = contexts.to_vec();
    contexts.extend((0..20).map(|i| json!({ "targetingKey": format!("user-{i}") })));
    for context in &contexts {
        let attributes = context.as_object().unwrap();
        for key in [
            "new-checkout",
            "banner",
            "limit",
            "theme",
            "rollout",
            "retired",
        ] {
            let remote = ofrep(&app, &format!("/{key}"), auth, context.clone()).await;
            assert_status(&remote, StatusCode::OK);
            let local = client.flag(None, key, attributes).unwrap();
            assert_eq!(
                local.value.clone().unwrap_or(Value::Null),
                remote.body.get("value").cloned().unwrap_or(Value::Null),
                "{key} {context}"
            );
            assert_eq!(
                json!(local.variant),
                remote.body["variant"],
                "{key} {context}"
            );
            assert_eq!(
                json!(local.reason),
                remote.body["reason"],
                "{key} {context}"
            );
        }
    }
    let empty = serde_json::Map::new();
    assert!(matches!(
        client.flag(None, "nope", &empty),
        Err(ecs_client::FlagError::FlagNotFound(_))
    ));
    // The typed reads fall back to the caller's default.
    assert!(!client.flag_bool(None, "new-checkout", &empty, true));
    assert!(client.flag_bool(None, "retired", &empty, true));
    assert!(client.flag_bool(None, "nope", &empty, true));
    assert_eq!(
        client.flag_string(Some("flags"), "banner", &empty, "x"),
        "hello"
    );
    assert_eq!(client.flag_string(None, "limit", &empty, "x"), "x");
    assert_eq!(client.flag_number(None, "limit", &empty, 0.0), 10.0);
    assert_eq!(
        client.flag_object(None, "theme", &empty, serde_json::Map::new())["bg"],
        "black"
    );

    // OpenFeature's Rust SDK through ECS's provider.
    let flags = {
        let mut api = OpenFeature::singleton_mut().await;
        api.set_named_provider("ecs-flags-test", EcsProvider::new(client.clone()))
            .await;
        api.create_named_client("ecs-flags-test")
    };
    let anyone = EvaluationContext::default();
    let acme = EvaluationContext::default().with_custom_field("email", "jo@acme.example");
    let banner = flags
        .get_string_details("banner", None, None)
        .await
        .unwrap();
    assert_eq!(banner.value, "hello");
    assert_eq!(banner.reason, Some(EvaluationReason::Static));
    assert_eq!(flags.get_int_value("limit", None, None).await.unwrap(), 10);
    assert_eq!(
        flags.get_float_value("limit", None, None).await.unwrap(),
        10.0
    );
    let theme = flags
        .get_struct_details::<open_feature::StructValue>("theme", None, None)
        .await
        .unwrap();
    assert_eq!(theme.value.fields["bg"].as_str(), Some("black"));
    let targeted = flags
        .get_bool_details("new-checkout", Some(&acme), None)
        .await
        .unwrap();
    assert!(targeted.value);
    assert_eq!(targeted.reason, Some(EvaluationReason::TargetingMatch));
    assert_eq!(targeted.variant.as_deref(), Some("on"));
    assert!(
        !flags
            .get_bool_value("new-checkout", Some(&anyone), None)
            .await
            .unwrap()
    );
    for i in 0..20 {
        let user = format!("user-{i}");
        let remote = ofrep(&app, "/rollout", auth, json!({ "targetingKey": user })).await;
        let local = flags
            .get_bool_details(
                "rollout",
                Some(&EvaluationContext::default().with_targeting_key(user.as_str())),
                None,
            )
            .await
            .unwrap();
        assert_eq!(json!(local.value), remote.body["value"], "{user}");
        assert_eq!(local.reason, Some(EvaluationReason::Split));
    }
    let disabled = flags
        .get_bool_value("retired", None, None)
        .await
        .unwrap_err();
    assert_eq!(
        disabled.code,
        EvaluationErrorCode::General("DISABLED".into())
    );
    let missing = flags.get_bool_value("nope", None, None).await.unwrap_err();
    assert_eq!(missing.code, EvaluationErrorCode::FlagNotFound);
    let mismatch = flags
        .get_bool_value("banner", None, None)
        .await
        .unwrap_err();
    assert_eq!(mismatch.code, EvaluationErrorCode::TypeMismatch);
    let bad = EvaluationContext::default().with_custom_field("tenant", "not a tenant!");
    let invalid = flags
        .get_bool_value("banner", Some(&bad), None)
        .await
        .unwrap_err();
    assert_eq!(invalid.code, EvaluationErrorCode::InvalidContext);

    // A change written through the API reaches the provider from the feed.
    let mut watched = client.watch("flags", &Context::default()).unwrap();
    assert_status(
        &app.patch(
            "/v1/namespaces/flags/layer",
            &json!({ "values": { "flags": { "banner": { "defaultVariant": "b" } } } }),
        )
        .await,
        StatusCode::OK,
    );
    tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while watched.borrow_and_update().values["flags"]["banner"]["defaultVariant"] != "b" {
            watched.changed().await.unwrap();
        }
    })
    .await
    .expect("the change reaches the client");
    assert_eq!(
        flags
            .get_string_value("banner", Some(&anyone), None)
            .await
            .unwrap(),
        "bye"
    );
    client.close();
}
