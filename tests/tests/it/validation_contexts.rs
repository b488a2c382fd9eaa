//! A layer write is validated in every context it can change (ADR 11): a
//! write to a weaker layer (global, an edition) that would make a tenant's
//! resolved document fail the schema is refused with 422, naming the failing
//! context and pointers, and writes nothing; one that breaks nothing passes.

#![allow(clippy::unwrap_used)]

use ecs_tests::app::{Answer, TestApp, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// `discount` requires `coupon`; `mode: card` requires `card`.
fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "discount": {"type": "integer"},
            "coupon": {"type": "string"},
            "mode": {"enum": ["card", "invoice"]},
            "card": {"type": "object"}
        },
        "dependentRequired": {"discount": ["coupon"]},
        "if": {"properties": {"mode": {"const": "card"}}, "required": ["mode"]},
        "then": {"required": ["card"]}
    })
}

#[track_caller]
fn assert_status(answer: &Answer, status: StatusCode) {
    assert_eq!(answer.status, status, "{}", answer.body);
}

/// Namespace `checkout` with the schema, tenants acme (pro) and bob (free).
async fn setup() -> TestApp {
    let app = spawn_app().await;
    assert_status(
        &app.put_namespace("checkout", &json!({"schema": schema()}))
            .await,
        StatusCode::CREATED,
    );
    assert_status(&app.put_tenant("acme", "pro").await, StatusCode::CREATED);
    assert_status(&app.put_tenant("bob", "free").await, StatusCode::CREATED);
    app
}

/// Asserts a 422 `schema-violation` whose violations are exactly these
/// `(context, pointer)` pairs.
#[track_caller]
fn assert_refused_in(answer: &Answer, expected: &[(Value, &str)]) {
    assert_status(answer, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.code(), "schema-violation", "{}", answer.body);
    let found: Vec<(Value, String)> = answer.body["violations"]
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
        .collect();
    let expected: Vec<(Value, String)> = expected
        .iter()
        .map(|(c, p)| (c.clone(), (*p).to_owned()))
        .collect();
    assert_eq!(found, expected, "{}", answer.body);
}

#[tokio::test]
async fn a_global_write_that_breaks_acmes_document_is_refused_and_one_that_does_not_passes() {
    let app = setup().await;
    assert_status(
        &app.put_layer("checkout", "", &json!({"values": {"coupon": "WELCOME"}}))
            .await,
        StatusCode::CREATED,
    );
    assert_status(
        &app.put_layer(
            "checkout",
            "tenant=acme",
            &json!({"values": {"discount": 5}}),
        )
        .await,
        StatusCode::CREATED,
    );

    // Removing the coupon is valid at the global scope alone, but acme's
    // discount then has none.
    let refused = app.put_layer("checkout", "", &json!({"values": {}})).await;
    assert_refused_in(
        &refused,
        &[(json!({"tenant": "acme", "edition": "pro"}), "")],
    );
    let refused = app
        .patch(
            "/v1/namespaces/checkout/layer",
            &json!({"values": {"coupon": null}}),
        )
        .await;
    assert_refused_in(
        &refused,
        &[(json!({"tenant": "acme", "edition": "pro"}), "")],
    );
    // Nothing was written.
    assert_eq!(app.get_layer("checkout", "").await.revision(), 1);
    let acme = app.resolved("checkout", "tenant=acme").await;
    assert_eq!(
        acme.body["values"],
        json!({"coupon": "WELCOME", "discount": 5})
    );

    // A change that keeps every context valid passes.
    let accepted = app
        .put_layer("checkout", "", &json!({"values": {"coupon": "SPRING"}}))
        .await;
    assert_status(&accepted, StatusCode::OK);
    let acme = app.resolved("checkout", "tenant=acme").await;
    assert_eq!(
        acme.body["values"],
        json!({"coupon": "SPRING", "discount": 5})
    );

    // Once acme carries its own coupon, the global one may go.
    assert_status(
        &app.patch(
            "/v1/namespaces/checkout/layer?tenant=acme",
            &json!({"values": {"coupon": "ACME"}}),
        )
        .await,
        StatusCode::OK,
    );
    assert_status(
        &app.put_layer("checkout", "", &json!({"values": {}})).await,
        StatusCode::OK,
    );
}

#[tokio::test]
async fn an_edition_write_is_checked_in_the_contexts_of_its_tenants() {
    let app = setup().await;
    assert_status(
        &app.put_layer(
            "checkout",
            "edition=pro",
            &json!({"values": {"card": {"brand": "visa"}}}),
        )
        .await,
        StatusCode::CREATED,
    );
    assert_status(
        &app.put_layer(
            "checkout",
            "tenant=acme",
            &json!({"values": {"mode": "card"}}),
        )
        .await,
        StatusCode::CREATED,
    );
    assert_status(
        &app.put_layer(
            "checkout",
            "tenant=bob",
            &json!({"values": {"mode": "invoice"}}),
        )
        .await,
        StatusCode::CREATED,
    );

    // Acme (on pro) pays by card with the edition's card settings: the
    // edition may not drop them, though the edition's own document is valid.
    let refused = app
        .put_layer("checkout", "edition=pro", &json!({"values": {}}))
        .await;
    assert_refused_in(
        &refused,
        &[(json!({"tenant": "acme", "edition": "pro"}), "")],
    );
    assert_eq!(app.get_layer("checkout", "edition=pro").await.revision(), 1);

    // The free edition never applies to acme: bob's contexts are the only
    // ones it reaches, and bob pays by invoice.
    assert_status(
        &app.put_layer(
            "checkout",
            "edition=free",
            &json!({"values": {"discount": 1, "coupon": "F"}}),
        )
        .await,
        StatusCode::CREATED,
    );
    // A tenant write is checked with its edition's layers too: bob switching
    // to card payment fails without card settings on free.
    let refused = app
        .put_layer(
            "checkout",
            "tenant=bob",
            &json!({"values": {"mode": "card"}}),
        )
        .await;
    assert_refused_in(
        &refused,
        &[(json!({"tenant": "bob", "edition": "free"}), "")],
    );

    // And an env layer combines with every tenant: prod choosing card
    // payment breaks bob (free, no card settings) but not acme.
    assert_status(
        &app.put_layer("checkout", "tenant=bob", &json!({"values": {}}))
            .await,
        StatusCode::OK,
    );
    let accepted = app
        .put_layer(
            "checkout",
            "env=prod",
            &json!({"values": {"mode": "card", "card": {}}}),
        )
        .await;
    assert_status(&accepted, StatusCode::CREATED);
    let refused = app
        .put_layer("checkout", "env=prod", &json!({"values": {"mode": "card"}}))
        .await;
    assert_refused_in(
        &refused,
        &[
            (json!({"env": "prod"}), ""),
            (json!({"env": "prod", "edition": "free"}), ""),
            (
                json!({"env": "prod", "tenant": "bob", "edition": "free"}),
                "",
            ),
        ],
    );
}
