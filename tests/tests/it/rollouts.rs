//! Rollout plans against real NATS and PostgreSQL: a plan moves a flag's
//! percentage split on schedule, each step one audited layer revision that
//! OFREP answers follow; pause, resume and cancel; a plan survives a restart
//! of the server and the step that fell due meanwhile applies once; bad plans
//! are refused naming the field.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use ecs_tests::app::{ADMIN_TOKEN, Answer, TestApp, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[track_caller]
fn assert_status(answer: &Answer, status: StatusCode) {
    assert_eq!(answer.status, status, "{}", answer.body);
}

/// A flags namespace whose global layer defines `new-ui` (on/off, off by
/// default).
async fn rollout_app() -> TestApp {
    let app = spawn_app().await;
    assert_status(
        &app.put_namespace("flags", &json!({ "kind": "flags" }))
            .await,
        StatusCode::CREATED,
    );
    assert_status(
        &app.put_layer(
            "flags",
            "",
            &json!({ "values": { "flags": {
                "new-ui": { "state": "ENABLED", "variants": { "on": true, "off": false },
                            "defaultVariant": "off" },
                "banner": { "state": "ENABLED", "variants": { "hello": "hello" },
                            "defaultVariant": "hello" }
            } } }),
        )
        .await,
        StatusCode::CREATED,
    );
    app
}

/// RFC 3339 of `seconds` from now.
fn in_seconds(seconds: f64) -> String {
    (OffsetDateTime::now_utc() + time::Duration::seconds_f64(seconds))
        .format(&Rfc3339)
        .unwrap()
}

async fn create_plan(app: &TestApp, steps: &[(f64, u8)]) -> (String, Vec<OffsetDateTime>) {
    let steps: Vec<Value> = steps
        .iter()
        .map(|(at, percent)| json!({ "at": in_seconds(*at), "percent": percent }))
        .collect();
    let created = app
        .post(
            "/v1/namespaces/flags/rollouts",
            &json!({ "flag": "new-ui", "steps": steps }),
        )
        .await;
    assert_status(&created, StatusCode::CREATED);
    assert_eq!(created.body["status"], "active");
    assert_eq!(created.body["variant"], "on");
    assert_eq!(created.body["otherwise"], "off");
    let times = steps
        .iter()
        .map(|s| OffsetDateTime::parse(s["at"].as_str().unwrap(), &Rfc3339).unwrap())
        .collect();
    (created.body["id"].as_str().unwrap().to_owned(), times)
}

async fn plan(app: &TestApp, id: &str) -> Value {
    let answer = app
        .get(&format!("/v1/namespaces/flags/rollouts/{id}"))
        .await;
    assert_status(&answer, StatusCode::OK);
    answer.body
}

/// Waits until the plan has `applied` steps applied.
async fn until_applied(app: &TestApp, id: &str, applied: u64) -> Value {
    for _ in 0..600 {
        let plan = plan(app, id).await;
        if plan["applied"] == json!(applied) {
            return plan;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("plan {id} did not reach {applied} applied steps");
}

/// Sleeps until `at` has passed by `margin`.
async fn sleep_past(at: OffsetDateTime, margin: Duration) {
    let left = at + margin - OffsetDateTime::now_utc();
    if left.is_positive() {
        tokio::time::sleep(left.unsigned_abs()).await;
    }
}

/// How many of 200 targeting keys OFREP answers `true` for `new-ui`.
async fn keys_on(app: &TestApp) -> usize {
    let mut on = 0;
    for user in 0..200 {
        let request = app
            .client
            .post(format!("{}/ofrep/v1/evaluate/flags/new-ui", app.address))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({ "context": { "targetingKey": format!("user-{user}") } }));
        let answer = app.send(request).await;
        assert_status(&answer, StatusCode::OK);
        if answer.body["value"] == json!(true) {
            on += 1;
        }
    }
    on
}

/// The global layer's revisions: (actor, message, new-ui's targeting).
async fn revisions(app: &TestApp) -> Vec<(String, String, Value)> {
    let history = app.history("flags", "").await;
    assert_status(&history, StatusCode::OK);
    history.body["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["actor"].as_str().unwrap().to_owned(),
                r["message"].as_str().unwrap().to_owned(),
                r["values"]["flags"]["new-ui"]["targeting"].clone(),
            )
        })
        .collect()
}

fn split(on: u8) -> Value {
    json!({ "fractional": [["on", on], ["off", 100 - on]] })
}

#[tokio::test]
async fn a_plan_advances_on_schedule_each_step_one_audited_revision() {
    let app = rollout_app().await;
    assert_eq!(keys_on(&app).await, 0);
    let (id, _) = create_plan(&app, &[(2.0, 30), (4.0, 100)]).await;
    let listed = app.get("/v1/namespaces/flags/rollouts").await;
    assert_status(&listed, StatusCode::OK);
    assert_eq!(listed.body["rollouts"][0]["id"], json!(id));

    until_applied(&app, &id, 1).await;
    let partly = keys_on(&app).await;
    assert!(0 < partly && partly < 200, "30 % of 200 keys: {partly}");
    let done = until_applied(&app, &id, 2).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(keys_on(&app).await, 200);

    let actor = format!("rollout:{id}");
    let revisions = revisions(&app).await;
    assert_eq!(revisions.len(), 3, "{revisions:?}");
    assert_eq!(revisions[1].0, actor);
    assert_eq!(revisions[1].2, split(30));
    assert!(revisions[1].1.contains("step 1"), "{}", revisions[1].1);
    assert_eq!(revisions[2].0, actor);
    assert_eq!(revisions[2].2, split(100));
    // The other flag is untouched.
    let layer = app.get_layer("flags", "").await;
    assert_eq!(
        layer.body["values"]["flags"]["banner"]["defaultVariant"],
        "hello"
    );
    // Each step is in the audit log as a layer write by the plan.
    let audit = app.get("/v1/audit?limit=1000").await;
    assert_status(&audit, StatusCode::OK);
    let by_plan = audit.body.to_string().matches(&actor).count();
    assert!(by_plan >= 2, "{}", audit.body);
}

#[tokio::test]
async fn pause_stops_a_plan_resume_continues_and_cancel_ends_it() {
    let app = rollout_app().await;
    let (id, times) = create_plan(&app, &[(2.0, 20), (3.0, 50), (5.0, 100)]).await;
    let path = |what: &str| format!("/v1/namespaces/flags/rollouts/{id}/{what}");
    let paused = app.post(&path("pause"), &Value::Null).await;
    assert_status(&paused, StatusCode::OK);
    assert_eq!(paused.body["status"], "paused");
    assert_status(
        &app.post(&path("pause"), &Value::Null).await,
        StatusCode::CONFLICT,
    );

    // Both first steps fall due while paused: nothing is written.
    sleep_past(times[1], Duration::from_millis(1500)).await;
    assert_eq!(plan(&app, &id).await["applied"], 0);
    assert_eq!(revisions(&app).await.len(), 1);

    // Resuming applies the latest due step, as one revision.
    let resumed = app.post(&path("resume"), &Value::Null).await;
    assert_status(&resumed, StatusCode::OK);
    assert_eq!(resumed.body["status"], "active");
    until_applied(&app, &id, 2).await;
    let revisions_now = revisions(&app).await;
    assert_eq!(revisions_now.len(), 2, "{revisions_now:?}");
    assert_eq!(revisions_now[1].2, split(50));

    // Cancelled, the last step never applies.
    let cancelled = app.post(&path("cancel"), &Value::Null).await;
    assert_status(&cancelled, StatusCode::OK);
    assert_eq!(cancelled.body["status"], "cancelled");
    assert_status(
        &app.post(&path("resume"), &Value::Null).await,
        StatusCode::CONFLICT,
    );
    sleep_past(times[2], Duration::from_millis(1500)).await;
    let ended = plan(&app, &id).await;
    assert_eq!(ended["applied"], 2);
    assert_eq!(ended["status"], "cancelled");
    assert_eq!(revisions(&app).await.len(), 2);
}

#[tokio::test]
async fn a_plan_survives_a_restart_and_the_step_due_meanwhile_applies_once() {
    let mut app = rollout_app().await;
    let (id, times) = create_plan(&app, &[(2.0, 10), (4.0, 60)]).await;
    until_applied(&app, &id, 1).await;
    app.stop().await;
    sleep_past(times[1], Duration::from_millis(1000)).await;
    app.start().await;
    let done = until_applied(&app, &id, 2).await;
    assert_eq!(done["status"], "completed");
    let revisions = revisions(&app).await;
    assert_eq!(revisions.len(), 3, "{revisions:?}");
    assert_eq!(revisions[2].2, split(60));
    let on = keys_on(&app).await;
    assert!(0 < on && on < 200, "60 % of 200 keys: {on}");
}

#[tokio::test]
async fn bad_plans_are_refused_naming_the_field_and_nothing_is_stored() {
    let app = rollout_app().await;
    assert_status(
        &app.put_namespace("checkout", &json!({})).await,
        StatusCode::CREATED,
    );
    let cases = [
        (
            "flags",
            json!({ "flag": "missing", "steps": [{ "at": in_seconds(60.0), "percent": 5 }] }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/flag",
        ),
        (
            "flags",
            json!({ "flag": "banner", "steps": [{ "at": in_seconds(60.0), "percent": 5 }] }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/flag",
        ),
        (
            "flags",
            json!({ "flag": "new-ui", "steps": [
                { "at": in_seconds(60.0), "percent": 5 },
                { "at": in_seconds(30.0), "percent": 25 }] }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/steps/1/at",
        ),
        (
            "flags",
            json!({ "flag": "new-ui", "steps": [{ "at": in_seconds(60.0), "percent": 101 }] }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/steps/0/percent",
        ),
        (
            "flags",
            json!({ "flag": "new-ui", "steps": [{ "at": in_seconds(-60.0), "percent": 5 }] }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/steps/0/at",
        ),
        (
            "flags",
            json!({ "flag": "new-ui", "steps": [] }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/steps",
        ),
        (
            "flags",
            json!({ "flag": "new-ui", "steps": [{ "at": "tomorrow", "percent": 5 }] }),
            StatusCode::BAD_REQUEST,
            "steps[0].at",
        ),
        (
            "checkout",
            json!({ "flag": "new-ui", "steps": [{ "at": in_seconds(60.0), "percent": 5 }] }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "ns",
        ),
    ];
    for (ns, body, status, field) in cases {
        let answer = app
            .post(&format!("/v1/namespaces/{ns}/rollouts"), &body)
            .await;
        assert_eq!(answer.status, status, "{body}: {}", answer.body);
        assert_eq!(answer.body["field"], field, "{body}: {}", answer.body);
    }
    let missing = app
        .post(
            "/v1/namespaces/nowhere/rollouts",
            &json!({ "flag": "new-ui", "steps": [{ "at": in_seconds(60.0), "percent": 5 }] }),
        )
        .await;
    assert_status(&missing, StatusCode::NOT_FOUND);
    assert_status(
        &app.get("/v1/namespaces/flags/rollouts/0000").await,
        StatusCode::NOT_FOUND,
    );
    let listed = app.get("/v1/namespaces/flags/rollouts").await;
    assert_eq!(listed.body["rollouts"], json!([]), "{}", listed.body);

    // The routes are documented.
    let doc = app.get("/v1/openapi.json").await.body;
    for (path, method) in [
        ("/v1/namespaces/{ns}/rollouts", "get"),
        ("/v1/namespaces/{ns}/rollouts", "post"),
        ("/v1/namespaces/{ns}/rollouts/{id}", "get"),
        ("/v1/namespaces/{ns}/rollouts/{id}/pause", "post"),
        ("/v1/namespaces/{ns}/rollouts/{id}/resume", "post"),
        ("/v1/namespaces/{ns}/rollouts/{id}/cancel", "post"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_instances_each_step_is_written_once() {
    let app = rollout_app().await;
    let second = ecs_api::app::Application::build(app.settings.clone())
        .await
        .expect("build a second instance");
    let second_url = second.url();
    let stop_second = second.shutdown_token();
    let running = tokio::spawn(second.run_until_stopped());
    // The plan is created through one instance and read through the other.
    let (id, _) = create_plan(&app, &[(2.0, 10), (3.0, 40), (4.0, 100)]).await;
    let mut done = Value::Null;
    for _ in 0..600 {
        let answer = app
            .send(
                app.client
                    .get(format!("{second_url}/v1/namespaces/flags/rollouts/{id}"))
                    .bearer_auth(ADMIN_TOKEN),
            )
            .await;
        assert_status(&answer, StatusCode::OK);
        done = answer.body;
        if done["status"] == "completed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(done["status"], "completed", "{done}");
    let revisions = revisions(&app).await;
    let by_plan = revisions
        .iter()
        .filter(|r| r.0 == format!("rollout:{id}"))
        .count();
    assert!(
        (1..=3).contains(&by_plan),
        "at most one revision per step: {revisions:?}"
    );
    assert_eq!(revisions.last().unwrap().2, split(100));
    // One of the two instances runs the scheduler.
    let mut holders = 0;
    for url in [app.address.clone(), second_url.clone()] {
        let ready = app
            .send(
                app.client
                    .get(format!("{url}/readyz"))
                    .bearer_auth(ADMIN_TOKEN),
            )
            .await;
        if ready.body["leases"]["rollouts"]["held"] == json!(true) {
            holders += 1;
        }
    }
    assert_eq!(holders, 1, "the rollouts lease is held once");
    stop_second.cancel();
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn plans_need_the_right_to_write_the_layer_and_refuse_layers_under_approvals() {
    let app = rollout_app().await;
    let issue = |body: Value| {
        let app = &app;
        async move {
            let r = app.post("/v1/tokens", &body).await;
            assert_status(&r, StatusCode::CREATED);
            r.body["token"].as_str().unwrap().to_owned()
        }
    };
    let viewer = issue(json!({"name": "v", "role": "viewer", "namespaces": ["flags"]})).await;
    let editor = issue(json!({"name": "e", "role": "editor", "namespaces": ["flags"]})).await;
    let body = json!({ "flag": "new-ui", "steps": [{ "at": in_seconds(60.0), "percent": 5 }] });
    let create = |token: String| {
        app.client
            .post(format!("{}/v1/namespaces/flags/rollouts", app.address))
            .bearer_auth(token)
            .json(&body)
    };
    let refused = app.send(create(viewer.clone())).await;
    assert!(
        refused.status == StatusCode::FORBIDDEN || refused.status == StatusCode::NOT_FOUND,
        "{} {}",
        refused.status,
        refused.body
    );
    let created = app.send(create(editor)).await;
    assert_status(&created, StatusCode::CREATED);
    assert!(
        created.body["created_by"]
            .as_str()
            .unwrap()
            .starts_with("token:"),
        "{}",
        created.body
    );
    let id = created.body["id"].as_str().unwrap();
    // The viewer reads the plan but cannot pause it.
    let read = app
        .send(
            app.client
                .get(format!("{}/v1/namespaces/flags/rollouts/{id}", app.address))
                .bearer_auth(&viewer),
        )
        .await;
    assert_status(&read, StatusCode::OK);
    let pause = app
        .send(
            app.client
                .post(format!(
                    "{}/v1/namespaces/flags/rollouts/{id}/pause",
                    app.address
                ))
                .bearer_auth(&viewer),
        )
        .await;
    assert!(
        pause.status.is_client_error() && pause.status != StatusCode::CONFLICT,
        "{}",
        pause.body
    );
    assert_eq!(plan(&app, id).await["status"], "active");

    // Under an approval policy, a plan would bypass the approvals.
    assert_status(
        &app.put_namespace(
            "flags",
            &json!({ "kind": "flags", "approval": { "scopes": [{}] } }),
        )
        .await,
        StatusCode::OK,
    );
    let refused = app.post("/v1/namespaces/flags/rollouts", &body).await;
    assert_status(&refused, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.body["field"], "/scope", "{}", refused.body);
}

#[tokio::test]
async fn a_step_that_cannot_apply_says_why_and_applies_once_it_can() {
    let app = rollout_app().await;
    let (id, times) = create_plan(&app, &[(2.0, 30)]).await;
    // The flag leaves the layer before the step is due.
    let layer = app.get_layer("flags", "").await;
    let mut values = layer.body["values"].clone();
    let flag = values["flags"]
        .as_object_mut()
        .unwrap()
        .remove("new-ui")
        .unwrap();
    assert_status(
        &app.put_layer("flags", "", &json!({ "values": values }))
            .await,
        StatusCode::OK,
    );
    sleep_past(times[0], Duration::from_millis(500)).await;
    let mut stuck = Value::Null;
    for _ in 0..600 {
        stuck = plan(&app, &id).await;
        if stuck["last_error"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reason = stuck["last_error"].as_str().unwrap_or_default();
    assert!(reason.contains("new-ui"), "{stuck}");
    assert_eq!(stuck["applied"], 0);

    // Back in the layer, the step applies and the reason is gone.
    values["flags"]["new-ui"] = flag;
    assert_status(
        &app.put_layer("flags", "", &json!({ "values": values }))
            .await,
        StatusCode::OK,
    );
    let done = until_applied(&app, &id, 1).await;
    assert!(done.get("last_error").is_none(), "{done}");
    assert_eq!(revisions(&app).await.last().unwrap().2, split(30));
}

/// The audit entries of rollout plans matching `query`, once `done` holds
/// for them: the audit stream is projected asynchronously.
async fn plan_entries(app: &TestApp, query: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let answer = app.get(&format!("/v1/audit?limit=1000&{query}")).await;
        assert_status(&answer, StatusCode::OK);
        let entries: Vec<Value> = answer.body["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"].as_str().unwrap().starts_with("rollout."))
            .cloned()
            .collect();
        if done(&entries) {
            return entries;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{query}: plan entries missing: {entries:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn each_change_of_a_plan_is_in_the_audit_log_with_its_actor() {
    let app = rollout_app().await;
    let editor = app
        .post(
            "/v1/tokens",
            &json!({"name": "e", "role": "editor", "namespaces": ["flags"]}),
        )
        .await;
    assert_status(&editor, StatusCode::CREATED);
    let editor_token = editor.body["token"].as_str().unwrap().to_owned();
    let as_editor = |path: String, body: Value| {
        app.client
            .post(format!("{}{path}", app.address))
            .bearer_auth(&editor_token)
            .header("x-correlation-id", "plan-audit")
            .json(&body)
    };
    let steps = json!([
        { "at": in_seconds(2.0), "percent": 50 },
        { "at": in_seconds(600.0), "percent": 100 }
    ]);
    let created = app
        .send(as_editor(
            "/v1/namespaces/flags/rollouts".into(),
            json!({ "flag": "new-ui", "steps": steps }),
        ))
        .await;
    assert_status(&created, StatusCode::CREATED);
    let editor_name = created.body["created_by"].as_str().unwrap().to_owned();
    let id = created.body["id"].as_str().unwrap().to_owned();
    let control = |what: &str| format!("/v1/namespaces/flags/rollouts/{id}/{what}");
    // The editor pauses, the admin resumes, the editor cancels.
    assert_status(
        &app.send(as_editor(control("pause"), Value::Null)).await,
        StatusCode::OK,
    );
    assert_status(
        &app.post(&control("resume"), &Value::Null).await,
        StatusCode::OK,
    );
    until_applied(&app, &id, 1).await;
    assert_status(
        &app.send(as_editor(control("cancel"), Value::Null)).await,
        StatusCode::OK,
    );
    // A refused control changes nothing and records no plan change.
    assert_status(
        &app.post(&control("pause"), &Value::Null).await,
        StatusCode::CONFLICT,
    );

    let expected = [
        (
            "rollout.created",
            editor_name.as_str(),
            Value::Null,
            "active",
        ),
        (
            "rollout.paused",
            editor_name.as_str(),
            json!("active"),
            "paused",
        ),
        ("rollout.resumed", "admin", json!("paused"), "active"),
        (
            "rollout.cancelled",
            editor_name.as_str(),
            json!("active"),
            "cancelled",
        ),
    ];
    let entries = plan_entries(&app, "namespace=flags", |e| e.len() >= expected.len()).await;
    // Newest first.
    let mut entries = entries;
    entries.reverse();
    let mut mismatches = Vec::new();
    assert_eq!(entries.len(), expected.len(), "{entries:#?}");
    for (entry, (action, actor, before, after)) in entries.iter().zip(expected.clone()) {
        let seen = (
            entry["action"].as_str().unwrap_or_default(),
            entry["actor"].as_str().unwrap_or_default(),
            entry["before"]["status"].clone(),
            entry["after"]["status"].as_str().unwrap_or_default(),
        );
        if seen != (action, actor, before.clone(), after)
            || entry["outcome"] != "accepted"
            || entry["namespace"] != "flags"
            || entry["after"]["id"] != json!(id)
            || entry["after"]["flag"] != "new-ui"
            || entry["scope"] != json!({})
            || entry["at"].as_str().is_none()
            || !entry["id"].as_str().unwrap().starts_with("rollout:")
        {
            mismatches.push(format!("expected {action} by {actor}: {entry}"));
        }
        if actor != "admin" && entry["correlation_id"] != "plan-audit" {
            mismatches.push(format!("{action} lost its correlation id: {entry}"));
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");

    // The filters work on plan entries as on any other.
    let paused = plan_entries(&app, "action=rollout.paused", |e| !e.is_empty()).await;
    assert_eq!(paused.len(), 1, "{paused:#?}");
    let by_editor = plan_entries(
        &app,
        &format!("actor={editor_name}&outcome=accepted"),
        |e| e.len() >= 3,
    )
    .await;
    assert_eq!(by_editor.len(), 3, "{by_editor:#?}");
    let elsewhere = plan_entries(&app, "namespace=other", |_| true).await;
    assert!(elsewhere.is_empty(), "{elsewhere:#?}");

    // They survive a rebuild of the projections, as refused attempts do.
    app.rebuild_projections().await;
    let rebuilt = plan_entries(&app, "namespace=flags", |e| e.len() >= expected.len()).await;
    assert_eq!(rebuilt.len(), expected.len(), "{rebuilt:#?}");
}

#[tokio::test]
async fn the_scheduler_records_a_plans_completion_in_the_audit_log() {
    let app = rollout_app().await;
    let (id, _) = create_plan(&app, &[(2.0, 100)]).await;
    until_applied(&app, &id, 1).await;
    let completed = plan_entries(&app, "action=rollout.completed", |e| !e.is_empty()).await;
    assert_eq!(completed.len(), 1, "{completed:#?}");
    assert_eq!(completed[0]["actor"], format!("rollout:{id}"));
    assert_eq!(completed[0]["before"]["status"], "active");
    assert_eq!(completed[0]["after"]["status"], "completed");
    assert_eq!(completed[0]["after"]["applied"], 1);
}
