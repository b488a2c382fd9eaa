//! The real `ecs` binary as a child process (so it can be SIGKILLed), and
//! helpers to read back what it stored.

use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull::OrderedConfig};
use ecs_commands::EventMessage;
use futures::StreamExt;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;

pub const ADMIN_TOKEN: &str = "faults-admin-token";
pub const MASTER_KEY: &str = "6563732d6661756c74732d6d61737465722d6b65792d333262797465732121ab";

/// The `ecs` binary next to this test executable
/// (`target/<profile>/deps/faults-…` → `target/<profile>/ecs`), or `$ECS_BIN`.
pub fn ecs_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("ECS_BIN").filter(|b| !b.is_empty()) {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    let candidate = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("ecs"))
        .expect("target/<profile>/ under the test executable");
    assert!(
        candidate.exists(),
        "the ECS server binary {} is missing: run `cargo build -p ecs-api --bin ecs` first \
         (or set ECS_BIN)",
        candidate.display()
    );
    candidate
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// An `ecs serve` child process on a fixed port.
pub struct EcsProcess {
    child: Option<Child>,
    env: Vec<(&'static str, String)>,
    port: u16,
    dir: tempfile::TempDir,
    pub http: reqwest::Client,
    /// How many times it was started.
    pub starts: usize,
}

impl EcsProcess {
    /// Starts `ecs serve` over this NATS server and database and waits until
    /// `/readyz` answers 200.
    pub async fn start(nats_url: &str, database_url: &str) -> EcsProcess {
        Self::start_with(nats_url, database_url, &[]).await
    }

    /// Like [`EcsProcess::start`], with more (or overriding) settings.
    pub async fn start_with(
        nats_url: &str,
        database_url: &str,
        settings: &[(&'static str, &str)],
    ) -> EcsProcess {
        let port = free_port();
        let mut env = vec![
            ("ECS_LISTEN", format!("127.0.0.1:{port}")),
            ("ECS_NATS_URL", nats_url.to_owned()),
            ("ECS_DATABASE_URL", database_url.to_owned()),
            ("ECS_ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
            ("ECS_MASTER_KEY", MASTER_KEY.to_owned()),
            ("ECS_WRITE_WAIT_MS", "5000".to_owned()),
            // JetStream reserves the audit stream's limit in its storage;
            // the suite's NATS servers share one disk.
            ("ECS_AUDIT_MAX_BYTES", (16 * 1024 * 1024).to_string()),
            // The scenarios send bursts from one address with one token to
            // test durability; the rate limits have their own tests (edge.rs).
            ("ECS_SOURCE_RATE", "0".to_owned()),
            ("ECS_PRINCIPAL_RATE", "0".to_owned()),
            ("NO_COLOR", "1".to_owned()),
            (
                "RUST_LOG",
                std::env::var("ECS_FAULTS_LOG").unwrap_or_else(|_| "warn".to_owned()),
            ),
        ];
        env.retain(|(name, _)| !settings.iter().any(|(n, _)| n == name));
        env.extend(settings.iter().map(|(n, v)| (*n, (*v).to_owned())));
        let mut ecs = EcsProcess {
            child: None,
            env,
            port,
            dir: tempfile::Builder::new()
                .prefix("ecs-faults-")
                .tempdir()
                .expect("temp dir"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(12))
                .connect_timeout(Duration::from_secs(2))
                .pool_max_idle_per_host(0)
                .build()
                .expect("http client"),
            starts: 0,
        };
        ecs.restart().await;
        ecs
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("ecs.log")
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Log lines that contain `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        std::fs::read_to_string(self.log_path())
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }

    /// SIGKILL (`Child::kill`), no clean shutdown; waits for the exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM (a graceful stop) and waits up to `within` for the
    /// process to exit; its exit status, `None` if it did not exit in time.
    pub async fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(sent.success(), "kill -TERM failed");
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the server if it runs, starts it again on the same port with the
    /// same settings, and waits until it is ready.
    pub async fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = File::options()
                .create(true)
                .append(true)
                .open(self.log_path())
                .expect("open the ecs log");
            let log2 = log.try_clone().expect("clone the log handle");
            let mut child = Command::new(ecs_binary())
                .arg("serve")
                .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
                .env_remove("ECS_CONFIG")
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2)
                .spawn()
                .expect("spawn ecs serve");
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // exited: the port may still be taken; try again
                }
                if self.ready().await {
                    self.child = Some(child);
                    self.starts += 1;
                    return;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "ecs did not become ready on port {}; log:\n{}",
                        self.port,
                        self.log_tail(60)
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(
                Instant::now() < deadline,
                "ecs keeps exiting at start; log:\n{}",
                self.log_tail(60)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Whether `/readyz` answers 200 now.
    pub async fn ready(&self) -> bool {
        self.http
            .get(format!("{}/readyz", self.base()))
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.ready().await {
            assert!(
                Instant::now() < deadline,
                "ecs did not become ready within {within:?}; log:\n{}",
                self.log_tail(60)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A request with the admin token.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base()))
            .bearer_auth(ADMIN_TOKEN)
    }

    /// GET, expecting 200 JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        let response = self
            .request(Method::GET, path)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// A write that must succeed (setup), retried while the server warms up.
    pub async fn must(&self, method: Method, path: &str, body: &Value) -> Value {
        for _ in 0..50 {
            if let Ok(r) = self.request(method.clone(), path).json(body).send().await {
                let status = r.status();
                let answer: Value = r.json().await.unwrap_or(Value::Null);
                if status.is_success() {
                    return answer;
                }
                assert_eq!(
                    status,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "{method} {path}: {answer}"
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("{method} {path} kept failing");
    }

    /// Triggers `POST /v1/admin/projections/rebuild` and waits until the
    /// projections have replayed the whole stream and `/readyz` is 200.
    pub async fn rebuild_projections(&self) {
        let response = self
            .request(Method::POST, "/v1/admin/projections/rebuild")
            .json(&serde_json::json!({}))
            .send()
            .await
            .expect("rebuild request");
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let target = response.json::<Value>().await.expect("rebuild answer")["target_position"]
            .as_u64()
            .unwrap_or(0);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = self.get_json("/v1/admin/projections").await;
            if status["rebuilding"] == Value::Bool(false)
                && status["applied"].as_u64().unwrap_or(0) >= target
                && self.ready().await
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "rebuild did not finish: {status}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for EcsProcess {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "--- ecs log ({}) ---\n{}",
                self.log_path().display(),
                self.log_tail(40)
            );
        }
    }
}

/// Every row of every projection table, in a stable order, as JSON (as
/// `TestApp::dump_projections`).
pub async fn dump_projections(database_url: &str) -> Value {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(database_url)
        .await
        .expect("database pool");
    let mut out = serde_json::Map::new();
    for table in ecs_projections::apply::TABLES {
        let rows: Vec<Value> = sqlx::query_scalar(&format!(
            "SELECT to_jsonb(t) FROM {table} t ORDER BY to_jsonb(t)::text"
        ))
        .fetch_all(&pool)
        .await
        .expect("dump table");
        out.insert((*table).to_owned(), Value::Array(rows));
    }
    pool.close().await;
    Value::Object(out)
}

/// Every message of the events stream, decoded (tenant data opened).
pub async fn read_stream(nats_url: &str) -> Vec<(u64, EventMessage<Value>)> {
    let client = async_nats::connect(nats_url)
        .await
        .expect("connect to NATS");
    let js = jetstream::new(client);
    let keyring = ecs_commands::keyring::Keyring::connect(&js, Some(MASTER_KEY), 1)
        .await
        .expect("keyring");
    let mut stream = js.get_stream("ECS_EVENTS").await.expect("events stream");
    let last = stream
        .info()
        .await
        .expect("stream info")
        .state
        .last_sequence;
    let mut out = vec![];
    if last == 0 {
        return out;
    }
    let consumer = stream
        .create_consumer(OrderedConfig {
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .expect("ordered consumer");
    let mut messages = consumer.messages().await.expect("messages");
    while let Some(message) = messages.next().await {
        let message = message.expect("a stream message");
        let seq = message.info().expect("message info").stream_sequence;
        let (opened, _) = ecs_commands::message::read_message(&message.payload, Some(&keyring))
            .await
            .expect("decode a stream message");
        out.push((seq, opened));
        if seq >= last {
            break;
        }
    }
    out
}

/// The last sequence of the events stream.
pub async fn stream_last_sequence(nats_url: &str) -> u64 {
    let client = async_nats::connect(nats_url)
        .await
        .expect("connect to NATS");
    let js = jetstream::new(client);
    let mut stream = js.get_stream("ECS_EVENTS").await.expect("events stream");
    stream
        .info()
        .await
        .expect("stream info")
        .state
        .last_sequence
}
