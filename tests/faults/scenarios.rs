//! The four scenarios. Each prints a short report (`-- --nocapture`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ecs_client::{Client, ClientSettings, Context};
use ecs_tests::servers::{NatsServer, TestDatabase};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{EcsProcess, dump_projections, stream_last_sequence};
use crate::pg::PgCluster;
use crate::traced::{
    Findings, Outcome, Target, Write, check, histogram, join_writers, label, settle, spawn_writers,
};

const NS: &str = "faults";
const READY: Duration = Duration::from_secs(60);

fn target(ecs: &EcsProcess) -> Target {
    Target {
        http: ecs.http.clone(),
        base: ecs.base(),
    }
}

pub(crate) async fn create_namespace(ecs: &EcsProcess, ns: &str) {
    let written = ecs
        .must(
            Method::PUT,
            &format!("/v1/namespaces/{ns}"),
            &json!({"description": "fault injection"}),
        )
        .await;
    let position = written["position"]
        .as_u64()
        .expect("a write answers its position");
    // The change feed is published apart from the write's answer: an SDK
    // connecting now sees the namespace once the publisher has caught up.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = ecs.get_json("/readyz").await;
        if ready["feed"]["published"].as_u64().unwrap_or(0) >= position {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the feed did not publish position {position}: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks, retries the unresolved writes with their keys, checks again;
/// prints both reports and asserts both are clean.
pub(crate) async fn check_and_settle(
    name: &str,
    target: &Target,
    nats_url: &str,
    writes: &mut [Write],
) -> Findings {
    let first = check(target, nats_url, writes).await;
    println!("[{name}] after healing:  {}", first.summary());
    let (retried, duplicates) = settle(target, writes).await;
    let second = check(target, nats_url, writes).await;
    println!(
        "[{name}] retried {retried} unresolved write(s) with their Idempotency-Key: \
         {duplicates} answered as duplicates (already stored), {} applied now",
        retried - duplicates
    );
    println!("[{name}] after retries:  {}", second.summary());
    assert!(first.clean(), "[{name}] {}", first.details());
    assert!(second.clean(), "[{name}] {}", second.details());
    let unresolved = writes
        .iter()
        .filter(|w| {
            !matches!(
                w.retried.as_ref().unwrap_or(&w.outcome),
                Outcome::Acked { .. } | Outcome::Rejected { .. }
            )
        })
        .count();
    assert_eq!(
        unresolved, 0,
        "[{name}] writes still unresolved after retries"
    );
    second
}

/// The projections' applied position equals the stream's last sequence.
async fn assert_caught_up(name: &str, ecs: &EcsProcess, nats_url: &str) -> u64 {
    let last = stream_last_sequence(nats_url).await;
    let deadline = Instant::now() + READY;
    loop {
        let status = ecs.get_json("/v1/admin/projections").await;
        let applied = status["applied"].as_u64().unwrap_or(0);
        if applied == last {
            return last;
        }
        assert!(
            Instant::now() < deadline,
            "[{name}] projections stuck at {applied}, stream at {last}: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Projections built incrementally (through the faults) equal a fresh replay.
async fn assert_rebuild_equal(name: &str, ecs: &EcsProcess, database_url: &str) {
    let incremental = dump_projections(database_url).await;
    ecs.rebuild_projections().await;
    let rebuilt = dump_projections(database_url).await;
    let rows: Vec<String> = incremental
        .as_object()
        .unwrap()
        .iter()
        .map(|(t, rows)| format!("{t} {}", rows.as_array().map_or(0, Vec::len)))
        .collect();
    let differing: Vec<&String> = incremental
        .as_object()
        .unwrap()
        .keys()
        .filter(|t| incremental[t.as_str()] != rebuilt[t.as_str()])
        .collect();
    println!(
        "[{name}] projections vs. a fresh replay: {} ({})",
        if differing.is_empty() {
            "equal".to_owned()
        } else {
            format!("DIFFERENT in {differing:?}")
        },
        rows.join(", ")
    );
    assert!(
        differing.is_empty(),
        "[{name}] tables differ: {differing:?}"
    );
}

/// Scenario A: kill -9 the ECS server three times during concurrent writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_the_server_during_concurrent_writes() {
    let name = "A kill -9 ecs";
    let nats = NatsServer::start();
    let db = TestDatabase::create().await;
    let mut ecs = EcsProcess::start(&nats.url(), &db.url).await;
    create_namespace(&ecs, NS).await;
    let target = target(&ecs);
    let stop = Arc::new(AtomicBool::new(false));
    let writers = spawn_writers(&target, NS, 4, "a", &stop, Duration::from_millis(15));
    let begin = Instant::now();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        ecs.kill();
        tokio::time::sleep(Duration::from_millis(300)).await;
        ecs.restart().await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let mut writes = join_writers(writers).await;
    println!(
        "[{name}] 4 writers for {:.1}s; the server was SIGKILLed and restarted 3 times \
         (started {} times); outcomes {:?}",
        begin.elapsed().as_secs_f64(),
        ecs.starts,
        histogram(writes.iter().map(|w| label(&w.outcome)))
    );
    ecs.wait_ready(READY).await;
    check_and_settle(name, &target, &nats.url(), &mut writes).await;
    let last = assert_caught_up(name, &ecs, &nats.url()).await;
    println!("[{name}] projections applied = stream last sequence = {last}");
    assert_rebuild_equal(name, &ecs, &db.url).await;
}

/// Scenario B: kill -9 and restart NATS twice during writes; an SDK watcher
/// converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_kill_9_nats_during_writes_and_sdk_watchers_converge() {
    let name = "B kill -9 nats";
    let mut nats = NatsServer::start();
    let db = TestDatabase::create().await;
    let ecs = EcsProcess::start(&nats.url(), &db.url).await;
    create_namespace(&ecs, NS).await;
    let target = target(&ecs);

    let client = Client::connect(ClientSettings::new(nats.url(), [NS]).unwrap())
        .await
        .unwrap();
    let context = Context::from_pairs([("service", "w0")]).unwrap();
    let mut receiver = client.watch(NS, &context).unwrap();
    let positions = Arc::new(std::sync::Mutex::new(vec![]));
    let watched = tokio::spawn({
        let mut receiver = receiver.clone();
        let positions = positions.clone();
        async move {
            let first = receiver.borrow_and_update().position;
            positions.lock().unwrap().push(first);
            while receiver.changed().await.is_ok() {
                let position = receiver.borrow_and_update().position;
                positions.lock().unwrap().push(position);
            }
        }
    });

    let stop = Arc::new(AtomicBool::new(false));
    let writers = spawn_writers(&target, NS, 3, "b", &stop, Duration::from_millis(15));
    let begin = Instant::now();
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        tokio::task::block_in_place(|| nats.kill());
        tokio::time::sleep(Duration::from_millis(1500)).await;
        tokio::task::block_in_place(|| nats.restart());
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let mut writes = join_writers(writers).await;
    println!(
        "[{name}] 3 writers for {:.1}s; NATS was SIGKILLed and restarted 2 times \
         (down 1.5s each); outcomes {:?}",
        begin.elapsed().as_secs_f64(),
        histogram(writes.iter().map(|w| label(&w.outcome)))
    );
    ecs.wait_ready(READY).await;
    check_and_settle(name, &target, &nats.url(), &mut writes).await;

    // A last write to the global layer, so the watched context changes once
    // more after everything healed.
    ecs.must(
        Method::PATCH,
        &format!("/v1/namespaces/{NS}/layer"),
        &json!({"values": {"marker": "healed"}}),
    )
    .await;
    let last = assert_caught_up(name, &ecs, &nats.url()).await;
    let server = ecs
        .get_json(&format!("/v1/namespaces/{NS}/resolved?service=w0"))
        .await;
    let converged = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let config = receiver.borrow_and_update().clone();
            if config.values == server["values"] && client.applied_position() == last {
                return config;
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), receiver.changed()).await;
        }
    })
    .await;
    let sdk_values = receiver.borrow().values.clone();
    watched.abort();
    let positions = positions.lock().unwrap().clone();
    println!(
        "[{name}] SDK watcher (service=w0): {} after healing; applied position {} vs server {last}; \
         {} updates seen, positions only grow: {}",
        if converged.is_ok() {
            "converged"
        } else {
            "DID NOT converge"
        },
        client.applied_position(),
        positions.len(),
        positions.windows(2).all(|w| w[0] < w[1])
    );
    assert!(
        converged.is_ok(),
        "the SDK did not converge: sdk {sdk_values} vs server {}",
        server["values"]
    );
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    assert_rebuild_equal(name, &ecs, &db.url).await;
}

/// Scenario C: stop PostgreSQL (a private cluster) during writes and reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_stop_postgres_during_writes_and_reads() {
    stop_postgres("C stop postgres", true).await;
}

/// Scenario C with `synchronous_commit = off` (as the shared test cluster and
/// many deployments run): the immediate stop loses PostgreSQL's last
/// acknowledged commits, including projected messages and their offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c2_crash_postgres_with_synchronous_commit_off() {
    stop_postgres("C2 crash postgres, synchronous_commit=off", false).await;
}

async fn stop_postgres(name: &str, durable: bool) {
    let nats = NatsServer::start();
    let mut pg =
        tokio::task::block_in_place(|| PgCluster::start(durable)).expect("a private PostgreSQL");
    let db_url = pg.create_database("ecs").await.unwrap();
    let ecs = EcsProcess::start(&nats.url(), &db_url).await;
    create_namespace(&ecs, NS).await;
    let target = target(&ecs);
    let stop = Arc::new(AtomicBool::new(false));
    let writers = spawn_writers(&target, NS, 3, "c", &stop, Duration::from_millis(20));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let target = target.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut reads = vec![];
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let answer = target
                        .request(
                            Method::GET,
                            &format!("/v1/namespaces/{NS}/resolved?service=w0"),
                        )
                        .send()
                        .await;
                    let outcome = match answer {
                        Ok(r) => {
                            let status = r.status();
                            let retry_after = r.headers().contains_key("retry-after");
                            let body = r.text().await.unwrap_or_default();
                            (Some(status), retry_after, body)
                        }
                        Err(e) => (None, false, e.to_string()),
                    };
                    reads.push((started, outcome));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                reads
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(3)).await;
    let down = Instant::now();
    tokio::task::block_in_place(|| pg.stop_immediate()).expect("stop PostgreSQL");
    tokio::time::sleep(Duration::from_secs(6)).await;
    tokio::task::block_in_place(|| pg.start_again()).expect("start PostgreSQL again");
    let up = Instant::now();
    let ready_within = {
        let deadline = up + READY;
        while !ecs.ready().await && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        up.elapsed()
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let mut writes = join_writers(writers).await;
    let mut reads = vec![];
    for reader in readers {
        reads.extend(reader.await.unwrap());
    }

    let during = |t: Instant| t >= down && t < up;
    let write_outcomes = histogram(
        writes
            .iter()
            .filter(|w| during(w.started))
            .map(|w| label(&w.outcome)),
    );
    let read_label = |o: &(Option<StatusCode>, bool, String)| match o {
        (Some(s), _, _) if s.is_success() => "200",
        (Some(s), true, _) if *s == StatusCode::SERVICE_UNAVAILABLE => "503+Retry-After",
        (Some(s), false, _) if *s == StatusCode::SERVICE_UNAVAILABLE => "503 without Retry-After",
        (Some(s), _, _) if s.is_server_error() => "other 5xx",
        (Some(_), _, _) => "4xx",
        (None, _, _) => "no answer",
    };
    let read_outcomes = histogram(
        reads
            .iter()
            .filter(|(t, _)| during(*t))
            .map(|(_, o)| read_label(o)),
    );
    let all_reads = histogram(reads.iter().map(|(_, o)| read_label(o)));
    println!(
        "[{name}] PostgreSQL stopped (immediate) for {:.1}s under 3 writers and 2 readers; \
         /readyz 200 again {:.1}s after it returned",
        (up - down).as_secs_f64(),
        ready_within.as_secs_f64()
    );
    println!("[{name}] writes while down: {write_outcomes:?}");
    println!("[{name}] resolved reads while down: {read_outcomes:?}; all reads: {all_reads:?}");
    println!(
        "[{name}] all writes: {:?}",
        histogram(writes.iter().map(|w| label(&w.outcome)))
    );
    let bad_writes: Vec<String> = writes
        .iter()
        .filter(|w| matches!(label(&w.outcome), "other 5xx" | "503 without Retry-After"))
        .map(|w| format!("PATCH {} -> {:?}", w.path, w.outcome))
        .collect();
    let bad_reads: Vec<String> = reads
        .iter()
        .filter(|(_, o)| {
            matches!(
                read_label(o),
                "other 5xx" | "503 without Retry-After" | "no answer" | "4xx"
            )
        })
        .map(|(_, (s, _, body))| format!("GET resolved -> {s:?} {body}"))
        .collect();
    for sample in bad_writes.iter().chain(&bad_reads).take(4) {
        println!("[{name}] contract violation: {sample}");
    }
    for line in ecs.log_lines("internal error").iter().take(3) {
        println!("[{name}] server log: {line}");
    }
    assert!(
        ready_within < READY,
        "[{name}] /readyz did not return to 200"
    );
    check_and_settle(name, &target, &nats.url(), &mut writes).await;
    let last = assert_caught_up(name, &ecs, &nats.url()).await;
    println!("[{name}] projections caught up: applied = stream last sequence = {last}");
    assert!(
        bad_writes.is_empty() && bad_reads.is_empty(),
        "[{name}] {} write(s) and {} read(s) broke the contract (2xx, 4xx or 503 with \
         Retry-After): {:?}",
        bad_writes.len(),
        bad_reads.len(),
        bad_writes
            .iter()
            .chain(&bad_reads)
            .take(4)
            .collect::<Vec<_>>()
    );
    drop(ecs);
    drop(pg);
}

/// Scenario D: 8 writers increment a counter with read-modify-write and
/// If-Match on one layer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d_concurrent_if_match_writers_lose_no_update() {
    let name = "D If-Match counter";
    const WRITERS: usize = 8;
    const INCREMENTS: u64 = 160;
    let nats = NatsServer::start();
    let db = TestDatabase::create().await;
    let ecs = EcsProcess::start(&nats.url(), &db.url).await;
    create_namespace(&ecs, "counter").await;
    let path = "/v1/namespaces/counter/layer";
    ecs.must(
        Method::PUT,
        path,
        &json!({"values": {"n": 0}, "message": "init"}),
    )
    .await;
    let target = target(&ecs);
    let acked = Arc::new(AtomicU64::new(0));
    let begin = Instant::now();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|k| {
            let target = target.clone();
            let acked = acked.clone();
            tokio::spawn(async move {
                // (id, acknowledged revision, value written), 412s, 409s, others
                let (mut mine, mut stale, mut conflicts, mut other) = (vec![], 0, 0, vec![]);
                let mut i = 0;
                while acked.load(Ordering::SeqCst) < INCREMENTS {
                    let current: Value = target
                        .request(Method::GET, path)
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    let revision = current["revision"].as_u64().unwrap();
                    let n = current["values"]["n"].as_u64().unwrap();
                    i += 1;
                    let id = format!("d-w{k}-{i}");
                    let response = target
                        .request(Method::PUT, path)
                        .header("If-Match", format!("\"{revision}\""))
                        .header("Idempotency-Key", &id)
                        .json(&json!({"values": {"n": n + 1}, "message": id}))
                        .send()
                        .await;
                    match response {
                        Ok(r) if r.status().is_success() => {
                            let body: Value = r.json().await.unwrap();
                            mine.push((id, body["revision"].as_u64().unwrap(), n + 1));
                            acked.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(r) if r.status() == StatusCode::PRECONDITION_FAILED => stale += 1,
                        Ok(r) if r.status() == StatusCode::CONFLICT => conflicts += 1,
                        Ok(r) => other.push(format!("{} {}", r.status(), id)),
                        Err(e) => other.push(format!("{e} {id}")),
                    }
                }
                (mine, stale, conflicts, other)
            })
        })
        .collect();
    let (mut accepted, mut stale, mut conflicts, mut other) = (vec![], 0, 0, vec![]);
    for task in tasks {
        let (m, s, c, o) = task.await.unwrap();
        accepted.extend(m);
        stale += s;
        conflicts += c;
        other.extend(o);
    }
    let elapsed = begin.elapsed();
    let layer = ecs.get_json(path).await;
    // The history comes a page at a time; follow `next_cursor` to its end.
    let mut revisions = Vec::new();
    let mut page = format!("{path}/history?limit=1000");
    loop {
        let history = ecs.get_json(&page).await;
        revisions.extend(history["revisions"].as_array().unwrap().iter().cloned());
        match history["next_cursor"].as_str() {
            Some(next) => page = format!("{path}/history?limit=1000&cursor={next}"),
            None => break,
        }
    }
    let counter = layer["values"]["n"].as_u64().unwrap();
    // Revision r (r >= 2) holds n = r - 1: each accepted write incremented
    // exactly the value of the revision before it.
    let gaps: Vec<String> = revisions
        .iter()
        .enumerate()
        .filter(|(i, r)| {
            r["revision"].as_u64() != Some(*i as u64 + 1)
                || r["values"]["n"].as_u64() != Some(*i as u64)
        })
        .map(|(i, r)| format!("entry {i}: {}", r["values"]))
        .collect();
    let misplaced: Vec<String> = accepted
        .iter()
        .filter(|(id, revision, n)| {
            let entry = &revisions[(*revision as usize)
                .saturating_sub(1)
                .min(revisions.len() - 1)];
            entry["message"].as_str() != Some(id.as_str())
                || entry["values"]["n"].as_u64() != Some(*n)
        })
        .map(|(id, revision, _)| format!("{id}@{revision}"))
        .collect();
    println!(
        "[{name}] {WRITERS} writers, {:.1}s: {} increments acknowledged, {stale} refused \
         with 412 (retried), {conflicts} with 409, {} other; counter = {counter}; history has \
         {} revisions; gaps or lost updates: {}; acknowledged writes not at their revision: {}",
        elapsed.as_secs_f64(),
        accepted.len(),
        other.len(),
        revisions.len(),
        gaps.len(),
        misplaced.len()
    );
    assert!(other.is_empty(), "[{name}] unexpected answers: {other:?}");
    assert_eq!(counter, accepted.len() as u64, "[{name}] lost updates");
    assert_eq!(
        revisions.len(),
        accepted.len() + 1,
        "[{name}] history length"
    );
    assert!(gaps.is_empty(), "[{name}] {gaps:?}");
    assert!(misplaced.is_empty(), "[{name}] {misplaced:?}");
}
