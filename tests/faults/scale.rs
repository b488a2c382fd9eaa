//! Several `ecs serve` processes on one NATS and one PostgreSQL: the holder
//! of the `projections` lease is SIGKILLed and another takes over; every
//! instance is restarted in turn (SIGTERM) under load. Each prints a report.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ecs_tests::servers::{NatsServer, TestDatabase};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{EcsProcess, dump_projections, stream_last_sequence};
use crate::scenarios::{check_and_settle, create_namespace};
use crate::traced::{Outcome, Target, Write, histogram, join_writers, label, spawn_writers};

const NS: &str = "scale";
/// The lease TTL the instances run with (`ECS_LEASE_TTL_SECS`).
const TTL_SECS: u64 = 3;
/// A standby holds the lease within this of the holder's SIGKILL: the TTL,
/// plus a standby's retry period (TTL / 4), plus the server's expiry sweep
/// and a loaded machine's scheduling.
const TAKEOVER: Duration = Duration::from_secs(TTL_SECS * 3);

async fn start_three(nats: &NatsServer, db: &TestDatabase) -> Vec<EcsProcess> {
    let ttl = TTL_SECS.to_string();
    let settings = [
        ("ECS_LEASE_TTL_SECS", ttl.as_str()),
        ("ECS_SHUTDOWN_GRACE", "10"),
    ];
    let mut instances = vec![];
    for _ in 0..3 {
        instances.push(EcsProcess::start_with(&nats.url(), &db.url, &settings).await);
    }
    instances
}

fn target(ecs: &EcsProcess) -> Target {
    Target {
        http: ecs.http.clone(),
        base: ecs.base(),
    }
}

/// Which of `instances` holds `lease`, as their `/readyz` say (`None` while
/// none does, or they disagree).
async fn holder_of(instances: &[EcsProcess], alive: &[bool], lease: &str) -> Option<usize> {
    let mut holders = vec![];
    for (n, ecs) in instances.iter().enumerate() {
        if !alive[n] {
            continue;
        }
        let Ok(response) = ecs.http.get(format!("{}/readyz", ecs.base())).send().await else {
            continue;
        };
        let ready: Value = response.json().await.unwrap_or(Value::Null);
        if ready["leases"][lease]["held"] == Value::Bool(true) {
            holders.push(n);
        }
    }
    match holders.as_slice() {
        [one] => Some(*one),
        [] => None,
        several => panic!("{lease} is held by several instances at once: {several:?}"),
    }
}

async fn wait_holder(
    instances: &[EcsProcess],
    alive: &[bool],
    lease: &str,
    within: Duration,
) -> usize {
    let deadline = Instant::now() + within;
    loop {
        if let Some(n) = holder_of(instances, alive, lease).await {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "nobody took the {lease} lease within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The projections equal a fresh replay: the holder rebuilds them.
async fn assert_rebuild_equal(name: &str, holder: &EcsProcess, database_url: &str) {
    let incremental = dump_projections(database_url).await;
    holder.rebuild_projections().await;
    let rebuilt = dump_projections(database_url).await;
    let differing: Vec<&String> = incremental
        .as_object()
        .unwrap()
        .keys()
        .filter(|t| incremental[t.as_str()] != rebuilt[t.as_str()])
        .collect();
    println!("[{name}] projections vs. a fresh replay: differing tables {differing:?}");
    assert!(
        differing.is_empty(),
        "[{name}] tables differ: {differing:?}"
    );
}

/// Every instance's projections reach the stream's last position.
async fn assert_all_caught_up(name: &str, instances: &[&EcsProcess], nats_url: &str) -> u64 {
    let last = stream_last_sequence(nats_url).await;
    for ecs in instances {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = ecs.get_json("/v1/admin/projections").await;
            if status["applied"].as_u64() == Some(last) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "[{name}] {} stuck at {status}, stream at {last}",
                ecs.base()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    last
}

/// kill -9 of the instance running the projector, the feed publisher and the
/// audit projector, during writes to the other two: another instance takes
/// each lease within [`TAKEOVER`], no acknowledged write is lost or applied
/// twice, and the projections equal a fresh replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g_kill_9_the_lease_holder_hands_the_projector_over() {
    let name = "G kill -9 lease holder";
    let nats = NatsServer::start();
    let db = TestDatabase::create().await;
    let mut instances = start_three(&nats, &db).await;
    let mut alive = vec![true; 3];
    let holder = wait_holder(&instances, &alive, "projections", TAKEOVER).await;
    create_namespace(&instances[holder], NS).await;

    let stop = Arc::new(AtomicBool::new(false));
    let others: Vec<usize> = (0..3).filter(|n| *n != holder).collect();
    let mut writers = vec![];
    for (k, n) in others.iter().enumerate() {
        writers.extend(spawn_writers(
            &target(&instances[*n]),
            NS,
            2,
            &format!("e{k}"),
            &stop,
            Duration::from_millis(20),
        ));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    instances[holder].kill();
    alive[holder] = false;
    let killed = Instant::now();
    let mut took = vec![];
    for lease in ["projections", "feed", "audit"] {
        let next = wait_holder(&instances, &alive, lease, TAKEOVER).await;
        took.push((lease, next, killed.elapsed()));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let mut writes = join_writers(writers).await;
    println!(
        "[{name}] instance {holder} SIGKILLed; taken over: {took:?} (bound {TAKEOVER:?}); \
         outcomes {:?}",
        histogram(writes.iter().map(|w| label(&w.outcome)))
    );
    let survivor = &instances[others[0]];
    check_and_settle(name, &target(survivor), &nats.url(), &mut writes).await;
    let survivors: Vec<&EcsProcess> = others.iter().map(|n| &instances[*n]).collect();
    let last = assert_all_caught_up(name, &survivors, &nats.url()).await;
    println!("[{name}] both survivors applied the stream to its last position {last}");
    let new_holder = wait_holder(&instances, &alive, "projections", TAKEOVER).await;
    assert_rebuild_equal(name, &instances[new_holder], &db.url).await;
}

/// One request of a client that, as behind a load balancer, sends it to the
/// next instance when one refuses the connection or is draining (503
/// `shutting-down`); writes carry an `Idempotency-Key`, so a retry is safe.
/// Any other answer than a success is a failure.
/// How many times [`send_retrying`] sent a request again (for the report).
static RETRIES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

async fn send_retrying(
    instances: &[(reqwest::Client, String)],
    first: usize,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> Result<Value, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut n = first;
    loop {
        let (http, base) = &instances[n % instances.len()];
        let mut request = http
            .request(method.clone(), format!("{base}{path}"))
            .bearer_auth(crate::harness::ADMIN_TOKEN);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let retry = match request.send().await {
            Err(error) if error.is_connect() || error.is_request() => true,
            Err(error) => return Err(format!("{method} {path}: {error}")),
            Ok(response) => {
                let status = response.status();
                let answer: Value = response.json().await.unwrap_or(Value::Null);
                if status.is_success() {
                    return Ok(answer);
                }
                if status == StatusCode::SERVICE_UNAVAILABLE && answer["code"] == "shutting-down" {
                    true
                } else {
                    return Err(format!("{method} {path}: {status} {answer}"));
                }
            }
        };
        assert!(retry);
        if Instant::now() > deadline {
            return Err(format!("{method} {path}: no instance answered within 30 s"));
        }
        n += 1;
        RETRIES.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Rolling restart: each of the three instances in turn is stopped with
/// SIGTERM and started again, while clients write and read through all of
/// them: no request fails, no acknowledged write is lost or doubled, and a
/// read given a write's position sees it on any instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_rolling_restart_under_load_fails_no_request() {
    let name = "H rolling restart";
    let nats = NatsServer::start();
    let db = TestDatabase::create().await;
    let mut instances = start_three(&nats, &db).await;
    let holder = wait_holder(&instances, &[true; 3], "projections", TAKEOVER).await;
    create_namespace(&instances[holder], NS).await;
    let endpoints: Arc<Vec<(reqwest::Client, String)>> = Arc::new(
        instances
            .iter()
            .map(|e| (e.http.clone(), e.base()))
            .collect(),
    );

    let stop = Arc::new(AtomicBool::new(false));
    let run = uuid::Uuid::new_v4().simple().to_string();
    let clients: Vec<_> = (0..3)
        .map(|c| {
            let (endpoints, stop) = (endpoints.clone(), stop.clone());
            let run = run[..8].to_owned();
            tokio::spawn(async move {
                let path = format!("/v1/namespaces/{NS}/layer?service=r{c}");
                let (mut writes, mut failures) = (vec![], vec![]);
                let mut seq = 0;
                while !stop.load(Ordering::Relaxed) {
                    seq += 1;
                    let id = format!("f-{run}-r{c}-{seq}");
                    let body = json!({"values": {"last": id, "seq": seq}, "message": id});
                    let started = Instant::now();
                    // Written through one instance, read through the next.
                    let written = send_retrying(
                        &endpoints,
                        c + seq as usize,
                        Method::PATCH,
                        &path,
                        Some(&id),
                        Some(&body),
                    )
                    .await;
                    let position = match &written {
                        Ok(answer) => answer["position"].as_u64().unwrap_or(0),
                        Err(error) => {
                            failures.push(error.clone());
                            continue;
                        }
                    };
                    writes.push(Write {
                        id: id.clone(),
                        path: path.clone(),
                        seq,
                        started,
                        outcome: Outcome::Acked {
                            revision: written
                                .as_ref()
                                .map_or(0, |a| a["revision"].as_u64().unwrap_or(0)),
                            duplicate: false,
                        },
                        retried: None,
                    });
                    let read = send_retrying(
                        &endpoints,
                        c + seq as usize + 1,
                        Method::GET,
                        &format!("{path}&min_position={position}"),
                        None,
                        None,
                    )
                    .await;
                    match read {
                        Ok(layer) if layer["values"]["last"] == json!(id) => {}
                        Ok(layer) => failures.push(format!("read after {id} saw {layer}")),
                        Err(error) => failures.push(error),
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                (writes, failures)
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(1)).await;
    let begin = Instant::now();
    for (n, instance) in instances.iter_mut().enumerate() {
        let status = instance.terminate(Duration::from_secs(30)).await;
        assert!(
            status.is_some_and(|s| s.success()),
            "[{name}] instance {n} did not stop cleanly on SIGTERM: {status:?}\n{}",
            instance.log_tail(30)
        );
        instance.restart().await;
    }
    let restarted = begin.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut writes, mut failures) = (vec![], vec![]);
    for client in clients {
        let (w, f) = client.await.unwrap();
        writes.extend(w);
        failures.extend(f);
    }
    println!(
        "[{name}] 3 instances restarted one at a time in {:.1}s under 3 clients: \
         {} writes acknowledged (each read back through another instance), {} failed requests, \
         {} requests sent again to the next instance (refused or draining)",
        restarted.as_secs_f64(),
        writes.len(),
        failures.len(),
        RETRIES.load(Ordering::Relaxed)
    );
    assert!(
        failures.is_empty(),
        "[{name}] failed requests: {failures:?}"
    );
    assert!(
        writes.len() > 10,
        "[{name}] too few writes to mean anything"
    );
    let findings = check_and_settle(name, &target(&instances[0]), &nats.url(), &mut writes).await;
    assert_eq!(findings.acked, writes.len());
    let all: Vec<&EcsProcess> = instances.iter().collect();
    assert_all_caught_up(name, &all, &nats.url()).await;
    let holder = wait_holder(&instances, &[true; 3], "projections", TAKEOVER).await;
    assert_rebuild_equal(name, &instances[holder], &db.url).await;
}
