//! The main user flows end to end against real NATS and PostgreSQL.

#![allow(clippy::unwrap_used)]

use ecs_tests::app::spawn_app;
use reqwest::StatusCode;
use serde_json::json;

fn checkout_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": {
            "currency": {"type": "string", "default": "USD"},
            "max_items": {"type": "integer", "minimum": 1, "maximum": 1000},
            "payment": {"type": "object", "properties": {"provider": {"type": "string"}}}
        }
    })
}

#[tokio::test]
async fn set_resolve_explain_history_rollback_and_the_past() {
    let app = spawn_app().await;
    let r = app
        .put_namespace(
            "checkout",
            &json!({"description": "Checkout", "schema": checkout_schema()}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        app.put_tenant("acme", "enterprise").await.status,
        StatusCode::CREATED
    );

    let g1 = app
        .put_layer("checkout", "", &json!({"values": {"max_items": 10, "payment": {"provider": "stripe"}}, "message": "first"}))
        .await;
    assert_eq!(g1.status, StatusCode::CREATED, "{}", g1.body);
    assert_eq!(g1.revision(), 1);
    let e = app
        .put_layer(
            "checkout",
            "edition=enterprise",
            &json!({"values": {"max_items": 500}}),
        )
        .await;
    assert_eq!(e.status, StatusCode::CREATED, "{}", e.body);
    let t = app
        .put_layer(
            "checkout",
            "env=prod&tenant=acme",
            &json!({"values": {"currency": "EUR"}}),
        )
        .await;
    assert_eq!(t.status, StatusCode::CREATED, "{}", t.body);

    // The tenant's edition applies when the context names no edition.
    let r = app
        .resolved("checkout", "env=prod&tenant=acme&explain=true")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["values"],
        json!({"currency": "EUR", "max_items": 500, "payment": {"provider": "stripe"}})
    );
    assert_eq!(
        r.body["sources"]["/max_items"],
        json!({"origin": "layer", "scope": {"edition": "enterprise"}, "revision": 1})
    );
    assert_eq!(
        r.body["sources"]["/currency"]["scope"],
        json!({"env": "prod", "tenant": "acme"})
    );
    assert!(r.position() >= t.position());

    // ETag and If-None-Match.
    let etag = r.header("etag").expect("etag").to_owned();
    let again = app
        .send(
            app.request(
                reqwest::Method::GET,
                "/v1/namespaces/checkout/resolved?env=prod&tenant=acme&explain=true",
            )
            .header("If-None-Match", &etag),
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);

    // A second revision, then history, rollback and the past.
    let g2 = app
        .put_layer(
            "checkout",
            "",
            &json!({"values": {"max_items": 20}, "message": "second"}),
        )
        .await;
    assert_eq!(g2.status, StatusCode::OK);
    assert_eq!(g2.revision(), 2);
    let h = app.history("checkout", "").await;
    assert_eq!(h.status, StatusCode::OK);
    let revisions = h.body["revisions"].as_array().unwrap();
    assert_eq!(revisions.len(), 2);
    assert_eq!(revisions[0]["message"], "first");
    assert_eq!(revisions[1]["values"], json!({"max_items": 20}));
    assert_eq!(revisions[1]["actor"], "admin");

    let past = app
        .resolved("checkout", &format!("position={}", g1.position()))
        .await;
    assert_eq!(
        past.body["values"],
        json!({"currency": "USD", "max_items": 10, "payment": {"provider": "stripe"}})
    );
    let past_layer = app
        .get_layer("checkout", &format!("position={}", g1.position()))
        .await;
    assert_eq!(past_layer.body["revision"], 1);
    let at = revisions[0]["at"].as_str().unwrap();
    let by_time = app
        .get_layer("checkout", &format!("at={}", urlencode(at)))
        .await;
    assert_eq!(by_time.status, StatusCode::OK, "{}", by_time.body);
    assert_eq!(by_time.body["revision"], 1);

    let rb = app
        .post(
            "/v1/namespaces/checkout/layer/rollback",
            &json!({"revision": 1, "message": "undo"}),
        )
        .await;
    assert_eq!(rb.status, StatusCode::OK, "{}", rb.body);
    assert_eq!(rb.revision(), 3);
    let now = app.get_layer("checkout", "").await;
    assert_eq!(
        now.body["values"],
        json!({"max_items": 10, "payment": {"provider": "stripe"}})
    );
    assert_eq!(
        now.body["change"],
        json!({"kind": "rolled-back", "to_revision": 1})
    );
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}
