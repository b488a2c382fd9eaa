//! The write path's integrity: aggregates that load from their last message
//! (a second revocation), approvals that compare identities and cover every
//! layer reaching inside their scope, idempotent retries of a write held for
//! approval, writes that take access away answering only once in effect,
//! bodies bounded by what a NATS message holds, and approve racing reject.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use ecs_tests::app::{Answer, TestApp, spawn_app, spawn_app_on, spawn_app_with};
use ecs_tests::servers::NatsServer;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn token(app: &TestApp, body: Value) -> String {
    token_as(app, None, body).await
}

/// Issues a key, as the admin or as `issuer`.
async fn token_as(app: &TestApp, issuer: Option<&str>, body: Value) -> String {
    let answer = match issuer {
        None => app.post("/v1/tokens", &body).await,
        Some(issuer) => as_(app, issuer, Method::POST, "/v1/tokens", Some(body)).await,
    };
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    answer.body["token"].as_str().unwrap().to_owned()
}

/// The id part of an API key (`ecs_<id>_<secret>`).
fn token_id(token: &str) -> &str {
    token.trim_start_matches("ecs_").split('_').next().unwrap()
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

fn editor(name: &str, tenant: Option<&str>) -> Value {
    let mut body = json!({"name": name, "role": "editor", "namespaces": ["checkout"]});
    if let Some(tenant) = tenant {
        body["tenant"] = json!(tenant);
    }
    body
}

/// The `checkout` namespace requiring approval within `scopes`.
async fn guarded(app: &TestApp, scopes: Value) {
    let answer = app
        .put_namespace("checkout", &json!({"approval": {"scopes": scopes}}))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
}

async fn decide(app: &TestApp, token: &str, id: &str, decision: &str) -> Answer {
    let body = (decision == "reject").then(|| json!({"reason": "no"}));
    as_(
        app,
        token,
        Method::POST,
        &format!("/v1/change-requests/{id}/{decision}"),
        body,
    )
    .await
}

// Item 4: every event carries its aggregate's complete state.

#[tokio::test]
async fn revoking_a_revoked_token_again_answers_200_with_the_same_revision() {
    let app = spawn_app().await;
    let key = token(&app, json!({"name": "ci", "role": "auditor"})).await;
    let path = format!("/v1/tokens/{}", token_id(&key));
    let first = app.delete(&path).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    // The token loads from its last message, the revocation: it must hold
    // the token, not only its id (this answered 404 token-not-found).
    let second = app.delete(&path).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_eq!(second.revision(), first.revision());
    assert_eq!(second.position(), first.position());
    assert_eq!(
        as_(&app, &key, Method::GET, "/v1/audit", None).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_token_whose_last_message_is_an_older_id_only_revocation_still_loads() {
    // Streams written before every event carried the complete state hold
    // `{"TokenRevoked": {"id": …}}`: such an aggregate is replayed, not lost.
    let app = spawn_app().await;
    let key = token(&app, json!({"name": "ci", "role": "auditor"})).await;
    let id = token_id(&key).to_owned();
    let client = async_nats::connect(app.nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let legacy = json!({
        "v": 1,
        "command_id": "legacy-revocation",
        "aggregate_type": "token",
        "aggregate_id": id,
        "revision": 2,
        "at": "2026-01-01T00:00:00Z",
        "actor": "admin",
        "events": [{"TokenRevoked": {"id": id}}],
    });
    js.publish(
        format!("ecs.events._.token.{id}"),
        serde_json::to_vec(&legacy).unwrap().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let mut status = StatusCode::OK;
    for _ in 0..100 {
        status = as_(&app, &key, Method::GET, "/v1/audit", None).await.status;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the older revocation applies"
    );
    let again = app.delete(&format!("/v1/tokens/{id}")).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.revision(), 2);
}

// Item 8: approvals compare identities and cover every layer reaching
// inside their scope.

#[tokio::test]
async fn a_tenant_admin_cannot_approve_its_own_request_with_a_key_it_issued() {
    let app = spawn_app().await;
    assert_eq!(
        app.put_tenant("acme", "pro").await.status,
        StatusCode::CREATED
    );
    guarded(&app, json!([{"tenant": "acme"}])).await;
    let tenant_admin = token(
        &app,
        json!({"name": "carol", "role": "tenant-admin", "tenant": "acme"}),
    )
    .await;
    let opened = as_(
        &app,
        &tenant_admin,
        Method::PUT,
        "/v1/namespaces/checkout/layer?tenant=acme",
        Some(json!({"values": {"limit": 5}})),
    )
    .await;
    assert_eq!(opened.status, StatusCode::ACCEPTED, "{}", opened.body);
    let id = opened.body["change_request"].as_str().unwrap().to_owned();

    // Carol issues herself an editor key: it is still carol.
    let own_key = token_as(&app, Some(&tenant_admin), editor("carol-2", Some("acme"))).await;
    let own = decide(&app, &own_key, &id, "approve").await;
    assert_eq!(own.status, StatusCode::FORBIDDEN, "{}", own.body);
    let shown = app.get(&format!("/v1/change-requests/{id}")).await;
    assert_eq!(shown.body["status"], "open", "{}", shown.body);
    assert_eq!(
        app.get_layer("checkout", "tenant=acme").await.status,
        StatusCode::NOT_FOUND
    );

    // The other way round: opened with the issued key, approved as carol.
    let opened = as_(
        &app,
        &own_key,
        Method::PATCH,
        "/v1/namespaces/checkout/layer?tenant=acme",
        Some(json!({"values": {"limit": 6}})),
    )
    .await;
    assert_eq!(opened.status, StatusCode::ACCEPTED, "{}", opened.body);
    let second = opened.body["change_request"].as_str().unwrap().to_owned();
    let own = decide(&app, &tenant_admin, &second, "approve").await;
    assert_eq!(own.status, StatusCode::FORBIDDEN, "{}", own.body);

    // A key the admin issued is someone else: it approves.
    let dave = token(&app, editor("dave", Some("acme"))).await;
    let approved = decide(&app, &dave, &id, "approve").await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.body);
    assert_eq!(
        app.get_layer("checkout", "tenant=acme").await.body["values"],
        json!({"limit": 5})
    );
    // Keys record the identity behind them.
    let listed = app.get("/v1/tokens").await;
    let identity_of = |id: &str| {
        listed.body["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .map(|t| t["identity"].clone())
            .unwrap()
    };
    assert_eq!(
        identity_of(token_id(&own_key)),
        identity_of(token_id(&tenant_admin))
    );
    assert_ne!(
        identity_of(token_id(&dave)),
        identity_of(token_id(&tenant_admin))
    );
}

#[tokio::test]
async fn a_policy_on_prod_covers_every_layer_that_reaches_prod() {
    let app = spawn_app().await;
    assert_eq!(
        app.put_tenant("acme", "pro").await.status,
        StatusCode::CREATED
    );
    guarded(&app, json!([{"env": "prod"}])).await;
    let alice = token(&app, editor("alice", None)).await;
    let write = |query: &'static str| {
        let alice = alice.clone();
        let app = &app;
        async move {
            as_(
                app,
                &alice,
                Method::PUT,
                &format!("/v1/namespaces/checkout/layer?{query}"),
                Some(json!({"values": {"limit": 1}})),
            )
            .await
        }
    };
    // Each of these changes a resolved document of some prod context: the
    // tenant layer overrides prod for acme, the global one shows through.
    for query in [
        "env=prod",
        "env=prod&tenant=acme",
        "tenant=acme",
        "service=api",
        "",
    ] {
        let answer = write(query).await;
        assert_eq!(
            answer.status,
            StatusCode::ACCEPTED,
            "a write at {query:?} must wait for approval: {}",
            answer.body
        );
        assert_eq!(
            app.get_layer("checkout", query).await.status,
            StatusCode::NOT_FOUND,
            "{query:?}"
        );
    }
    // A layer that never applies to prod changes at once.
    assert_eq!(write("env=dev").await.status, StatusCode::CREATED);
    assert_eq!(
        write("env=dev&tenant=acme").await.status,
        StatusCode::CREATED
    );
}

// Item 9: an idempotent retry of a write held for approval.

#[tokio::test]
async fn a_retried_write_that_opened_a_change_request_answers_the_same_request() {
    let app = spawn_app().await;
    guarded(&app, json!([])).await;
    let put = || {
        app.send(
            app.request(Method::PUT, "/v1/namespaces/checkout/layer?env=prod")
                .header("Idempotency-Key", "retry-1")
                .json(&json!({"values": {"limit": 7}})),
        )
    };
    let first = put().await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    let retried = put().await;
    assert_eq!(retried.status, StatusCode::ACCEPTED, "{}", retried.body);
    let id = first.body["change_request"].as_str().unwrap();
    assert_eq!(retried.body["change_request"], json!(id));
    assert_eq!(retried.body["position"], first.body["position"]);
    let shown = app.get(&format!("/v1/change-requests/{id}")).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    let listed = app.get("/v1/change-requests").await;
    assert_eq!(
        listed.body["change_requests"].as_array().unwrap().len(),
        1,
        "{}",
        listed.body
    );
    // Another key is another write.
    let other = app
        .send(
            app.request(Method::PUT, "/v1/namespaces/checkout/layer?env=prod")
                .header("Idempotency-Key", "retry-2")
                .json(&json!({"values": {"limit": 7}})),
        )
        .await;
    assert_ne!(other.body["change_request"], json!(id));
}

// Item 10: writes that take access away answer only once in effect.

/// Holds the projector's offset row locked, so no projection commits until
/// the returned transaction ends: a stalled projector.
async fn stall_projector(app: &TestApp) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let pool = app.db.pool().await.unwrap();
    let mut stall = pool.begin().await.unwrap();
    sqlx::query("SELECT * FROM projection_offsets FOR UPDATE")
        .fetch_all(&mut *stall)
        .await
        .unwrap();
    stall
}

#[tokio::test]
async fn a_revocation_answers_only_once_in_effect() {
    let app = spawn_app_with(|s| s.write_wait_ms = 300).await;
    let key = token(&app, json!({"name": "ci", "role": "auditor"})).await;
    assert_eq!(
        as_(&app, &key, Method::GET, "/v1/tokens", None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let path = format!("/v1/tokens/{}", token_id(&key));

    let stall = stall_projector(&app).await;
    let revoked = app.delete(&path).await;
    // Never a success while the key still works.
    assert_eq!(
        revoked.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        revoked.body
    );
    assert_eq!(revoked.code(), "not-in-effect", "{}", revoked.body);
    assert!(
        revoked.body["detail"]
            .as_str()
            .unwrap()
            .contains("not in effect"),
        "{}",
        revoked.body
    );
    assert!(revoked.header("retry-after").is_some());
    stall.rollback().await.unwrap();

    // Once the projector moves on, repeating the revocation confirms it.
    let mut confirmed = app.delete(&path).await;
    for _ in 0..50 {
        if confirmed.status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        confirmed = app.delete(&path).await;
    }
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    assert_eq!(
        as_(&app, &key, Method::GET, "/v1/tokens", None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn an_erasure_answers_only_once_in_effect() {
    let app = spawn_app_with(|s| s.write_wait_ms = 300).await;
    assert_eq!(
        app.put_tenant("acme", "pro").await.status,
        StatusCode::CREATED
    );
    let stall = stall_projector(&app).await;
    let erased = app.post("/v1/tenants/acme/erase", &json!({})).await;
    assert_eq!(
        erased.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        erased.body
    );
    assert_eq!(erased.code(), "not-in-effect", "{}", erased.body);
    stall.rollback().await.unwrap();
}

#[tokio::test]
async fn an_approval_policy_answers_only_once_in_effect_other_writes_regardless() {
    let app = spawn_app_with(|s| s.write_wait_ms = 300).await;
    let stall = stall_projector(&app).await;
    // Read-your-writes is bounded by the wait: an ordinary write answers.
    let answer = app.put_namespace("plain", &json!({})).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    // A policy takes direct writes away: until it is in effect, writes it
    // covers would still change layers at once.
    let answer = app
        .put_namespace("checkout", &json!({"approval": {"scopes": []}}))
        .await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.body
    );
    assert_eq!(answer.code(), "not-in-effect", "{}", answer.body);
    stall.rollback().await.unwrap();
}

// Item 12: bodies bounded by what one NATS message holds.

/// A layer body of about `bytes` bytes.
fn body_of(bytes: usize) -> Value {
    json!({"values": {"blob": "x".repeat(bytes.saturating_sub(40))}})
}

fn limit_in(answer: &Answer) -> u64 {
    let detail = answer.body["detail"].as_str().unwrap_or_default();
    detail
        .split_whitespace()
        .find_map(|word| word.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("the detail names the limit: {}", answer.body))
}

#[tokio::test]
async fn a_body_under_the_configured_limit_but_over_a_nats_message_answers_413() {
    // NATS's default max_payload is 1 MiB; a body just under a 1 MiB limit
    // cannot fit with its envelope (and sealing adds a third).
    let app = spawn_app_with(|s| s.max_body_bytes = 1024 * 1024).await;
    assert_eq!(
        app.put_tenant("acme", "pro").await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put_namespace("checkout", &json!({})).await.status,
        StatusCode::CREATED
    );
    let refused = app
        .put_layer("checkout", "tenant=acme", &body_of(1024 * 1024 - 1024))
        .await;
    assert_eq!(
        refused.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        refused.body
    );
    let limit = limit_in(&refused) as usize;
    assert!(limit < 1024 * 1024, "{}", refused.body);
    // A body just under the limit it names is stored, sealed, in one message.
    let accepted = app
        .put_layer("checkout", "tenant=acme", &body_of(limit - 64))
        .await;
    assert_eq!(accepted.status, StatusCode::CREATED, "{}", accepted.body);
    let read = app.get_layer("checkout", "tenant=acme").await;
    assert_eq!(
        read.body["values"]["blob"].as_str().unwrap().len(),
        limit - 64 - 40
    );
}

#[tokio::test]
async fn a_small_nats_max_payload_bounds_the_body_limit() {
    let nats = NatsServer::start_with_settings("max_payload: 65536\n");
    let app = spawn_app_on(nats, |s| s.max_body_bytes = 1024 * 1024).await;
    assert_eq!(
        app.put_tenant("acme", "pro").await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put_namespace("checkout", &json!({})).await.status,
        StatusCode::CREATED
    );
    let refused = app
        .put_layer("checkout", "tenant=acme", &body_of(60 * 1024))
        .await;
    assert_eq!(
        refused.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        refused.body
    );
    let limit = limit_in(&refused) as usize;
    assert!(limit < 64 * 1024, "{}", refused.body);
    let accepted = app
        .put_layer("checkout", "tenant=acme", &body_of(limit - 64))
        .await;
    assert_eq!(accepted.status, StatusCode::CREATED, "{}", accepted.body);

    // Each patch fits, but the layer's values (which every event carries
    // whole) outgrow a message: 413 naming the limit, never a 503.
    let mut grown = None;
    for i in 0..4 {
        let patch = json!({"values": {format!("more{i}"): "y".repeat(limit / 2)}});
        let answer = app
            .patch("/v1/namespaces/checkout/layer?tenant=acme", &patch)
            .await;
        if answer.status != StatusCode::OK {
            grown = Some(answer);
            break;
        }
    }
    let grown = grown.expect("the layer outgrows a message");
    assert_eq!(
        grown.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        grown.body
    );
    assert!(
        grown.body["detail"].as_str().unwrap().contains("65536"),
        "{}",
        grown.body
    );
    // Nothing half-written: the layer is as the last accepted write left it.
    let layer = app.get_layer("checkout", "tenant=acme").await;
    let revision = layer.revision();
    assert_eq!(
        app.history("checkout", "tenant=acme").await.body["revisions"]
            .as_array()
            .unwrap()
            .len() as u64,
        revision
    );

    // A change held for approval that outgrows a message once applied: the
    // approval concludes the request failed with the reason (413), it does
    // not stay half-approved.
    let policy = app
        .put_namespace("checkout", &json!({"approval": {"scopes": []}}))
        .await;
    assert_eq!(policy.status, StatusCode::OK, "{}", policy.body);
    let opened = app
        .patch(
            "/v1/namespaces/checkout/layer?tenant=acme",
            &json!({"values": {"more": "z".repeat(limit / 2)}}),
        )
        .await;
    assert_eq!(opened.status, StatusCode::ACCEPTED, "{}", opened.body);
    let id = opened.body["change_request"].as_str().unwrap().to_owned();
    let bob = token(&app, editor("bob", None)).await;
    let approved = decide(&app, &bob, &id, "approve").await;
    assert_eq!(
        approved.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        approved.body
    );
    let shown = app.get(&format!("/v1/change-requests/{id}")).await;
    assert_eq!(shown.body["status"], "failed", "{}", shown.body);
    assert!(
        shown.body["reason"].as_str().unwrap().contains("too large"),
        "{}",
        shown.body
    );
    assert_eq!(
        app.get_layer("checkout", "tenant=acme").await.revision(),
        revision
    );
}

// From item 15: approve racing reject.

#[tokio::test]
async fn approve_racing_reject_ends_consistent_with_one_winner() {
    let app = spawn_app().await;
    guarded(&app, json!([])).await;
    let alice = token(&app, editor("alice", None)).await;
    let bob = token(&app, editor("bob", None)).await;
    let carol = token(&app, editor("carol", None)).await;
    for round in 0..8 {
        let query = format!("env=e{round}");
        let opened = as_(
            &app,
            &alice,
            Method::PUT,
            &format!("/v1/namespaces/checkout/layer?{query}"),
            Some(json!({"values": {"round": round}})),
        )
        .await;
        assert_eq!(opened.status, StatusCode::ACCEPTED, "{}", opened.body);
        let id = opened.body["change_request"].as_str().unwrap().to_owned();
        let (approved, rejected) = tokio::join!(
            decide(&app, &bob, &id, "approve"),
            decide(&app, &carol, &id, "reject"),
        );
        let winners = [approved.status, rejected.status]
            .iter()
            .filter(|s| **s == StatusCode::OK)
            .count();
        assert_eq!(
            winners, 1,
            "round {round}: approve {} {}, reject {} {}",
            approved.status, approved.body, rejected.status, rejected.body
        );
        let loser = if approved.status == StatusCode::OK {
            &rejected
        } else {
            &approved
        };
        assert_eq!(loser.status, StatusCode::CONFLICT, "{}", loser.body);
        let status = app.get(&format!("/v1/change-requests/{id}")).await.body["status"].clone();
        let layer = app.get_layer("checkout", &query).await;
        if approved.status == StatusCode::OK {
            assert_eq!(status, "approved", "round {round}");
            assert_eq!(layer.body["values"], json!({"round": round}));
        } else {
            assert_eq!(status, "rejected", "round {round}");
            assert_eq!(
                layer.status,
                StatusCode::NOT_FOUND,
                "round {round}: rejected, yet applied: {}",
                layer.body
            );
        }
    }
}

#[tokio::test]
async fn a_request_left_applying_is_concluded_by_approving_it_again() {
    // The server stopped between recording the approval and applying it:
    // the request's last message says `applying`. Nothing can reject it any
    // more; approving it again applies the change once and concludes it.
    left_applying(false).await;
}

#[tokio::test]
async fn a_request_left_applying_after_its_change_applied_is_not_applied_twice() {
    // The server stopped after applying the change, before concluding.
    left_applying(true).await;
}

/// Publishes `message` to the events stream as the server would, with its
/// command id as `Nats-Msg-Id`.
async fn publish_raw(app: &TestApp, subject: String, message: &Value) {
    let client = async_nats::connect(app.nats.url()).await.unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", message["command_id"].as_str().unwrap());
    async_nats::jetstream::new(client)
        .publish_with_headers(
            subject,
            headers,
            serde_json::to_vec(message).unwrap().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
}

async fn left_applying(layer_already_applied: bool) {
    let app = spawn_app().await;
    guarded(&app, json!([{"env": "prod"}])).await;
    let alice = token(&app, editor("alice", None)).await;
    let bob = token(&app, editor("bob", None)).await;
    let opened = as_(
        &app,
        &alice,
        Method::PUT,
        "/v1/namespaces/checkout/layer?env=prod",
        Some(json!({"values": {"limit": 3}})),
    )
    .await;
    assert_eq!(opened.status, StatusCode::ACCEPTED, "{}", opened.body);
    let id = opened.body["change_request"].as_str().unwrap().to_owned();
    let alice_name = format!("token:{}", token_id(&alice));
    let bob_name = format!("token:{}", token_id(&bob));
    let applying = json!({
        "v": 1,
        "command_id": "interrupted-approval",
        "aggregate_type": "change-request",
        "aggregate_id": format!("_.{id}"),
        "revision": 2,
        "at": "2026-01-01T00:00:00Z",
        "actor": bob_name,
        "events": [{"ChangeRequestApproving": {
            "id": id,
            "namespace": "checkout",
            "scope": {"env": "prod"},
            "change": {"kind": "replace", "values": {"limit": 3}, "lock": null},
            "message": "",
            "base_revision": 0,
            "author": alice_name,
            "author_identity": alice_name,
            "status": "applying",
            "decided_by": bob_name,
            "reason": null,
        }}],
    });
    publish_raw(
        &app,
        format!("ecs.events._.change-request._.{id}"),
        &applying,
    )
    .await;
    if layer_already_applied {
        let layer = json!({
            "v": 1,
            "command_id": format!("change-request-{id}"),
            "aggregate_type": "layer",
            "aggregate_id": "checkout.prod._._._",
            "revision": 1,
            "at": "2026-01-01T00:00:00Z",
            "actor": bob_name,
            "events": [{"LayerChanged": {
                "namespace": "checkout",
                "scope": {"env": "prod"},
                "revision": 1,
                "values": {"limit": 3},
                "lock": [],
                "message": format!(" (change request {id} by {alice_name})"),
                "change": {"kind": "replaced"},
            }}],
        });
        publish_raw(
            &app,
            "ecs.events._.layer.checkout.prod._._._".into(),
            &layer,
        )
        .await;
    }
    let mut status = Value::Null;
    for _ in 0..100 {
        status = app.get(&format!("/v1/change-requests/{id}")).await.body["status"].clone();
        if status == "applying" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, "applying");
    let carol = token(&app, editor("carol", None)).await;
    let rejected = decide(&app, &carol, &id, "reject").await;
    assert_eq!(rejected.status, StatusCode::CONFLICT, "{}", rejected.body);
    let own = decide(&app, &alice, &id, "approve").await;
    assert_eq!(own.status, StatusCode::FORBIDDEN, "{}", own.body);

    let resumed = decide(&app, &carol, &id, "approve").await;
    assert_eq!(resumed.status, StatusCode::OK, "{}", resumed.body);
    let again = decide(&app, &bob, &id, "approve").await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    let shown = app.get(&format!("/v1/change-requests/{id}")).await;
    assert_eq!(shown.body["status"], "approved", "{}", shown.body);
    let layer = app.get_layer("checkout", "env=prod").await;
    assert_eq!(layer.body["values"], json!({"limit": 3}));
    assert_eq!(layer.revision(), 1, "applied once");
}
