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
