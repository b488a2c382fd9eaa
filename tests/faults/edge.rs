//! The production edge with the real binary: SIGTERM during writes and open
//! event streams drains and exits 0 with nothing lost; a failed start prints
//! no password.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ecs_tests::servers::{NatsServer, TestDatabase};
use reqwest::{Method, StatusCode};

use crate::harness::{ADMIN_TOKEN, EcsProcess, ecs_binary};
use crate::scenarios::{check_and_settle, create_namespace};
use crate::traced::{Outcome, Target, Write, histogram, label, send};

const NS: &str = "drain";

/// A writer that sends traceable writes until the server stops taking them
/// (a 503 `shutting-down` or a refused connection) or `stop` is set.
fn spawn_writer(
    target: &Target,
    writer: usize,
    stop: &Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<Write>> {
    let (target, stop) = (target.clone(), stop.clone());
    tokio::spawn(async move {
        let path = format!("/v1/namespaces/{NS}/layer?service=w{writer}");
        let mut writes = vec![];
        for seq in 0.. {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let id = format!("e{writer}-{seq}-{}", uuid::Uuid::new_v4().simple());
            let started = Instant::now();
            let outcome = send(&target, &path, &id, seq).await;
            let last = !matches!(outcome, Outcome::Acked { .. });
            writes.push(Write {
                id,
                path: path.clone(),
                seq,
                started,
                outcome,
                retried: None,
            });
            if last {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        writes
    })
}

/// Reads a server-sent event stream to its end: `Ok(events)` when it ends
/// cleanly, `Err` when it is cut.
fn spawn_stream(base: &str, path: &str) -> tokio::task::JoinHandle<Result<usize, String>> {
    let url = format!("{base}{path}");
    tokio::spawn(async move {
        // No overall timeout: the stream lasts until the server drains.
        let client = reqwest::Client::new();
        let mut response = client
            .get(url)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if response.status() != StatusCode::OK {
            return Err(format!("HTTP {}", response.status()));
        }
        let mut events = 0;
        loop {
            match response.chunk().await {
                Ok(Some(bytes)) => events += bytes.windows(2).filter(|w| w == b"\n\n").count(),
                Ok(None) => return Ok(events),
                Err(error) => return Err(format!("cut: {error}")),
            }
        }
    })
}

/// Scenario E: SIGTERM while 8 writers write and two event streams are open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e_sigterm_drains_writes_and_streams_and_exits_0() {
    let name = "E SIGTERM";
    let nats = NatsServer::start();
    let db = TestDatabase::create().await;
    let mut ecs =
        EcsProcess::start_with(&nats.url(), &db.url, &[("ECS_SHUTDOWN_GRACE", "20")]).await;
    create_namespace(&ecs, NS).await;
    let target = Target {
        http: ecs.http.clone(),
        base: ecs.base(),
    };
    let streams = [
        spawn_stream(&ecs.base(), &format!("/v1/namespaces/{NS}/watch")),
        spawn_stream(&ecs.base(), &format!("/v1/feed?namespaces={NS}")),
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..8).map(|w| spawn_writer(&target, w, &stop)).collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sent = Instant::now();
    let status = ecs.terminate(Duration::from_secs(30)).await;
    let took = sent.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut writes = vec![];
    for writer in writers {
        writes.extend(writer.await.expect("a writer task"));
    }
    let mut ended = vec![];
    for stream in streams {
        ended.push(stream.await.expect("a stream task"));
    }
    println!(
        "[{name}] exit {status:?} {:.2}s after SIGTERM; {} writes, outcomes {:?}; streams {ended:?}",
        took.as_secs_f64(),
        writes.len(),
        histogram(writes.iter().map(|w| label(&w.outcome)))
    );
    let status = status.expect("the server exits within the grace period");
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    for stream in &ended {
        assert!(
            stream.is_ok(),
            "[{name}] an event stream was cut: {stream:?}"
        );
    }
    // Every write was answered 2xx or refused as retryable (503 with
    // Retry-After), or never reached the server (connection refused): none
    // was cut while the server handled it.
    let cut: Vec<&Write> = writes
        .iter()
        .filter(|w| match &w.outcome {
            Outcome::Acked { .. } => false,
            Outcome::Unavailable { retry_after } => !retry_after,
            Outcome::Unknown(reason) => reason != "connect",
            Outcome::Rejected { .. } => true,
        })
        .collect();
    assert!(
        cut.is_empty(),
        "[{name}] writes cut or refused for good: {cut:?}"
    );
    assert!(
        writes
            .iter()
            .any(|w| matches!(w.outcome, Outcome::Acked { .. })),
        "[{name}] no write went through before the signal"
    );
    // Nothing acknowledged is lost: after a restart every acknowledged write
    // is stored exactly once, and the retried ones land.
    ecs.restart().await;
    check_and_settle(name, &target, &nats.url(), &mut writes).await;
    let resolved = ecs
        .request(Method::GET, &format!("/v1/namespaces/{NS}/resolved"))
        .send()
        .await
        .expect("a read after the restart");
    assert_eq!(resolved.status(), StatusCode::OK);
}

/// A start that fails on a URL with a password prints the URL without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f_a_failed_start_prints_no_password() {
    let db = TestDatabase::create().await;
    let output = Command::new(ecs_binary())
        .arg("serve")
        .env_remove("ECS_CONFIG")
        .env("ECS_LISTEN", "127.0.0.1:0")
        .env("ECS_NATS_URL", "nats://ecs:nats-secret-1618@127.0.0.1:1")
        .env("ECS_DATABASE_URL", &db.url)
        .env("ECS_ADMIN_TOKEN", "admin-secret-1414")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run ecs serve");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("[F failed start] exit {:?}: {text}", output.status.code());
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("cannot connect to NATS"), "{text}");
    assert!(text.contains("nats://ecs:***@127.0.0.1:1"), "{text}");
    for secret in ["nats-secret-1618", "admin-secret-1414"] {
        assert!(!text.contains(secret), "{secret} printed: {text}");
    }
}
