//! `spawn_app()`: the real ECS server on a random port, over a NATS server
//! and a fresh PostgreSQL database of its own, with one method per endpoint so
//! tests read as user actions.

use std::sync::Once;
use std::time::Duration;

use ecs_api::{Application, Settings};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::servers::{NatsServer, TestDatabase};

pub const ADMIN_TOKEN: &str = "test-admin-token";

/// Logs only when `TEST_LOG` is set.
fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_test_writer()
                .try_init();
        }
    });
}

/// The ECS app under test and the servers behind it.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub nats: NatsServer,
    pub db: TestDatabase,
    pub settings: Settings,
    server: Option<(CancellationToken, JoinHandle<anyhow::Result<()>>)>,
}

/// Settings for an app over these servers.
pub fn settings_for(nats: &NatsServer, db: &TestDatabase) -> Settings {
    Settings {
        listen: "127.0.0.1:0".to_owned(),
        nats_url: nats.url().into(),
        database_url: db.url.clone().into(),
        admin_token: Some(ADMIN_TOKEN.into()),
        master_key: Some(
            ("6563732d746573742d6d61737465722d6b65792d3332627974657321212121".to_owned() + "21")
                .into(),
        ),
        max_body_bytes: 64 * 1024,
        // Tests (and benchmarks) send bursts from one address as one
        // principal; the rate limits have their own tests (`tests/edge.rs`).
        source_rate: 0,
        principal_rate: 0,
        // Failed authentications reach the audit log once per window: keep
        // it short so tests see them soon.
        auth_failure_window_secs: 1,
        // JetStream reserves the audit stream's limit in its storage: keep
        // it small, as the tests' NATS servers share one disk.
        audit_max_bytes: 16 * 1024 * 1024,
        ..Settings::default()
    }
}

/// Starts NATS, creates a database and starts ECS on them.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Like [`spawn_app`], with settings adjusted first.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    TestApp::spawn_on(NatsServer::start(), adjust).await
}

/// Like [`spawn_app_with`], over a NATS server started by the caller (for
/// instance with a configuration of its own).
pub async fn spawn_app_on(nats: NatsServer, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    TestApp::spawn_on(nats, adjust).await
}

/// A JSON answer: status, headers and body.
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    async fn from(response: Response) -> Answer {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The problem `code` of an error answer.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }

    pub fn position(&self) -> u64 {
        self.body["position"].as_u64().expect("a position")
    }

    pub fn revision(&self) -> u64 {
        self.body["revision"].as_u64().expect("a revision")
    }
}

impl TestApp {
    /// Starts (or restarts) ECS on the same NATS server and database, on a
    /// new port, and waits until it is ready.
    pub async fn start(&mut self) {
        let app = Application::build(self.settings.clone())
            .await
            .expect("build the app");
        self.address = app.url();
        let token = app.shutdown_token();
        let handle = tokio::spawn(app.run_until_stopped());
        self.server = Some((token, handle));
        self.wait_ready().await;
    }

    /// Stops ECS gracefully.
    pub async fn stop(&mut self) {
        if let Some((token, handle)) = self.server.take() {
            token.cancel();
            let _ = handle.await;
        }
    }

    /// Stops ECS abruptly, as a crash would: its tasks are aborted mid-flight.
    pub async fn crash(&mut self) {
        if let Some((token, handle)) = self.server.take() {
            handle.abort();
            let _ = handle.await;
            token.cancel();
        }
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        for _ in 0..300 {
            if let Ok(r) = self
                .client
                .get(format!("{}/readyz", self.address))
                .send()
                .await
                && r.status() == StatusCode::OK
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the app did not become ready");
    }

    /// A request with the admin token.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.address))
            .bearer_auth(ADMIN_TOKEN)
    }

    pub async fn send(&self, builder: RequestBuilder) -> Answer {
        Answer::from(builder.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(self.request(Method::GET, path)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Answer {
        self.send(self.request(Method::PUT, path).json(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Answer {
        self.send(self.request(Method::PATCH, path).json(body))
            .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.send(self.request(Method::POST, path).json(body)).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.send(self.request(Method::DELETE, path)).await
    }

    pub async fn put_namespace(&self, ns: &str, body: &Value) -> Answer {
        self.put(&format!("/v1/namespaces/{ns}"), body).await
    }

    pub async fn put_tenant(&self, tenant: &str, edition: &str) -> Answer {
        self.put(
            &format!("/v1/tenants/{tenant}"),
            &serde_json::json!({ "edition": edition }),
        )
        .await
    }

    /// `query` is the scope, such as `env=prod&tenant=acme` (or empty).
    pub async fn put_layer(&self, ns: &str, query: &str, body: &Value) -> Answer {
        self.put(&format!("/v1/namespaces/{ns}/layer?{query}"), body)
            .await
    }

    pub async fn get_layer(&self, ns: &str, query: &str) -> Answer {
        self.get(&format!("/v1/namespaces/{ns}/layer?{query}"))
            .await
    }

    pub async fn history(&self, ns: &str, query: &str) -> Answer {
        self.get(&format!("/v1/namespaces/{ns}/layer/history?{query}"))
            .await
    }

    pub async fn resolved(&self, ns: &str, query: &str) -> Answer {
        self.get(&format!("/v1/namespaces/{ns}/resolved?{query}"))
            .await
    }

    /// Every row of every projection table, in a stable order, as JSON.
    pub async fn dump_projections(&self) -> Value {
        let pool = self.db.pool().await.expect("database pool");
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

    /// Rebuilds the projections and waits until the rebuilt tables are
    /// switched in (the server stays ready during a rebuild).
    pub async fn rebuild_projections(&self) {
        let answer = self
            .post("/v1/admin/projections/rebuild", &Value::Null)
            .await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
        for _ in 0..1200 {
            let status = self.get("/v1/admin/projections").await;
            if status.body["rebuilding"] == Value::Bool(false) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the rebuild did not finish");
    }

    /// Like [`spawn_app_with`], over a NATS server the test started itself
    /// (such as one with a permission model or TLS).
    pub async fn spawn_on(nats: NatsServer, adjust: impl FnOnce(&mut Settings)) -> TestApp {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client");
        TestApp::spawn_with_client(nats, client, adjust).await
    }

    /// Like [`TestApp::spawn_on`], calling the API with this HTTP client (such
    /// as one trusting the CA of the API's certificate).
    pub async fn spawn_with_client(
        nats: NatsServer,
        client: reqwest::Client,
        adjust: impl FnOnce(&mut Settings),
    ) -> TestApp {
        init_logs();
        let db = TestDatabase::create().await;
        let mut settings = settings_for(&nats, &db);
        adjust(&mut settings);
        let mut app = TestApp {
            address: String::new(),
            client,
            nats,
            db,
            settings,
            server: None,
        };
        app.start().await;
        app
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some((token, handle)) = self.server.take() {
            token.cancel();
            handle.abort();
        }
    }
}
