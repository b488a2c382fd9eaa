//! The projections' integrity: a message a projection cannot read stops it
//! loudly until an operator acts, the feed publisher resumes from its own
//! offset, a rebuild never serves half-built tables, and the server refuses
//! to run against an events stream or a master key that could lose data.

#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use ecs_api::Application;
use ecs_tests::app::{Answer, TestApp, settings_for, spawn_app, spawn_app_with};
use ecs_tests::servers::{NatsServer, TestDatabase};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Waits until `check` answers `Some`, at most `timeout`.
async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn jetstream_of(app: &TestApp) -> jetstream::Context {
    jetstream::new(async_nats::connect(app.nats.url()).await.unwrap())
}

/// Publishes `payload` into a stream as nobody but ECS should; answers its
/// position.
async fn publish_raw(app: &TestApp, subject: &str, payload: &'static [u8]) -> u64 {
    jetstream_of(app)
        .await
        .publish(subject.to_owned(), payload.into())
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence
}

async fn readyz(app: &TestApp) -> Answer {
    app.send(app.client.get(format!("{}/readyz", app.address)))
        .await
}

async fn metrics(app: &TestApp) -> String {
    app.client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of the metric `series` (name and labels) in a Prometheus text.
fn gauge(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

/// The stop `/readyz` reports for `projection`, once it reports one.
async fn stopped(app: &TestApp, projection: &str) -> Value {
    eventually(
        &format!("/readyz to report {projection} stopped"),
        Duration::from_secs(20),
        || async {
            let ready = readyz(app).await;
            let stop = ready.body["stopped"]
                .as_array()?
                .iter()
                .find(|s| s["projection"] == projection)
                .cloned()?;
            assert_eq!(
                ready.status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{}",
                ready.body
            );
            assert_eq!(ready.body["ready"], false);
            Some(stop)
        },
    )
    .await
}

async fn skip(app: &TestApp, projection: &str, position: u64) -> Answer {
    app.post(
        &format!("/v1/admin/projections/{projection}/skip?position={position}"),
        &Value::Null,
    )
    .await
}

async fn limit(app: &TestApp) -> Value {
    app.get_layer("checkout", "").await.body["values"]["limit"].clone()
}

#[tokio::test]
async fn an_unreadable_event_stops_the_projections_until_an_operator_skips_it() {
    let app = spawn_app_with(|s| s.write_wait_ms = 300).await;
    assert!(
        app.put_namespace("checkout", &json!({}))
            .await
            .status
            .is_success()
    );
    let first = app
        .put_layer("checkout", "", &json!({"values": {"limit": 1}}))
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);

    let garbage = publish_raw(&app, "ecs.events._.namespace.garbage", b"{not an event").await;
    // A write after the unreadable message is accepted into the stream but
    // not projected past it.
    let later = app
        .put_layer("checkout", "", &json!({"values": {"limit": 2}}))
        .await;
    assert!(later.status.is_success(), "{}", later.body);
    assert!(later.position() > garbage);

    for projection in ["config", "feed"] {
        let stop = stopped(&app, projection).await;
        assert_eq!(stop["position"], garbage, "{stop}");
        assert!(
            stop["error"].as_str().unwrap().contains("undecodable"),
            "{stop}"
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(limit(&app).await, 1, "nothing after the stop is applied");
    let status = app.get("/v1/admin/projections").await;
    assert_eq!(status.body["applied"], garbage - 1, "{}", status.body);
    let text = metrics(&app).await;
    assert_eq!(
        gauge(&text, r#"ecs_projection_stopped{projection="config"}"#),
        Some(1.0),
        "{text}"
    );

    // A rebuild is refused while the projection is stopped; only the
    // position it stopped at can be skipped, and only by an admin.
    let rebuild = app
        .post("/v1/admin/projections/rebuild", &Value::Null)
        .await;
    assert_eq!(rebuild.status, StatusCode::CONFLICT, "{}", rebuild.body);
    let wrong = skip(&app, "config", garbage + 1).await;
    assert_eq!(wrong.status, StatusCode::CONFLICT, "{}", wrong.body);
    let unknown = skip(&app, "nothing", garbage).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.body);
    let missing = app
        .post("/v1/admin/projections/config/skip", &Value::Null)
        .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST, "{}", missing.body);
    assert_eq!(limit(&app).await, 1);

    let skipped = skip(&app, "config", garbage).await;
    assert_eq!(skipped.status, StatusCode::ACCEPTED, "{}", skipped.body);
    eventually(
        "the later write to apply",
        Duration::from_secs(10),
        || async { (limit(&app).await == 2).then_some(()) },
    )
    .await;
    // The feed is still stopped: each projection is skipped on its own.
    assert_eq!(stopped(&app, "feed").await["position"], garbage);
    assert_eq!(
        skip(&app, "feed", garbage).await.status,
        StatusCode::ACCEPTED
    );
    app.wait_ready().await;
    let ready = readyz(&app).await;
    assert_eq!(ready.body["stopped"], json!([]), "{}", ready.body);
    assert_eq!(
        gauge(
            &metrics(&app).await,
            r#"ecs_projection_stopped{projection="config"}"#
        ),
        Some(0.0)
    );

    // The skips are in the audit log, with who decided and why.
    let audit = app.get("/v1/audit?action=projection.skipped").await;
    let entries = audit.body["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{}", audit.body);
    assert!(
        entries.iter().all(|e| e["actor"] == "admin"),
        "{}",
        audit.body
    );

    // A rebuild honours the recorded skip and ends equal to the tables.
    let incremental = app.dump_projections().await;
    app.rebuild_projections().await;
    assert_eq!(app.dump_projections().await, incremental);
    assert_eq!(
        app.get("/v1/audit?action=projection.skipped").await.body["entries"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn an_unreadable_audit_record_stops_the_audit_projection() {
    let app = spawn_app().await;
    let garbage = publish_raw(&app, "ecs.audit._.refused", b"\x00 not a record").await;
    let stop = stopped(&app, "audit").await;
    assert_eq!(stop["position"], garbage, "{stop}");

    // A refused attempt after it is not in the audit log until the skip.
    let refused = app.put_namespace("checkout", &json!({"schema": 5})).await;
    assert!(refused.status.is_client_error(), "{}", refused.body);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refusals = || async {
        app.get("/v1/audit?outcome=refused").await.body["entries"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(refusals().await, 0);
    assert_eq!(
        skip(&app, "audit", garbage).await.status,
        StatusCode::ACCEPTED
    );
    eventually(
        "the refusal to be audited",
        Duration::from_secs(10),
        || async { (refusals().await == 1).then_some(()) },
    )
    .await;
    app.wait_ready().await;
}

#[tokio::test]
async fn a_wrong_or_missing_master_key_refuses_to_start() {
    let mut app = spawn_app().await;
    assert!(
        app.put_namespace("checkout", &json!({}))
            .await
            .status
            .is_success()
    );
    assert!(app.put_tenant("acme", "pro").await.status.is_success());
    assert!(
        app.put_layer("checkout", "tenant=acme", &json!({"values": {"limit": 3}}))
            .await
            .status
            .is_success()
    );
    app.stop().await;

    let mut wrong = app.settings.clone();
    wrong.master_key = Some("11".repeat(32).into());
    let error = Application::build(wrong)
        .await
        .err()
        .expect("a wrong master key refuses to start");
    let message = format!("{error:#}");
    assert!(message.contains("ECS_MASTER_KEY"), "{message}");
    assert!(message.contains("acme"), "{message}");

    let mut missing = app.settings.clone();
    missing.master_key = None;
    let error = Application::build(missing)
        .await
        .err()
        .expect("a missing master key refuses to start");
    assert!(format!("{error:#}").contains("ECS_MASTER_KEY"), "{error:#}");

    // The right key still starts, and reads the tenant's data.
    app.start().await;
    assert_eq!(
        app.get_layer("checkout", "tenant=acme").await.body["values"]["limit"],
        3
    );
}

#[tokio::test]
async fn after_an_erasure_and_a_restart_the_feed_keeps_publishing() {
    let mut app = spawn_app().await;
    assert!(
        app.put_namespace("checkout", &json!({}))
            .await
            .status
            .is_success()
    );
    assert!(app.put_tenant("acme", "pro").await.status.is_success());
    assert!(
        app.put_layer("checkout", "tenant=acme", &json!({"values": {"limit": 3}}))
            .await
            .status
            .is_success()
    );
    let erased = app.post("/v1/tenants/acme/erase", &json!({})).await;
    assert!(erased.status.is_success(), "{}", erased.body);
    let js = jetstream_of(&app).await;
    let feed = js.get_key_value("ecs-feed").await.unwrap();
    eventually(
        "the erasure to purge the feed",
        Duration::from_secs(10),
        || async {
            feed.get("layer.checkout.acme._._._")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;

    app.stop().await;
    app.start().await;
    let written = app
        .put_layer("checkout", "", &json!({"values": {"limit": 9}}))
        .await;
    assert!(written.status.is_success(), "{}", written.body);
    let published = eventually(
        "the write to reach the feed",
        Duration::from_secs(10),
        || async {
            let entry = feed.get("layer.checkout._._._._").await.unwrap()?;
            let message: Value = serde_json::from_slice(&entry).unwrap();
            (message["position"] == written.position()).then_some(message)
        },
    )
    .await;
    assert_eq!(published["values"]["limit"], 9, "{published}");

    // A feed published before the publisher kept its offset resumes after
    // the bucket's newest feed message, passing over purge markers.
    assert!(app.put_tenant("globex", "pro").await.status.is_success());
    let erased = app.post("/v1/tenants/globex/erase", &json!({})).await;
    assert!(erased.status.is_success(), "{}", erased.body);
    eventually(
        "the erasure to purge the feed",
        Duration::from_secs(10),
        || async {
            feed.get("tenant.globex")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;
    app.stop().await;
    let pool = app.db.pool().await.unwrap();
    sqlx::query("DELETE FROM projection_offsets WHERE name = 'feed'")
        .execute(&pool)
        .await
        .unwrap();
    app.start().await;
    let written = app
        .put_layer("checkout", "", &json!({"values": {"limit": 10}}))
        .await;
    assert!(written.status.is_success(), "{}", written.body);
    eventually(
        "the write to reach the feed",
        Duration::from_secs(10),
        || async {
            let entry = feed.get("layer.checkout._._._._").await.unwrap()?;
            let message: Value = serde_json::from_slice(&entry).unwrap();
            (message["values"]["limit"] == 10).then_some(())
        },
    )
    .await;

    // Its position and lag are reported.
    eventually(
        "the feed lag to be reported",
        Duration::from_secs(10),
        || async {
            let ready = readyz(&app).await;
            (ready.status == StatusCode::OK
                && ready.body["feed"]["published"].as_u64()? >= written.position()
                && ready.body["feed"]["lag"] == 0)
                .then_some(())
        },
    )
    .await;
    let text = metrics(&app).await;
    assert!(gauge(&text, "ecs_feed_lag_messages").is_some(), "{text}");
}

async fn issue_token(app: &TestApp, name: &str) -> (String, String) {
    let issued = app
        .post(
            "/v1/tokens",
            &json!({"name": name, "role": "viewer", "namespaces": ["checkout"]}),
        )
        .await;
    assert_eq!(issued.status, StatusCode::CREATED, "{}", issued.body);
    (
        issued.body["id"].as_str().unwrap().to_owned(),
        issued.body["token"].as_str().unwrap().to_owned(),
    )
}

async fn read_with(app: &TestApp, token: &str) -> Answer {
    app.send(
        app.client
            .request(
                Method::GET,
                format!("{}/v1/namespaces/checkout/resolved", app.address),
            )
            .bearer_auth(token),
    )
    .await
}

/// What must hold at every moment of a rebuild: the revoked key stays
/// revoked, the valid one works and reads answer the current configuration.
async fn check_serving(app: &TestApp, valid: &str, revoked: &str, expected: &Value) {
    let read = read_with(app, valid).await;
    assert_eq!(read.status, StatusCode::OK, "valid key: {}", read.body);
    assert_eq!(&read.body["values"], expected, "{}", read.body);
    let read = read_with(app, revoked).await;
    assert_eq!(
        read.status,
        StatusCode::UNAUTHORIZED,
        "revoked key: {}",
        read.body
    );
    let read = app.resolved("checkout", "").await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(&read.body["values"], expected, "{}", read.body);
}

#[tokio::test]
async fn a_rebuild_serves_the_current_tables_until_it_switches_atomically() {
    let app = spawn_app().await;
    assert!(
        app.put_namespace("checkout", &json!({}))
            .await
            .status
            .is_success()
    );
    // A long history, then the keys and the current values last, so a
    // replay reaches them last.
    let writes = (0..40).map(|layer| {
        let app = &app;
        async move {
            for n in 0..10 {
                let answer = app
                    .put_layer(
                        "checkout",
                        &format!("env=e{layer}"),
                        &json!({"values": {"n": n}}),
                    )
                    .await;
                assert!(answer.status.is_success(), "{}", answer.body);
            }
        }
    });
    futures::future::join_all(writes).await;
    let (_, valid) = issue_token(&app, "reader").await;
    let (revoked_id, revoked) = issue_token(&app, "leaver").await;
    let revoke = app.delete(&format!("/v1/tokens/{revoked_id}")).await;
    assert!(revoke.status.is_success(), "{}", revoke.body);
    let current = json!({"limit": 42});
    assert!(
        app.put_layer("checkout", "", &json!({"values": current}))
            .await
            .status
            .is_success()
    );
    check_serving(&app, &valid, &revoked, &current).await;

    // Hold the rebuild before its switch: it cannot take its schema while
    // this transaction locks a table in it.
    let pool = app.db.pool().await.unwrap();
    sqlx::query("CREATE SCHEMA ecs_rebuild")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE ecs_rebuild.hold (x int)")
        .execute(&pool)
        .await
        .unwrap();
    let mut hold = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE ecs_rebuild.hold IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *hold)
        .await
        .unwrap();

    let answer = app
        .post("/v1/admin/projections/rebuild", &Value::Null)
        .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    for _ in 0..20 {
        let status = app.get("/v1/admin/projections").await;
        assert_eq!(status.body["rebuilding"], true, "{}", status.body);
        check_serving(&app, &valid, &revoked, &current).await;
        let ready = readyz(&app).await;
        assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    }
    // Writes keep working, and are read back at once, during the rebuild.
    let current = json!({"limit": 43});
    let written = app
        .put_layer("checkout", "", &json!({"values": current}))
        .await;
    assert!(written.status.is_success(), "{}", written.body);
    check_serving(&app, &valid, &revoked, &current).await;

    let incremental = app.dump_projections().await;
    hold.rollback().await.unwrap();
    eventually("the rebuild to finish", Duration::from_secs(60), || async {
        check_serving(&app, &valid, &revoked, &current).await;
        let status = app.get("/v1/admin/projections").await;
        (status.body["rebuilding"] == false).then_some(())
    })
    .await;
    assert_eq!(app.dump_projections().await, incremental);
    check_serving(&app, &valid, &revoked, &current).await;
    // The projector writes into the switched-in tables from then on.
    let current = json!({"limit": 44});
    let written = app
        .put_layer("checkout", "", &json!({"values": current}))
        .await;
    assert!(written.status.is_success(), "{}", written.body);
    check_serving(&app, &valid, &revoked, &current).await;
    // The rebuild's schemas are gone.
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_namespace WHERE nspname IN ('ecs_rebuild', 'ecs_retired')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn the_events_stream_refuses_deleting_and_purging_messages() {
    let app = spawn_app().await;
    let written = app.put_namespace("checkout", &json!({})).await;
    assert!(written.status.is_success());
    let js = jetstream_of(&app).await;
    let stream = js.get_stream("ECS_EVENTS").await.unwrap();
    assert!(
        stream.delete_message(written.position()).await.is_err(),
        "deleting a message is refused"
    );
    assert!(stream.purge().await.is_err(), "purging is refused");
    assert!(
        stream
            .purge()
            .filter("ecs.events._.namespace.checkout")
            .await
            .is_err(),
        "purging a subject is refused"
    );
    assert_eq!(
        app.get("/v1/namespaces/checkout").await.status,
        StatusCode::OK
    );
    let info = js
        .get_stream("ECS_EVENTS")
        .await
        .unwrap()
        .get_info()
        .await
        .unwrap();
    assert_eq!(info.state.messages, 1);
}

#[tokio::test]
async fn a_pre_created_stream_that_could_lose_events_refuses_to_start() {
    let nats = NatsServer::start();
    let db = TestDatabase::create().await;
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    js.create_stream(stream::Config {
        name: "ECS_EVENTS".to_owned(),
        subjects: vec!["ecs.events.>".to_owned()],
        max_age: Duration::from_secs(3600),
        deny_delete: true,
        deny_purge: false,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    })
    .await
    .unwrap();
    let error = Application::build(settings_for(&nats, &db))
        .await
        .err()
        .expect("a lax events stream refuses to start");
    let message = format!("{error:#}");
    for setting in ["ECS_EVENTS", "deny_purge", "max_age"] {
        assert!(message.contains(setting), "{setting} not named: {message}");
    }
    assert!(!message.contains("deny_delete"), "{message}");
}

#[tokio::test]
async fn an_older_stream_that_discards_old_messages_is_set_to_discard_new() {
    let nats = NatsServer::start();
    let db = TestDatabase::create().await;
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    js.create_stream(stream::Config {
        name: "ECS_EVENTS".to_owned(),
        subjects: vec!["ecs.events.>".to_owned()],
        deny_delete: true,
        deny_purge: true,
        discard: stream::DiscardPolicy::Old,
        ..Default::default()
    })
    .await
    .unwrap();
    let app = Application::build(settings_for(&nats, &db))
        .await
        .expect("a stream that discards old messages but has no limit starts");
    drop(app);
    let info = js
        .get_stream("ECS_EVENTS")
        .await
        .unwrap()
        .get_info()
        .await
        .unwrap();
    assert_eq!(info.config.discard, stream::DiscardPolicy::New);
}
