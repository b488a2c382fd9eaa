//! Change approvals end to end: a write to a covered layer becomes a change
//! request that applies only when another principal approves it.

#![allow(clippy::unwrap_used)]

use ecs_tests::app::{Answer, TestApp, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn token(app: &TestApp, body: Value) -> String {
    let answer = app.post("/v1/tokens", &body).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    answer.body["token"].as_str().unwrap().to_owned()
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

#[tokio::test]
async fn the_approval_flow_end_to_end() {
    let app = spawn_app().await;
    let policy = json!({"schema": {"type": "object", "properties": {"limit": {"type": "integer", "maximum": 100}}},
                        "approval": {"scopes": [{"env": "prod"}]}});
    assert_eq!(
        app.put_namespace("checkout", &policy).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.get("/v1/namespaces/checkout").await.body["approval"],
        json!({"scopes": [{"env": "prod"}]})
    );
    let alice = token(
        &app,
        json!({"name": "alice", "role": "editor", "namespaces": ["checkout"]}),
    )
    .await;
    let bob = token(
        &app,
        json!({"name": "bob", "role": "editor", "namespaces": ["checkout"]}),
    )
    .await;
    let viewer = token(
        &app,
        json!({"name": "vic", "role": "viewer", "namespaces": ["checkout"]}),
    )
    .await;

    // Uncovered layers change at once.
    let direct = as_(
        &app,
        &alice,
        Method::PUT,
        "/v1/namespaces/checkout/layer?env=dev",
        Some(json!({"values": {"limit": 1}})),
    )
    .await;
    assert_eq!(direct.status, StatusCode::CREATED, "{}", direct.body);

    // A covered write opens a change request; the layer does not change.
    let opened = as_(
        &app,
        &alice,
        Method::PUT,
        "/v1/namespaces/checkout/layer?env=prod",
        Some(json!({"values": {"limit": 10}, "message": "raise"})),
    )
    .await;
    assert_eq!(opened.status, StatusCode::ACCEPTED, "{}", opened.body);
    let id = opened.body["change_request"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get_layer("checkout", "env=prod").await.status,
        StatusCode::NOT_FOUND
    );

    let listed = as_(
        &app,
        &bob,
        Method::GET,
        "/v1/change-requests?status=open",
        None,
    )
    .await;
    assert_eq!(
        listed.body["change_requests"].as_array().unwrap().len(),
        1,
        "{}",
        listed.body
    );
    let shown = as_(
        &app,
        &bob,
        Method::GET,
        &format!("/v1/change-requests/{id}"),
        None,
    )
    .await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    assert_eq!(shown.body["diff"]["/limit"], json!({"after": 10}));
    assert_eq!(
        shown.body["author"],
        json!(format!("token:{}", token_id(&alice)))
    );

    // Self-approval and viewers are refused; another editor approves.
    let own = as_(
        &app,
        &alice,
        Method::POST,
        &format!("/v1/change-requests/{id}/approve"),
        None,
    )
    .await;
    assert_eq!(own.status, StatusCode::FORBIDDEN, "{}", own.body);
    let by_viewer = as_(
        &app,
        &viewer,
        Method::POST,
        &format!("/v1/change-requests/{id}/approve"),
        None,
    )
    .await;
    assert_eq!(
        by_viewer.status,
        StatusCode::FORBIDDEN,
        "{}",
        by_viewer.body
    );
    let approved = as_(
        &app,
        &bob,
        Method::POST,
        &format!("/v1/change-requests/{id}/approve"),
        None,
    )
    .await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.body);
    let layer = app.get_layer("checkout", "env=prod").await;
    assert_eq!(layer.body["values"], json!({"limit": 10}));
    assert!(layer.body["message"].as_str().unwrap().contains(&id));
    let again = as_(
        &app,
        &bob,
        Method::POST,
        &format!("/v1/change-requests/{id}/approve"),
        None,
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);

    // Two requests on the same revision: the second to be approved is stale.
    let open = |limit: u64| {
        as_(
            &app,
            &alice,
            Method::PATCH,
            "/v1/namespaces/checkout/layer?env=prod",
            Some(json!({"values": {"limit": limit}})),
        )
    };
    let first = open(20).await.body["change_request"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = open(30).await.body["change_request"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        as_(
            &app,
            &bob,
            Method::POST,
            &format!("/v1/change-requests/{first}/approve"),
            None
        )
        .await
        .status,
        StatusCode::OK
    );
    let stale = as_(
        &app,
        &bob,
        Method::POST,
        &format!("/v1/change-requests/{second}/approve"),
        None,
    )
    .await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{}", stale.body);
    let failed = as_(
        &app,
        &bob,
        Method::GET,
        &format!("/v1/change-requests/{second}"),
        None,
    )
    .await;
    assert_eq!(failed.body["status"], "failed");
    assert_eq!(
        app.get_layer("checkout", "env=prod").await.body["values"],
        json!({"limit": 20})
    );

    // Approving a change that no longer passes the schema fails cleanly.
    let too_big = open(1000).await;
    assert_eq!(too_big.status, StatusCode::ACCEPTED, "{}", too_big.body);
    let too_big = too_big.body["change_request"].as_str().unwrap().to_owned();
    let refused = as_(
        &app,
        &bob,
        Method::POST,
        &format!("/v1/change-requests/{too_big}/approve"),
        None,
    )
    .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );

    // Reject and withdraw.
    let third = open(40).await.body["change_request"]
        .as_str()
        .unwrap()
        .to_owned();
    let rejected = as_(
        &app,
        &bob,
        Method::POST,
        &format!("/v1/change-requests/{third}/reject"),
        Some(json!({"reason": "no"})),
    )
    .await;
    assert_eq!(rejected.status, StatusCode::OK, "{}", rejected.body);
    let fourth = open(50).await.body["change_request"]
        .as_str()
        .unwrap()
        .to_owned();
    let not_author = as_(
        &app,
        &bob,
        Method::POST,
        &format!("/v1/change-requests/{fourth}/withdraw"),
        None,
    )
    .await;
    assert_eq!(not_author.status, StatusCode::FORBIDDEN);
    let withdrawn = as_(
        &app,
        &alice,
        Method::POST,
        &format!("/v1/change-requests/{fourth}/withdraw"),
        None,
    )
    .await;
    assert_eq!(withdrawn.status, StatusCode::OK, "{}", withdrawn.body);
    let statuses: Vec<String> = as_(&app, &bob, Method::GET, "/v1/change-requests", None)
        .await
        .body["change_requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_owned())
        .collect();
    let mut sorted = statuses.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "approved",
            "approved",
            "failed",
            "failed",
            "rejected",
            "withdrawn"
        ]
    );
    assert_eq!(
        app.get_layer("checkout", "env=prod").await.body["values"],
        json!({"limit": 20})
    );
}

/// The id part of an API key (`ecs_<id>_<secret>`), as its actor name shows it.
fn token_id(token: &str) -> &str {
    token.trim_start_matches("ecs_").split('_').next().unwrap()
}
