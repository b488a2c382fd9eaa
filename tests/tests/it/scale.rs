//! Scale-out: ECS on a three-node JetStream cluster named by a URL list,
//! and the disaster-recovery drill (the projections rebuilt from the stream
//! into a brand-new database).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use async_nats::jetstream;
use ecs_api::{Application, Settings};
use ecs_client::{Client, ClientSettings, Context};
use ecs_tests::app::{ADMIN_TOKEN, TestApp, settings_for, spawn_app};
use ecs_tests::servers::{NatsCluster, TestDatabase, wait_jetstream};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long the cluster may take to elect a new stream leader and accept
/// writes again after its leader dies.
const FAILOVER: Duration = Duration::from_secs(30);

/// One `ecs serve` running in this process.
struct Instance {
    address: String,
    client: reqwest::Client,
    server: Option<(CancellationToken, JoinHandle<anyhow::Result<()>>)>,
}

impl Instance {
    async fn start(settings: Settings) -> Instance {
        let app = Application::build(settings).await.expect("build the app");
        let address = app.url();
        let token = app.shutdown_token();
        let handle = tokio::spawn(app.run_until_stopped());
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Instance {
            address,
            client,
            server: Some((token, handle)),
        }
    }

    /// Puts the global layer of `checkout` to `{"limit": value}`: the
    /// position the write was acknowledged at, or `None` when it was not.
    async fn put_limit(&self, value: u64) -> Option<u64> {
        let response = self
            .client
            .put(format!("{}/v1/namespaces/checkout/layer?", self.address))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"values": {"limit": value}}))
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body: Value = response.json().await.ok()?;
        body["position"].as_u64()
    }

    async fn put(&self, path: &str, body: &Value) -> reqwest::StatusCode {
        self.client
            .put(format!("{}{path}", self.address))
            .bearer_auth(ADMIN_TOKEN)
            .json(body)
            .send()
            .await
            .unwrap()
            .status()
    }
}

impl Instance {
    async fn get(&self, path: &str) -> (reqwest::StatusCode, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.address))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `/readyz`'s view of `lease`: whether this instance holds it.
    async fn holds(&self, lease: &str) -> bool {
        let response = self
            .client
            .get(format!("{}/readyz", self.address))
            .send()
            .await
            .unwrap();
        let ready: Value = response.json().await.unwrap();
        ready["leases"][lease]["held"] == json!(true)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some((token, handle)) = self.server.take() {
            token.cancel();
            handle.abort();
        }
    }
}

/// The name of the node leading `stream`, as JetStream reports it.
async fn stream_leader(js: &jetstream::Context, stream: &str) -> String {
    let deadline = Instant::now() + FAILOVER;
    loop {
        if let Ok(mut handle) = js.get_stream(stream).await
            && let Ok(info) = handle.info().await
            && let Some(leader) = info.cluster.as_ref().and_then(|c| c.leader.clone())
        {
            return leader;
        }
        assert!(Instant::now() < deadline, "{stream} has no leader");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// A three-node cluster with a killed leader: the SDK's convergence after the
// failover overran its bound once on a loaded two-core CI machine, so this
// runs apart: `cargo test -p ecs-tests --test it -- scale:: --ignored`.
#[tokio::test]
#[ignore = "three-node NATS failover; run with --ignored (see docs/operations.md)"]
async fn a_url_list_and_three_replicas_survive_the_death_of_the_stream_leader() {
    let mut cluster = NatsCluster::start();
    let urls = cluster.urls();
    wait_jetstream(&urls).await;
    let db = TestDatabase::create().await;
    let mut settings = settings_for(&cluster.nodes[0], &db);
    settings.nats_url = urls.clone().into();
    settings.stream_replicas = NatsCluster::SIZE;
    let ecs = Instance::start(settings.clone()).await;

    // Every stream and bucket ECS created is replicated on every node.
    let js = jetstream::new(
        async_nats::connect(urls.split(',').collect::<Vec<_>>())
            .await
            .unwrap(),
    );
    let mut names = js.stream_names();
    let mut seen = vec![];
    while let Some(name) = futures::StreamExt::next(&mut names).await {
        let name = name.unwrap();
        let info = js
            .get_stream(&name)
            .await
            .unwrap()
            .info()
            .await
            .unwrap()
            .clone();
        assert_eq!(
            info.config.num_replicas,
            NatsCluster::SIZE,
            "{name} is not replicated on every node"
        );
        seen.push(name);
    }
    for expected in ["ECS_EVENTS", "ECS_AUDIT"] {
        assert!(
            seen.iter().any(|n| n == expected),
            "{expected} missing: {seen:?}"
        );
    }
    assert!(
        seen.iter().filter(|n| n.starts_with("KV_")).count() >= 2,
        "the feed and keyring buckets are missing: {seen:?}"
    );

    let schema = json!({"type": "object", "properties": {"limit": {"type": "integer"}}});
    assert!(
        ecs.put("/v1/namespaces/checkout", &json!({"schema": schema}))
            .await
            .is_success()
    );
    // An SDK client follows the feed through the same URL list.
    let client = Client::connect(ClientSettings::new(urls.clone(), ["checkout"]).unwrap())
        .await
        .unwrap();
    let mut watched = client.watch("checkout", &Context::default()).unwrap();

    let mut acknowledged: Vec<(u64, u64)> = vec![];
    let mut value = 0;
    while acknowledged.len() < 10 {
        value += 1;
        if let Some(position) = ecs.put_limit(value).await {
            acknowledged.push((position, value));
        }
    }

    // Kill the events stream's leader while writes go on.
    let leader = stream_leader(&js, "ECS_EVENTS").await;
    let writer = tokio::spawn(async move {
        let mut acknowledged = acknowledged;
        let mut value = value;
        let mut after = 0;
        let deadline = Instant::now() + FAILOVER;
        while after < 10 {
            assert!(
                Instant::now() < deadline,
                "writes did not continue within {FAILOVER:?} of the leader's death"
            );
            value += 1;
            match ecs.put_limit(value).await {
                Some(position) => {
                    acknowledged.push((position, value));
                    after += 1;
                }
                None => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        (ecs, acknowledged)
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    cluster.node_named(&leader).kill();
    let (ecs, acknowledged) = writer.await.unwrap();
    let new_leader = stream_leader(&js, "ECS_EVENTS").await;
    assert_ne!(new_leader, leader, "the dead node still leads the stream");

    // Every acknowledged write is in the stream, at the position it was
    // acknowledged at.
    let events = js.get_stream("ECS_EVENTS").await.unwrap();
    for (position, value) in &acknowledged {
        let message = events.get_raw_message(*position).await.unwrap_or_else(|e| {
            panic!("the write of {value} acknowledged at {position} is lost: {e}")
        });
        let payload: Value = serde_json::from_slice(&message.payload).unwrap();
        assert!(
            payload.to_string().contains(&format!("\"limit\":{value}")),
            "position {position} does not hold the write of {value}: {payload}"
        );
    }

    // The SDK watcher converges on the last acknowledged write.
    let last = acknowledged.last().unwrap().1;
    tokio::time::timeout(FAILOVER, async {
        loop {
            if watched.borrow_and_update().values["limit"] == json!(last) {
                return;
            }
            watched.changed().await.unwrap();
        }
    })
    .await
    .expect("the SDK watcher did not converge");
    drop(ecs);
}

/// Disaster recovery: the database is lost; a fresh one is created and ECS
/// started on it rebuilds every projection by replaying the stream.
#[tokio::test]
async fn the_projections_are_rebuilt_from_the_stream_into_a_fresh_database() {
    let mut app: TestApp = spawn_app().await;
    let schema = json!({"type": "object", "properties": {
        "limit": {"type": "integer"}, "mode": {"type": "string"}
    }});
    assert!(
        app.put_namespace("checkout", &json!({"schema": schema}))
            .await
            .status
            .is_success()
    );
    for (tenant, edition) in [("acme", "pro"), ("globex", "free")] {
        assert!(app.put_tenant(tenant, edition).await.status.is_success());
    }
    for (scope, values) in [
        ("", json!({"limit": 1, "mode": "safe"})),
        ("edition=pro", json!({"limit": 2})),
        ("tenant=acme", json!({"mode": "fast"})),
        ("tenant=globex", json!({"limit": 3})),
    ] {
        let answer = app
            .put_layer("checkout", scope, &json!({"values": values}))
            .await;
        assert!(answer.status.is_success(), "{scope}: {}", answer.body);
    }
    let resolved_before = app.resolved("checkout", "tenant=acme").await.body;
    let before = app.dump_projections().await;
    app.stop().await;

    // The database is gone; the operator creates an empty one.
    let admin = ecs_tests::servers::admin_url().unwrap();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
        .await
        .unwrap();
    sqlx::query(&format!("DROP DATABASE \"{}\" WITH (FORCE)", app.db.name))
        .execute(&mut conn)
        .await
        .unwrap();
    let fresh = TestDatabase::create().await;
    app.settings.database_url = fresh.url.clone().into();
    app.db = fresh;

    // ECS on the empty database migrates it and replays the stream.
    app.start().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let after = app.dump_projections().await;
        if after == before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rebuilt projections differ from the lost ones"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        app.resolved("checkout", "tenant=acme").await.body,
        resolved_before
    );
}

/// Read-your-writes across instances: a read given a position waits until
/// this server's projections have applied it. Here the write comes after
/// the read, so the read must wait for it (several instances: below).
#[tokio::test]
async fn a_read_given_a_position_waits_until_the_projections_reach_it() {
    let app = ecs_tests::app::spawn_app_with(|s| s.min_position_wait_ms = 3_000).await;
    let schema = json!({"type": "object", "properties": {"limit": {"type": "integer"}}});
    assert!(
        app.put_namespace("checkout", &json!({"schema": schema}))
            .await
            .status
            .is_success()
    );
    let first = app
        .put_layer("checkout", "", &json!({"values": {"limit": 1}}))
        .await;
    let next = first.position() + 1;

    // Alternately the query parameter and the header.
    for (round, value) in [(0, 2), (1, 3)] {
        let wanted = next + round;
        let request = if round == 0 {
            app.request(
                reqwest::Method::GET,
                &format!("/v1/namespaces/checkout/resolved?min_position={wanted}"),
            )
        } else {
            app.request(reqwest::Method::GET, "/v1/namespaces/checkout/resolved")
                .header("ECS-Min-Position", wanted.to_string())
        };
        let read = tokio::spawn(request.send());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !read.is_finished(),
            "the read did not wait for position {wanted}"
        );
        let written = app
            .put_layer("checkout", "", &json!({"values": {"limit": value}}))
            .await;
        assert_eq!(written.position(), wanted);
        let read = read.await.unwrap().unwrap();
        let status = read.status();
        let body: Value = read.json().await.unwrap();
        assert_eq!(status, reqwest::StatusCode::OK, "{body}");
        assert_eq!(body["values"]["limit"], json!(value), "{body}");
    }

    // A position nobody reaches: 503 with Retry-After once the bound passes.
    let started = Instant::now();
    let behind = app
        .get("/v1/namespaces/checkout/resolved?min_position=1000000")
        .await;
    assert_eq!(behind.status, reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert!(behind.header("retry-after").is_some());
    assert!(started.elapsed() >= Duration::from_millis(3_000));
    assert_eq!(behind.code(), "behind", "{}", behind.body);

    // Not a position: 400 naming the field.
    let bad = app
        .get("/v1/namespaces/checkout/resolved?min_position=soon")
        .await;
    assert_eq!(bad.status, reqwest::StatusCode::BAD_REQUEST);
    assert_eq!(bad.body["field"], "min_position", "{}", bad.body);

    // The OpenAPI document names both on every read.
    let openapi = app.get("/v1/openapi.json").await.body;
    let names: Vec<&str> = openapi["paths"]["/v1/namespaces/{ns}/resolved"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(names.contains(&"min_position"), "{names:?}");
    assert!(names.contains(&"ECS-Min-Position"), "{names:?}");
}

/// Three instances on one NATS and one PostgreSQL, written to concurrently:
/// one of them runs the projector (the others stand by), every write is
/// readable on every instance given its position, and the projections equal
/// a fresh replay of the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_one_projector_and_read_each_others_writes() {
    let nats = ecs_tests::servers::NatsServer::start();
    let db = TestDatabase::create().await;
    let mut settings = settings_for(&nats, &db);
    settings.lease_ttl_secs = 3;
    settings.min_position_wait_ms = 10_000;
    let mut instances = vec![];
    for _ in 0..3 {
        instances.push(std::sync::Arc::new(Instance::start(settings.clone()).await));
    }
    let schema = json!({"type": "object", "properties": {
        "limit": {"type": "integer"}, "writer": {"type": "string"}
    }});
    assert!(
        instances[0]
            .put("/v1/namespaces/checkout", &json!({"schema": schema}))
            .await
            .is_success()
    );

    // Each instance takes writes to a scope of its own, concurrently; each
    // write is read back at once through the next instance.
    let writers: Vec<_> = (0..3)
        .map(|n| {
            let (here, next) = (instances[n].clone(), instances[(n + 1) % 3].clone());
            tokio::spawn(async move {
                for value in 1..=15u64 {
                    let path = format!("/v1/namespaces/checkout/layer?service=s{n}");
                    let response = here
                        .client
                        .put(format!("{}{path}", here.address))
                        .bearer_auth(ADMIN_TOKEN)
                        .json(&json!({"values": {"limit": value, "writer": format!("s{n}")}}))
                        .send()
                        .await
                        .unwrap();
                    assert!(response.status().is_success(), "write {value} on {n}");
                    let position = response.json::<Value>().await.unwrap()["position"]
                        .as_u64()
                        .unwrap();
                    let (status, layer) =
                        next.get(&format!("{path}&min_position={position}")).await;
                    assert_eq!(status, reqwest::StatusCode::OK, "{layer}");
                    assert_eq!(
                        layer["values"]["limit"],
                        json!(value),
                        "instance {} read an older layer after the write at {position}",
                        (n + 1) % 3
                    );
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }

    // Exactly one instance runs each singleton job.
    for lease in ["projections", "feed", "audit"] {
        let mut holders = 0;
        for instance in &instances {
            holders += usize::from(instance.holds(lease).await);
        }
        assert_eq!(holders, 1, "{lease} is held by {holders} instances");
    }

    // The projections equal a fresh replay (a rebuild, run by the holder).
    let dump = |db: &TestDatabase| {
        let url = db.url.clone();
        async move {
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            let mut out = serde_json::Map::new();
            for table in ecs_projections::apply::TABLES {
                let rows: Vec<Value> = sqlx::query_scalar(&format!(
                    "SELECT to_jsonb(t) FROM {table} t ORDER BY to_jsonb(t)::text"
                ))
                .fetch_all(&pool)
                .await
                .unwrap();
                out.insert((*table).to_owned(), Value::Array(rows));
            }
            pool.close().await;
            Value::Object(out)
        }
    };
    let before = dump(&db).await;
    let mut holder = None;
    for instance in &instances {
        if instance.holds("projections").await {
            holder = Some(instance.clone());
        }
    }
    let holder = holder.unwrap();
    let standby = instances
        .iter()
        .find(|i| !std::sync::Arc::ptr_eq(i, &holder))
        .unwrap();
    let refused = standby
        .client
        .post(format!("{}/v1/admin/projections/rebuild", standby.address))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused.status(),
        reqwest::StatusCode::SERVICE_UNAVAILABLE,
        "a standby cannot rebuild: it does not run the projector"
    );
    let started = holder
        .client
        .post(format!("{}/v1/admin/projections/rebuild", holder.address))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), reqwest::StatusCode::ACCEPTED);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, status) = holder.get("/v1/admin/projections").await;
        if status["rebuilding"] == json!(false) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rebuild did not finish: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        dump(&db).await,
        before,
        "the projections differ from a fresh replay"
    );
    instances.clear();
}

/// The lease itself: a second instance cannot take it while the holder
/// renews; a holder cut off from NATS stops its work (its token is
/// cancelled) before the lease can expire at the server, and once NATS is
/// back the other instance takes it.
#[tokio::test]
async fn a_lease_holder_cut_off_from_nats_stops_before_its_lease_can_expire() {
    use ecs_projections::{HolderId, LeaseBucket, LeaseName};
    // The TTL the bucket is created with: the holder renews every TTL / 4,
    // fences at TTL / 2 after its last acknowledged renewal was sent; the
    // server expires the key TTL after it stored that renewal.
    const TTL: Duration = Duration::from_secs(8);
    let mut nats = ecs_tests::servers::NatsServer::start();
    let connect = |url: String| async move {
        jetstream::new(
            async_nats::ConnectOptions::new()
                .retry_on_initial_connect()
                .connect(url)
                .await
                .unwrap(),
        )
    };
    let (js_a, js_b) = (connect(nats.url()).await, connect(nats.url()).await);
    let a = LeaseBucket::ensure(&js_a, 1, TTL)
        .await
        .unwrap()
        .lease(LeaseName::Rollouts, HolderId::generate());
    let b = LeaseBucket::ensure(&js_b, 1, TTL)
        .await
        .unwrap()
        .lease(LeaseName::Rollouts, HolderId::generate());
    let shutdown = CancellationToken::new();
    let tenure = a.acquire(&shutdown).await.unwrap();
    assert!(a.status().borrow().held);

    // While A renews, B does not get it (across several renewals).
    let refused = tokio::time::timeout(TTL + TTL / 8, b.acquire(&shutdown)).await;
    assert!(refused.is_err(), "B acquired a lease A holds and renews");
    assert!(!tenure.token().is_cancelled(), "A lost a lease it renews");
    let seen = b.status().borrow().clone();
    assert!(!seen.held);
    assert_eq!(
        seen.holder.as_deref(),
        a.status().borrow().holder.as_deref()
    );

    // NATS goes away: A cannot renew. Its last acknowledged renewal was sent
    // at most TTL / 4 before the cut, so the key expires no earlier than
    // 3/4 TTL after it: A must have stopped by then.
    nats.kill();
    let cut = Instant::now();
    tenure.token().cancelled().await;
    let stopped = cut.elapsed();
    assert!(
        stopped < TTL * 3 / 4,
        "A worked on for {stopped:?} after losing NATS: its lease may have expired meanwhile"
    );
    assert!(!a.status().borrow().held);

    // NATS is back: once the key expired, B takes the lease.
    nats.restart();
    let taken = tokio::time::timeout(TTL * 3, b.acquire(&shutdown))
        .await
        .expect("B did not take the expired lease")
        .unwrap();
    assert!(b.status().borrow().held);
    taken.release().await;
    drop(tenure);
}

/// The CLI's client remembers the position its writes were answered at and
/// sends it with every later read (`ECS-Min-Position`), so a read served by
/// another instance behind a load balancer waits for the write.
#[tokio::test]
async fn the_cli_sends_the_position_of_its_last_write_with_its_reads() {
    use ecs_cli::connection::Send;
    let app = spawn_app().await;
    let api = ecs_cli::Api::new(&app.address, Some(ADMIN_TOKEN.to_owned())).unwrap();
    assert_eq!(api.written(), 0);
    let schema = json!({"type": "object", "properties": {"limit": {"type": "integer"}}});
    let put = |path: &'static str, body: Value| {
        let api = api.clone();
        async move {
            api.send(
                reqwest::Method::PUT,
                path,
                Send {
                    body: Some(&body),
                    ..Send::default()
                },
            )
            .await
        }
    };
    let first = put("/v1/namespaces/checkout", json!({"schema": schema}))
        .await
        .unwrap();
    assert_eq!(Some(api.written()), first.body["position"].as_u64());
    let second = put(
        "/v1/namespaces/checkout/layer",
        json!({"values": {"limit": 7}}),
    )
    .await
    .unwrap();
    let position = second.body["position"].as_u64().unwrap();
    assert!(position > first.body["position"].as_u64().unwrap());
    assert_eq!(api.written(), position);
    // A refused write changes nothing; a read carries the position (the
    // server accepts it: a malformed one would be a 400).
    assert!(
        put(
            "/v1/namespaces/checkout/layer",
            json!({"values": {"limit": "many"}})
        )
        .await
        .is_err()
    );
    assert_eq!(api.written(), position);
    let read = api
        .get("/v1/namespaces/checkout/resolved", &[])
        .await
        .unwrap();
    assert_eq!(read["values"]["limit"], json!(7));
    assert_eq!(api.written(), position, "a read is no write");
}
