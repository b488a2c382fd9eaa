//! The system under test: the in-process ECS server with its own NATS and database, and helpers around it.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use async_nats::jetstream::{self};
use ecs_api::{Application, Settings};
use ecs_tests::app::{ADMIN_TOKEN, settings_for};
use ecs_tests::servers::{NatsServer, TestDatabase};
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub(crate) struct Ecs {
    pub(crate) address: String,
    pub(crate) http: reqwest::Client,
    pub(crate) token: CancellationToken,
    pub(crate) handle: Option<JoinHandle<anyhow::Result<()>>>,
    // Dropped after the app stops (fields drop in order).
    pub(crate) db: TestDatabase,
    pub(crate) nats: NatsServer,
}

impl Ecs {
    /// Fresh NATS and database, ECS not started yet.
    pub(crate) async fn servers() -> anyhow::Result<(NatsServer, TestDatabase, Settings)> {
        let nats = NatsServer::start();
        let db = TestDatabase::try_create().await?;
        let mut settings = settings_for(&nats, &db);
        settings.max_body_bytes = 1024 * 1024;
        Ok((nats, db, settings))
    }

    pub(crate) async fn start(
        nats: NatsServer,
        db: TestDatabase,
        settings: Settings,
    ) -> anyhow::Result<Ecs> {
        let app = Application::build(settings.clone())
            .await
            .context("build the ECS app")?;
        let address = format!("http://{}", app.address());
        let token = app.shutdown_token();
        let handle = tokio::spawn(app.run_until_stopped());
        Ok(Ecs {
            address,
            http: http_client(256)?,
            token,
            handle: Some(handle),
            db,
            nats,
        })
    }

    pub(crate) async fn fresh() -> anyhow::Result<Ecs> {
        let (nats, db, settings) = Ecs::servers().await?;
        let ecs = Ecs::start(nats, db, settings).await?;
        ecs.wait_ready(Duration::from_secs(60)).await?;
        Ok(ecs)
    }

    pub(crate) async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(r) = self
                .http
                .get(format!("{}/readyz", self.address))
                .send()
                .await
                && r.status() == reqwest::StatusCode::OK
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("ECS did not become ready within {timeout:?}")
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method.clone(), self.url(path))
            .bearer_auth(ADMIN_TOKEN);
        if !body.is_null() {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("{method} {path}: {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub(crate) async fn put(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::PUT, path, body).await
    }

    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, path, &Value::Null).await
    }

    pub(crate) async fn stop(mut self) {
        self.token.cancel();
        if let Some(handle) = self.handle.take() {
            match tokio::time::timeout(Duration::from_secs(20), handle).await {
                Ok(Ok(Err(e))) => println!("  (ECS stopped with an error: {e:#})"),
                Err(_) => println!("  (ECS did not stop within 20 s)"),
                _ => {}
            }
        }
        // NATS is killed (and its store removed) when `self` drops here.
    }
}

impl Drop for Ecs {
    fn drop(&mut self) {
        self.token.cancel();
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }
}

pub(crate) fn http_client(pool: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(pool)
        .timeout(Duration::from_secs(60))
        .build()?)
}

pub(crate) async fn jetstream_of(
    nats: &NatsServer,
) -> anyhow::Result<(async_nats::Client, jetstream::Context)> {
    let client = async_nats::connect(nats.url()).await?;
    let js = jetstream::new(client.clone());
    Ok((client, js))
}

/// Resident memory of a process in KiB (`VmRSS` in `/proc/<pid>/status`).
pub(crate) fn rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

pub(crate) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

// ---------------------------------------------------------------------------
// Closed-loop load with latency percentiles
// ---------------------------------------------------------------------------
