//! The production edge against real NATS and PostgreSQL: secret settings
//! (`*_FILE`, nothing secret in `Debug` or start-up errors), connection and
//! request limits (header timeout, rate limits, streams per principal),
//! failed authentications recorded once per window, and the audit stream's
//! limits. The process-level shutdown test (SIGTERM) is in the fault suite
//! (`tests/faults/edge.rs`).

#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull::OrderedConfig};
use ecs_api::{Application, Settings};
use ecs_tests::app::{ADMIN_TOKEN, TestApp, settings_for, spawn_app_with};
use ecs_tests::servers::{NatsServer, TestDatabase};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Settings loaded from a TOML file (environment variables still apply).
fn load_toml(text: &str) -> Result<Settings, ecs_api::settings::SettingsError> {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    Settings::load(Some(file.path()))
}

fn secret_file(value: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    // With the line end an editor adds: it is not part of the secret.
    writeln!(file, "{value}").unwrap();
    file
}

#[test]
fn debug_of_the_settings_shows_no_secret() {
    let settings = Settings {
        admin_token: Some("admin-token-0f1e2d".into()),
        master_key: Some("6d61737465722d6b65792d7365637265742d76616c75652d6e6f742d7072696e".into()),
        jwt_hs256_secret: Some("jwt-secret-9a8b7c".into()),
        database_url: "postgres://ecs:pg-password-4d5e@db.internal:5432/ecs".into(),
        nats_url: "nats://ecs:nats-password-6f7a@n1:4222,nats://nats-token-8b9c@n2:4222".into(),
        ..Settings::default()
    };
    let debug = format!("{settings:?} {settings:#?}");
    for secret in [
        "admin-token-0f1e2d",
        "6d61737465722d6b65792d",
        "jwt-secret-9a8b7c",
        "pg-password-4d5e",
        "nats-password-6f7a",
        "nats-token-8b9c",
    ] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
    // What is not secret stays readable.
    assert!(debug.contains("db.internal:5432"), "{debug}");
    assert!(debug.contains("postgres://ecs:***@"), "{debug}");
}

#[test]
fn every_secret_setting_reads_a_file() {
    let token = secret_file("token-from-a-file");
    let key = secret_file("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
    let jwt = secret_file("jwt-from-a-file");
    let db = secret_file("postgres://ecs:from-a-file@db/ecs");
    let nats = secret_file("nats://ecs:from-a-file@n1:4222");
    let settings = load_toml(&format!(
        "admin_token_file = {:?}\nmaster_key_file = {:?}\njwt_hs256_secret_file = {:?}\n\
         database_url_file = {:?}\nnats_url_file = {:?}\n",
        token.path(),
        key.path(),
        jwt.path(),
        db.path(),
        nats.path()
    ))
    .unwrap();
    assert_eq!(settings.admin_token.as_deref(), Some("token-from-a-file"));
    assert_eq!(
        settings.master_key.as_deref(),
        Some("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")
    );
    assert_eq!(
        settings.jwt_hs256_secret.as_deref(),
        Some("jwt-from-a-file")
    );
    assert_eq!(
        settings.database_url.expose(),
        "postgres://ecs:from-a-file@db/ecs"
    );
    assert_eq!(settings.nats_url.expose(), "nats://ecs:from-a-file@n1:4222");
}

#[test]
fn a_secret_and_its_file_together_or_a_missing_file_are_refused() {
    let token = secret_file("token-from-a-file");
    let both = load_toml(&format!(
        "admin_token = \"inline\"\nadmin_token_file = {:?}\n",
        token.path()
    ))
    .unwrap_err()
    .to_string();
    assert!(
        both.contains("ECS_ADMIN_TOKEN or ECS_ADMIN_TOKEN_FILE"),
        "{both}"
    );
    let missing = load_toml("master_key_file = \"/nonexistent/ecs-master-key\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("ECS_MASTER_KEY_FILE /nonexistent/ecs-master-key"),
        "{missing}"
    );
}

#[tokio::test]
async fn the_admin_token_file_authenticates() {
    let token = secret_file("admin-token-read-from-a-file");
    let loaded = load_toml(&format!("admin_token_file = {:?}\n", token.path())).unwrap();
    let app = spawn_app_with(|s| s.admin_token = loaded.admin_token).await;
    let answer = app
        .send(
            app.client
                .get(format!("{}/v1/namespaces", app.address))
                .bearer_auth("admin-token-read-from-a-file"),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    // The file's line end is not part of the token, and the test token is not it.
    let old = app.get("/v1/namespaces").await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_start_up_failure_does_not_print_a_password() {
    let nats = NatsServer::start();
    let db = TestDatabase::create().await;
    // PostgreSQL refuses the password; NATS is not there at all.
    let cases = [
        (
            "postgres",
            Settings {
                database_url: db
                    .url
                    .replacen("postgres://", "postgres://ecs_nobody:pg-pass-3141@", 1)
                    .replacen("@postgres@", "@", 1)
                    .into(),
                ..settings_for(&nats, &db)
            },
            "pg-pass-3141",
        ),
        (
            "nats",
            Settings {
                nats_url: "nats://ecs:nats-pass-2718@127.0.0.1:1".into(),
                ..settings_for(&nats, &db)
            },
            "nats-pass-2718",
        ),
    ];
    for (name, settings, password) in cases {
        let redactor = settings.redactor();
        let error = match Application::build(settings).await {
            Ok(_) => panic!("{name}: the server started with a wrong URL"),
            Err(error) => error,
        };
        let shown = format!("{error:#} / {error:?}");
        assert!(!shown.contains(password), "{name}: {shown}");
        assert!(shown.contains("***"), "{name}: the URL is named: {shown}");
        // What the binary prints passes the redactor too.
        assert!(!redactor.redact(&shown).contains(password));
    }
}

#[tokio::test]
async fn a_slow_headers_client_is_disconnected_after_the_header_timeout() {
    let app = spawn_app_with(|s| s.header_timeout_secs = 1).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: ecs\r\n")
        .await
        .unwrap();
    let start = Instant::now();
    let mut buffer = Vec::new();
    // The server closes the connection (possibly after a 408); it never answers 200.
    let read = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut buffer))
        .await
        .expect("the server closes a connection whose headers never end");
    let elapsed = start.elapsed();
    // Either an end of file or a reset: the connection is gone.
    drop(read);
    let text = String::from_utf8_lossy(&buffer);
    assert!(!text.contains("200 OK"), "{text}");
    assert!(
        elapsed >= Duration::from_millis(800) && elapsed < Duration::from_secs(5),
        "disconnected after {elapsed:?}"
    );
    // A client that connects and sends nothing is disconnected too.
    let mut silent = tokio::net::TcpStream::connect(&address).await.unwrap();
    let start = Instant::now();
    let read = tokio::time::timeout(Duration::from_secs(10), silent.read_to_end(&mut buffer))
        .await
        .expect("the server closes a connection that sends nothing");
    drop(read);
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(800) && elapsed < Duration::from_secs(5),
        "silent client disconnected after {elapsed:?}"
    );
    // A client that sends its headers at once is answered.
    let mut prompt = tokio::net::TcpStream::connect(&address).await.unwrap();
    prompt
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: ecs\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), prompt.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

/// Sends `count` requests one after another; the 429 answers among them.
async fn burst(app: &TestApp, count: usize, bearer: Option<&str>) -> Vec<(u64, String)> {
    let mut limited = vec![];
    for _ in 0..count {
        let mut request = app.client.get(format!("{}/v1/namespaces", app.address));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        let answer = app.send(request).await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            let retry_after = answer
                .header("retry-after")
                .and_then(|v| v.parse::<u64>().ok())
                .expect("a 429 carries Retry-After in seconds");
            limited.push((retry_after, answer.code().to_owned()));
        } else {
            assert!(
                answer.status == StatusCode::OK || answer.status == StatusCode::UNAUTHORIZED,
                "{}: {}",
                answer.status,
                answer.body
            );
        }
    }
    limited
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    // Per principal: the admin may send 5 at once, then 1 a second.
    let app = spawn_app_with(|s| {
        s.principal_rate = 1;
        s.principal_burst = 5;
    })
    .await;
    let limited = burst(&app, 12, Some(ADMIN_TOKEN)).await;
    assert!(limited.len() >= 6, "{limited:?}");
    assert!(
        limited
            .iter()
            .all(|(after, code)| *after >= 1 && code == "rate-limited"),
        "{limited:?}"
    );
    // Callers without a credential are not limited per principal.
    assert!(burst(&app, 12, None).await.is_empty());
    // After the time given, the principal is served again.
    tokio::time::sleep(Duration::from_secs(limited[0].0)).await;
    assert_eq!(app.get("/v1/namespaces").await.status, StatusCode::OK);
    drop(app);

    // Per source: every caller from one address, with or without a credential.
    let app = spawn_app_with(|s| {
        s.source_rate = 1;
        s.source_burst = 5;
    })
    .await;
    let limited = burst(&app, 12, None).await;
    assert!(limited.len() >= 6, "{limited:?}");
    assert!(burst(&app, 3, Some(ADMIN_TOKEN)).await.len() >= 2);
}

#[tokio::test]
async fn server_sent_event_streams_are_capped_per_principal() {
    let app = spawn_app_with(|s| s.max_streams_per_principal = 2).await;
    let created = app
        .put_namespace("edge", &json!({"description": "limits"}))
        .await;
    assert!(created.status.is_success(), "{}", created.body);
    let open = |bearer: String| {
        let request = app
            .client
            .request(
                Method::GET,
                format!("{}/v1/namespaces/edge/watch", app.address),
            )
            .bearer_auth(bearer);
        async move { request.send().await.unwrap() }
    };
    let first = open(ADMIN_TOKEN.to_owned()).await;
    let second = open(ADMIN_TOKEN.to_owned()).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::OK);
    let third = open(ADMIN_TOKEN.to_owned()).await;
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(third.headers().contains_key("retry-after"));
    let body: Value = third.json().await.unwrap();
    assert_eq!(body["code"], "too-many-streams", "{body}");
    // The feed counts against the same limit.
    let feed = app
        .send(app.request(Method::GET, "/v1/feed?namespaces=edge"))
        .await;
    assert_eq!(feed.status, StatusCode::TOO_MANY_REQUESTS);
    // Another principal has its own.
    let issued = app
        .post(
            "/v1/tokens",
            &json!({"name": "watcher", "role": "viewer", "namespaces": ["edge"]}),
        )
        .await;
    assert_eq!(issued.status, StatusCode::CREATED, "{}", issued.body);
    let other = open(issued.body["token"].as_str().unwrap().to_owned()).await;
    assert_eq!(other.status(), StatusCode::OK);
    drop((first, second, other));
}

/// Every record of the audit stream.
async fn audit_stream_records(nats: &NatsServer) -> Vec<Value> {
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = jetstream::new(client);
    let mut stream = js.get_stream("ECS_AUDIT").await.unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut records = vec![];
    if last == 0 {
        return records;
    }
    let consumer = stream
        .create_consumer(OrderedConfig {
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    while let Some(message) = messages.next().await {
        let message = message.unwrap();
        let sequence = message.info().unwrap().stream_sequence;
        records.push(serde_json::from_slice(&message.payload).unwrap());
        if sequence >= last {
            break;
        }
    }
    records
}

/// The attempts an aggregated record stands for: `(N attempts from ...)`.
fn attempts(record: &Value) -> u64 {
    let reason = record["reason"].as_str().unwrap_or_default();
    reason
        .rsplit_once(" attempt")
        .and_then(|(head, _)| head.rsplit_once('(').map(|(_, n)| n.to_owned()))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {reason:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_failed_authentications_add_a_handful_of_audit_records() {
    const ATTEMPTS: usize = 10_000;
    let mut app = spawn_app_with(|s| {
        s.auth_failure_window_secs = 2;
        s.source_rate = 0;
    })
    .await;
    let start = Instant::now();
    let statuses: Vec<StatusCode> = futures::stream::iter(0..ATTEMPTS)
        .map(|n| {
            let request = app
                .client
                .get(format!("{}/v1/namespaces", app.address))
                .bearer_auth(format!("wrong-token-{}", n % 7));
            async move { request.send().await.map(|r| r.status()) }
        })
        .buffer_unordered(32)
        .map(|r| r.expect("every attempt is answered"))
        .collect()
        .await;
    let took = start.elapsed();
    assert!(statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED));
    // A stop records what the current window counted.
    app.stop().await;
    let records = audit_stream_records(&app.nats).await;
    let windows = took.as_secs() / 2 + 2;
    assert!(
        !records.is_empty() && records.len() as u64 <= windows,
        "{} records for {ATTEMPTS} attempts in {took:?}",
        records.len()
    );
    let counted: u64 = records.iter().map(attempts).sum();
    assert_eq!(counted, ATTEMPTS as u64, "every attempt is counted once");
    for record in &records {
        assert_eq!(record["outcome"], "refused");
        assert!(
            record["reason"]
                .as_str()
                .unwrap()
                .starts_with("authentication: unknown credential ("),
            "{record}"
        );
    }
    // And they reach the audit log.
    app.start().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let page = app.get("/v1/audit?outcome=refused").await;
        let shown = page.body["entries"].as_array().map_or(0, Vec::len);
        if shown == records.len() {
            break;
        }
        assert!(Instant::now() < deadline, "audit log: {}", page.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_audit_stream_has_limits_and_a_usage_gauge() {
    let mut app = spawn_app_with(|s| {
        s.audit_max_bytes = 8 * 1024 * 1024;
        s.audit_max_age_days = 30;
    })
    .await;
    let client = async_nats::connect(app.nats.url()).await.unwrap();
    let js = jetstream::new(client);
    let config = js
        .get_stream("ECS_AUDIT")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .config
        .clone();
    assert_eq!(config.max_bytes, 8 * 1024 * 1024);
    assert_eq!(config.max_age, Duration::from_secs(30 * 24 * 3600));
    assert_eq!(
        config.discard,
        async_nats::jetstream::stream::DiscardPolicy::Old
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = app
            .client
            .get(format!("{}/metrics", app.address))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains("ecs_audit_stream_usage_ratio") {
            break;
        }
        assert!(Instant::now() < deadline, "no usage gauge in /metrics");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A restart with other limits applies them to the existing stream.
    app.stop().await;
    app.settings.audit_max_bytes = 16 * 1024 * 1024;
    app.start().await;
    let config = js
        .get_stream("ECS_AUDIT")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .config
        .clone();
    assert_eq!(config.max_bytes, 16 * 1024 * 1024);
}

#[tokio::test]
async fn a_shutdown_ends_event_streams_and_refuses_new_work() {
    let mut app = spawn_app_with(|_| {}).await;
    app.put_namespace("edge", &json!({"description": "shutdown"}))
        .await;
    let mut stream = app
        .request(Method::GET, "/v1/namespaces/edge/watch")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    // The first event (the current document) arrives.
    let first = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
        .await
        .unwrap()
        .unwrap();
    assert!(first.is_some());
    let stopping = tokio::time::timeout(Duration::from_secs(15), app.stop());
    // The stream ends cleanly (no error) while the server stops.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.chunk().await {
                Ok(Some(_)) => continue,
                Ok(None) => return Ok(()),
                Err(error) => return Err(error),
            }
        }
    });
    let (stopped, ended) = tokio::join!(stopping, ended);
    stopped.expect("the server stops within its grace period");
    ended
        .expect("the stream ends")
        .expect("the stream ends cleanly, not cut");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_finishes_running_requests_and_refuses_new_ones() {
    let mut app = spawn_app_with(|s| s.shutdown_grace = 20).await;
    let address = app.address.clone();
    let client = app.client.clone();
    // A write in flight: its headers and half its body are sent.
    let body = br#"{"description": "created while draining"}"#;
    let mut running = tokio::net::TcpStream::connect(address.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = format!(
        "PUT /v1/namespaces/drained HTTP/1.1\r\nHost: ecs\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    running.write_all(head.as_bytes()).await.unwrap();
    running.write_all(&body[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let stopping = app.stop();
    let during = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Not ready, new work refused as retryable, alive.
        let ready = client
            .get(format!("{address}/readyz"))
            .send()
            .await
            .unwrap();
        let ready_status = ready.status();
        let write = client
            .put(format!("{address}/v1/namespaces/refused"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"description": "too late"}))
            .send()
            .await
            .unwrap();
        let write_status = write.status();
        let retry_after = write.headers().contains_key("retry-after");
        let connection = write
            .headers()
            .get("connection")
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        let write_body: Value = write.json().await.unwrap();
        let alive = client
            .get(format!("{address}/healthz"))
            .send()
            .await
            .unwrap()
            .status();
        // The running write completes.
        running.write_all(&body[10..]).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(15), running.read_to_end(&mut answer))
            .await
            .expect("the running write is answered")
            .unwrap();
        (
            ready_status,
            write_status,
            retry_after,
            connection,
            write_body,
            alive,
            String::from_utf8_lossy(&answer).into_owned(),
        )
    };
    let (stopped, (ready, write, retry_after, connection, write_body, alive, answer)) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(25), stopping),
        during
    );
    stopped.expect("the server stops once the running write is answered");
    assert_eq!(ready, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(write, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(write_body["code"], "shutting-down", "{write_body}");
    assert!(retry_after);
    assert_eq!(connection.as_deref(), Some("close"));
    assert_eq!(alive, StatusCode::OK);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    // Nothing acknowledged is lost; nothing refused was stored.
    app.start().await;
    assert_eq!(
        app.get("/v1/namespaces/drained").await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/v1/namespaces/refused").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_request_over_the_request_timeout_is_503_and_event_streams_are_exempt() {
    let app = spawn_app_with(|s| s.request_timeout_secs = 1).await;
    app.put_namespace("edge", &json!({"description": "timeouts"}))
        .await;
    // A request whose body never completes is answered at the timeout.
    let mut slow = tokio::net::TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .unwrap();
    slow.write_all(
        format!(
            "PUT /v1/namespaces/slow HTTP/1.1\r\nHost: ecs\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"desc"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let start = Instant::now();
    let mut answer = vec![0; 4096];
    let read = tokio::time::timeout(Duration::from_secs(10), slow.read(&mut answer))
        .await
        .expect("an answer at the request timeout")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"code\":\"timeout\""), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    // A watch stream outlives the request timeout.
    let mut stream = app
        .request(Method::GET, "/v1/namespaces/edge/watch")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let first = tokio::time::timeout(Duration::from_secs(5), stream.chunk())
        .await
        .unwrap()
        .unwrap();
    assert!(first.is_some(), "the current document");
    let later = tokio::time::timeout(Duration::from_millis(2500), stream.chunk()).await;
    assert!(
        later.is_err(),
        "the stream is still open after 2.5 s: {later:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_and_projectors_use_separate_database_pools() {
    let app = spawn_app_with(|s| {
        s.reader_db_connections = 3;
        s.projector_db_connections = 2;
    })
    .await;
    app.put_namespace("edge", &json!({"description": "pools"}))
        .await;
    // Many concurrent reads, and a write that must be projected meanwhile.
    let reads = futures::stream::iter(0..60)
        .map(|_| app.get("/v1/namespaces/edge/resolved"))
        .buffer_unordered(30)
        .collect::<Vec<_>>();
    let values = json!({"values": {"a": 1}});
    let write = app.put_layer("edge", "", &values);
    let (reads, write) = tokio::join!(reads, write);
    assert!(write.status.is_success(), "{}", write.body);
    assert!(reads.iter().all(|r| r.status == StatusCode::OK));
    let pool = app.db.pool().await.unwrap();
    let counts: Vec<(String, i64)> = sqlx::query_as(
        "SELECT application_name, count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name LIKE 'ecs-%' \
         GROUP BY application_name ORDER BY application_name",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    let count = |name: &str| {
        counts
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, c)| *c)
    };
    assert!(
        (1..=2).contains(&count(ecs_api::app::PROJECTOR_POOL)),
        "{counts:?}"
    );
    assert!(
        (1..=3).contains(&count(ecs_api::app::READER_POOL)),
        "{counts:?}"
    );
}

/// In production mode the server refuses to start without a master key (the
/// tenant data keys would be stored unwrapped); with one it starts, and the
/// default (development) mode keeps the zero-configuration quickstart.
#[tokio::test]
async fn production_mode_refuses_to_start_without_a_master_key() {
    use ecs_api::settings::Mode;

    let nats = NatsServer::start();
    let db = TestDatabase::create().await;
    let without = Settings {
        mode: Mode::Production,
        master_key: None,
        ..settings_for(&nats, &db)
    };
    let error = match Application::build(without).await {
        Ok(_) => panic!("a production server started without ECS_MASTER_KEY"),
        Err(error) => format!("{error:#}"),
    };
    assert!(
        error.contains("ECS_MASTER_KEY") && error.contains("ECS_MODE=production"),
        "the refusal names the setting and the mode: {error}"
    );

    let with = Settings {
        mode: Mode::Production,
        master_key: Some("ab".repeat(32).into()),
        ..settings_for(&nats, &db)
    };
    Application::build(with)
        .await
        .expect("a production server with a master key starts");

    let development = Settings {
        master_key: None,
        ..settings_for(&nats, &db)
    };
    assert_eq!(development.mode, Mode::Development);
    Application::build(development)
        .await
        .expect("the default mode starts without a master key");
}
