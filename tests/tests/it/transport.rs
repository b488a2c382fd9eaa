//! Transport security against real servers: NATS locked down with the shipped
//! permission model (`deploy/nats-auth.conf`, credentials from
//! `ecs nats-credential`), and TLS verified against a CA made at test time.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::push};
use ecs_api::nats_credential::{Credential, Holder, render_auth_config};
use ecs_client::{Client, ClientError, ClientSettings, Config, Context, NatsAuth, Origin};
use ecs_domain::TenantId;
use ecs_projections::feed_mirror::FEED_API_PREFIX;
use ecs_tests::app::TestApp;
use ecs_tests::servers::NatsServer;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(20);

/// How long a refused request is given to answer (it never does: NATS drops
/// a publish its sender may not make).
const REFUSED_WITHIN: Duration = Duration::from_secs(2);

/// A NATS server running the shipped permission model, with the ECS server's
/// credential and feed readers' credentials filled in.
struct LockedNats {
    server: NatsServer,
    ecs: Credential,
    /// Keeps the configuration file for the server's lifetime.
    _dir: tempfile::TempDir,
}

fn locked_nats(readers: &[&Credential]) -> LockedNats {
    let template = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/nats-auth.conf"
    ))
    .unwrap();
    let ecs = Credential::issue(Holder::Server).unwrap();
    let entries: Vec<String> = readers.iter().map(|r| r.users_entry()).collect();
    let config = render_auth_config(&template, &ecs.public_key, &entries);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nats.conf");
    std::fs::write(&path, config).unwrap();
    LockedNats {
        server: NatsServer::start_with_config(&path),
        ecs,
        _dir: dir,
    }
}

fn reader(tenant: &str, service: &str) -> Credential {
    Credential::issue(Holder::FeedReader {
        tenants: vec![TenantId::parse(tenant).unwrap()],
        service: Some(ecs_domain::ServiceName::parse(service).unwrap()),
    })
    .unwrap()
}

/// ECS over the locked NATS, connecting with the server's credential.
async fn spawn_locked(nats: LockedNats) -> (TestApp, Credential, tempfile::TempDir) {
    let seed = nats.ecs.seed.clone();
    let app = TestApp::spawn_on(nats.server, |settings| {
        settings.nats_nkey = Some(seed.into());
        settings.feed_mirror_api = Some(FEED_API_PREFIX.to_owned());
    })
    .await;
    (app, nats.ecs, nats._dir)
}

/// A namespace, two tenants and layers of each kind of scope.
async fn seed(app: &TestApp) {
    let schema = json!({"type": "object", "properties": {
        "limit": {"type": "integer", "default": 10},
        "mode": {"type": "string", "default": "safe"}
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
        ("", json!({"limit": 20})),
        ("edition=pro", json!({"mode": "fast"})),
        ("tenant=acme", json!({"limit": 40})),
        ("env=prod&tenant=globex", json!({"mode": "globex-secret"})),
    ] {
        let answer = app
            .put_layer("checkout", scope, &json!({"values": values}))
            .await;
        assert!(answer.status.is_success(), "{scope}: {}", answer.body);
    }
}

/// A raw NATS connection with a credential, as an attacker holding it would
/// make: its own reply prefix (anything else it may not subscribe to).
async fn connect_as(url: &str, credential: &Credential) -> async_nats::Client {
    ecs_client::NatsTransport {
        auth: NatsAuth::Nkey(credential.seed.clone()),
        ..Default::default()
    }
    .connect_options("attacker", Duration::from_secs(5))
    .await
    .unwrap()
    .request_timeout(Some(REFUSED_WITHIN))
    .connect(url)
    .await
    .unwrap()
}

/// The last sequence of a stream, read with the server's credential.
async fn last_sequence(js: &jetstream::Context, stream: &str) -> u64 {
    js.get_stream(stream)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .last_sequence
}

/// Collects every way a refusal fails to happen, to report them all at once.
#[derive(Default)]
struct Refusals {
    mismatches: Vec<String>,
}

impl Refusals {
    fn expect_refused<T: std::fmt::Debug, E>(&mut self, what: &str, result: Result<T, E>) {
        if let Ok(value) = result {
            self.mismatches
                .push(format!("{what}: allowed, answered {value:?}"));
        }
    }

    fn check(&mut self, what: &str, ok: bool) {
        if !ok {
            self.mismatches.push(what.to_owned());
        }
    }

    fn assert_none(self) {
        assert!(
            self.mismatches.is_empty(),
            "{} refusal(s) missing:\n{}",
            self.mismatches.len(),
            self.mismatches.join("\n")
        );
    }
}

/// Creates a named ordered consumer on the feed bucket with these filters.
async fn feed_consumer(
    js: &jetstream::Context,
    client: &async_nats::Client,
    name: Option<&str>,
    filter: &[&str],
) -> Result<push::Ordered, String> {
    let (filter_subject, filter_subjects) = match filter {
        [one] => ((*one).to_owned(), Vec::new()),
        many => (
            String::new(),
            many.iter().map(|s| (*s).to_owned()).collect(),
        ),
    };
    let consumer = js
        .create_consumer_on_stream(
            push::OrderedConfig {
                name: name.map(str::to_owned),
                deliver_subject: client.new_inbox(),
                filter_subject,
                filter_subjects,
                deliver_policy: DeliverPolicy::LastPerSubject,
                ..Default::default()
            },
            "KV_ecs-feed",
        )
        .await
        .map_err(|e| e.to_string())?;
    consumer.messages().await.map_err(|e| e.to_string())
}

/// Whether a subscription receives anything within a second.
async fn receives_anything(subscriber: &mut async_nats::Subscriber) -> bool {
    tokio::time::timeout(Duration::from_secs(1), subscriber.next())
        .await
        .is_ok_and(|m| m.is_some())
}

#[tokio::test]
async fn a_tenants_feed_credential_reads_only_its_tenant_and_writes_nothing() {
    let acme = reader("acme", "billing");
    let (app, ecs, _dir) = spawn_locked(locked_nats(&[&acme])).await;
    seed(&app).await;
    let url = app.nats.url();
    let server = jetstream::new(connect_as(&url, &ecs).await);
    let attacker = connect_as(&url, &acme).await;
    let js = jetstream::new(attacker.clone());
    let mut r = Refusals::default();

    // Anonymous connections are refused outright.
    r.expect_refused(
        "an anonymous connection",
        async_nats::ConnectOptions::new()
            .connect(&url)
            .await
            .map(|_| "connected"),
    );

    // Its own keys: allowed (so the refusals below are the permissions', not
    // a broken connection's).
    match feed_consumer(
        &js,
        &attacker,
        Some("own"),
        &["$KV.ecs-feed.layer.checkout.acme.>"],
    )
    .await
    {
        Ok(mut own) => {
            let first = tokio::time::timeout(WAIT, own.next()).await;
            let payload = first.ok().flatten().map(|m| m.unwrap().payload.clone());
            r.check(
                &format!("its own layer arrives, got {payload:?}"),
                payload.is_some_and(|p| String::from_utf8_lossy(&p).contains("\"limit\":40")),
            );
        }
        Err(error) => r
            .mismatches
            .push(format!("its own layers refused: {error}")),
    }

    // Another tenant's keys, however asked for.
    let globex_layer = "$KV.ecs-feed.layer.checkout.globex.prod._._";
    r.expect_refused(
        "direct get of globex's layer",
        js.get_stream_no_info("KV_ecs-feed")
            .await
            .unwrap()
            .direct_get_last_for_subject(globex_layer)
            .await
            .map(|m| m.payload),
    );
    r.expect_refused(
        "direct get by sequence",
        js.get_stream_no_info("KV_ecs-feed")
            .await
            .unwrap()
            .direct_get(1)
            .await
            .map(|m| m.payload),
    );
    r.expect_refused(
        "stream info of the feed (lists every key)",
        js.get_stream("KV_ecs-feed").await.map(|_| "info"),
    );
    for (what, name, filter) in [
        (
            "a consumer on globex's layers",
            Some("c1"),
            vec!["$KV.ecs-feed.layer.checkout.globex.>"],
        ),
        (
            "a consumer on globex's item",
            Some("c2"),
            vec!["$KV.ecs-feed.tenant.globex"],
        ),
        (
            "a consumer on the whole feed",
            Some("c3"),
            vec!["$KV.ecs-feed.>"],
        ),
        (
            "a consumer on every tenant",
            Some("c4"),
            vec!["$KV.ecs-feed.layer.*.*.>"],
        ),
        ("a consumer without a filter", Some("c5"), vec![]),
        (
            "a consumer with its own and globex's filters",
            Some("c6"),
            vec![
                "$KV.ecs-feed.layer.checkout.acme.>",
                "$KV.ecs-feed.layer.checkout.globex.>",
            ],
        ),
        (
            "an unnamed consumer on its own filter (no filter in the subject)",
            None,
            vec!["$KV.ecs-feed.layer.checkout.acme.>"],
        ),
    ] {
        r.expect_refused(
            what,
            feed_consumer(&js, &attacker, name, &filter)
                .await
                .map(|_| "created"),
        );
    }
    r.expect_refused(
        "a durable consumer",
        js.create_consumer_on_stream(
            jetstream::consumer::pull::Config {
                durable_name: Some("durable".into()),
                ..Default::default()
            },
            "KV_ecs-feed",
        )
        .await
        .map(|_| "created"),
    );
    let mut plain = Vec::new();
    for subject in [
        "$KV.ecs-feed.layer.checkout.globex.>",
        "$KV.ecs-feed.>",
        "ecs.events.>",
        "_INBOX.>",
    ] {
        plain.push((subject, attacker.subscribe(subject).await.unwrap()));
    }
    attacker.flush().await.unwrap();
    let answer = app
        .put_layer(
            "checkout",
            "env=prod&tenant=globex",
            &json!({"values": {"mode": "globex-changed"}}),
        )
        .await;
    assert!(answer.status.is_success(), "{}", answer.body);
    for (subject, subscriber) in &mut plain {
        r.check(
            &format!("a plain subscription to {subject} received a message"),
            !receives_anything(subscriber).await,
        );
    }

    // Writes: events, feed, audit, keyring.
    let before: Vec<(&str, u64)> = {
        let mut v = Vec::new();
        for stream in [
            "ECS_EVENTS",
            "KV_ecs-feed",
            "ECS_AUDIT",
            "KV_ecs-tenant-keys",
        ] {
            v.push((stream, last_sequence(&server, stream).await));
        }
        v
    };
    for subject in [
        "ecs.events.acme.layer.forged",
        "$KV.ecs-feed.layer.checkout.acme._._._",
        "ecs.audit.forged",
        "$KV.ecs-tenant-keys.acme",
    ] {
        r.expect_refused(
            &format!("a JetStream publish to {subject}"),
            match js.publish(subject, "{}".into()).await {
                Ok(ack) => ack.await.map(|a| a.sequence).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            },
        );
        attacker.publish(subject, "{}".into()).await.unwrap();
    }
    attacker.flush().await.unwrap();
    r.expect_refused(
        "purging the keyring",
        js.get_stream_no_info("KV_ecs-tenant-keys")
            .await
            .unwrap()
            .purge()
            .await
            .map(|p| p.purged),
    );
    r.expect_refused(
        "deleting the keyring",
        js.delete_stream("KV_ecs-tenant-keys")
            .await
            .map(|d| d.success),
    );
    r.expect_refused(
        "reading a tenant key",
        js.get_stream_no_info("KV_ecs-tenant-keys")
            .await
            .unwrap()
            .direct_get_last_for_subject("$KV.ecs-tenant-keys.acme")
            .await
            .map(|m| m.payload),
    );
    r.expect_refused(
        "deleting the events stream",
        js.delete_stream("ECS_EVENTS").await.map(|d| d.success),
    );
    for (stream, last) in before {
        let now = last_sequence(&server, stream).await;
        r.check(
            &format!("{stream} grew from {last} to {now} through the feed credential"),
            now == last,
        );
    }
    r.assert_none();
}

/// Waits until the receiver holds a document satisfying `done`.
async fn wait_for(
    receiver: &mut watch::Receiver<Config>,
    done: impl Fn(&Config) -> bool,
) -> Config {
    tokio::time::timeout(WAIT, async {
        loop {
            if done(&receiver.borrow_and_update()) {
                return receiver.borrow().clone();
            }
            receiver.changed().await.unwrap();
        }
    })
    .await
    .expect("the watched document did not arrive in time")
}

#[tokio::test]
async fn the_sdk_with_a_tenant_credential_bootstraps_and_follows_changes() {
    let acme = reader("acme", "billing");
    let (app, _ecs, _dir) = spawn_locked(locked_nats(&[&acme])).await;
    seed(&app).await;
    let settings = ClientSettings::new(app.nats.url(), ["checkout"])
        .unwrap()
        .with_nats_auth(NatsAuth::Nkey(acme.seed.clone()));

    // Following every tenant needs more than this credential grants.
    let everything = Client::connect(settings.clone()).await;
    assert!(
        matches!(everything, Err(ClientError::Unavailable { .. })),
        "a client following every tenant bootstrapped with acme's credential"
    );

    let client = Client::connect(
        settings
            .for_tenant("acme")
            .unwrap()
            .reporting_as("billing", "prod")
            .unwrap()
            .with_instance_id("billing-1")
            .unwrap()
            .with_report_interval(Duration::from_secs(1)),
    )
    .await
    .unwrap();
    assert_eq!(client.origin(), Origin::Live);
    let context = Context::from_pairs([("env", "prod"), ("tenant", "acme")]).unwrap();
    let server = app.resolved("checkout", "env=prod&tenant=acme").await;
    assert_eq!(
        client.resolve("checkout", &context).unwrap().values,
        server.body["values"]
    );
    assert_eq!(
        client.resolve("checkout", &context).unwrap().values,
        json!({"limit": 40, "mode": "fast"})
    );
    // Another tenant is not even known.
    let globex = Context::from_pairs([("env", "prod"), ("tenant", "globex")]).unwrap();
    assert!(matches!(
        client.resolve("checkout", &globex),
        Err(ClientError::TenantNotFound(_))
    ));

    let mut receiver = client.watch("checkout", &context).unwrap();
    let answer = app
        .put_layer("checkout", "tenant=acme", &json!({"values": {"limit": 41}}))
        .await;
    assert!(answer.status.is_success(), "{}", answer.body);
    let config = wait_for(&mut receiver, |c| c.values["limit"] == json!(41)).await;
    assert_eq!(config.position, answer.position());
    // A tenant-free change reaches it too.
    let answer = app
        .put_layer(
            "checkout",
            "edition=pro",
            &json!({"values": {"mode": "faster"}}),
        )
        .await;
    assert!(answer.status.is_success(), "{}", answer.body);
    wait_for(&mut receiver, |c| c.values["mode"] == json!("faster")).await;

    // Its drift reports reach the server through the readers' account; a
    // report for another service, on its subject or in the body, does not.
    let attacker = connect_as(&app.nats.url(), &acme).await;
    let forged = |service: &str, instance: &str| {
        serde_json::to_vec(&json!({"v": 1, "service": service, "env": "prod",
            "instance": instance, "sdk_version": "1", "interval_secs": 1, "followed": []}))
        .unwrap()
    };
    attacker
        .publish(
            "ecs.drift.prod.payments",
            forged("payments", "forged-1").into(),
        )
        .await
        .unwrap();
    attacker
        .publish(
            "ecs.drift.prod.billing",
            forged("payments", "forged-2").into(),
        )
        .await
        .unwrap();
    attacker.flush().await.unwrap();
    let mut instances = Value::Null;
    let reported = tokio::time::timeout(WAIT, async {
        loop {
            instances = app.get("/v1/drift").await.body["instances"].clone();
            let current = instances.as_array().unwrap().iter().any(|i| {
                i["instance"] == "billing-1"
                    && i["status"] == "current"
                    && i["followed"][0]["applied_position"] == answer.position()
            });
            if current {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(reported.is_ok(), "{instances:#}");
    let services: Vec<&Value> = instances
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["service"])
        .collect();
    assert_eq!(services, [&json!("billing")], "{instances:#}");
    client.shutdown().await;
}

/// Messages held and last sequence of a stream.
async fn stream_state(js: &jetstream::Context, stream: &str) -> Result<(u64, u64), String> {
    let mut stream = js.get_stream(stream).await.map_err(|e| e.to_string())?;
    let state = &stream.info().await.map_err(|e| e.to_string())?.state;
    Ok((state.messages, state.last_sequence))
}

/// The streams of the server's account, and the feed mirror in the readers'.
const SERVER_STREAMS: [&str; 4] = [
    "ECS_EVENTS",
    "KV_ecs-feed",
    "ECS_AUDIT",
    "KV_ecs-tenant-keys",
];

/// The JetStream API of the readers' account, as the server reaches it.
async fn readers_account(url: &str, ecs: &Credential) -> jetstream::Context {
    jetstream::with_prefix(connect_as(url, ecs).await, FEED_API_PREFIX)
}

/// Whether anything in the readers' account listens on the deliver subject
/// of the consumer `name` of the feed mirror; when something does, waits
/// until the consumer has delivered to it. An error when the consumer or the
/// mirror is gone.
async fn delivers(readers: &jetstream::Context, name: &str) -> Result<bool, String> {
    let stream = readers
        .get_stream("KV_ecs-feed")
        .await
        .map_err(|e| format!("the mirror: {e}"))?;
    let info = stream
        .consumer_info(name)
        .await
        .map_err(|e| format!("consumer {name}: {e}"))?;
    if !info.push_bound {
        return Ok(false);
    }
    tokio::time::timeout(WAIT, async {
        loop {
            let info = stream
                .consumer_info(name)
                .await
                .map_err(|e| format!("consumer {name}: {e}"))?;
            if info.delivered.consumer_sequence >= 1 {
                return Ok(true);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .map_err(|_| format!("consumer {name} delivered nothing"))?
}

#[tokio::test]
async fn what_a_readers_consumer_delivers_lands_where_nothing_records_it() {
    let acme = reader("acme", "billing");
    let globex = reader("globex", "billing");
    let (app, ecs, _dir) = spawn_locked(locked_nats(&[&acme, &globex])).await;
    seed(&app).await;
    let url = app.nats.url();
    let server = jetstream::new(connect_as(&url, &ecs).await);
    let readers = readers_account(&url, &ecs).await;
    // globex's service follows its tenant while acme's credential attacks.
    let globex_settings = ClientSettings::new(&url, ["checkout"])
        .unwrap()
        .with_nats_auth(NatsAuth::Nkey(globex.seed.clone()))
        .for_tenant("globex")
        .unwrap();
    let globex_client = Client::connect(globex_settings).await.unwrap();
    let globex_context = Context::from_pairs([("env", "prod"), ("tenant", "globex")]).unwrap();
    let globex_values = globex_client
        .resolve("checkout", &globex_context)
        .unwrap()
        .values;
    assert_eq!(globex_values["mode"], json!("globex-secret"));

    let attacker = connect_as(&url, &acme).await;
    let js = jetstream::new(attacker.clone());
    let mut acme_inbox = attacker
        .subscribe(format!("_INBOX.{}.own", acme.public_key))
        .await
        .unwrap();
    attacker.flush().await.unwrap();
    let mut before = Vec::new();
    for stream in SERVER_STREAMS {
        before.push((stream, stream_state(&server, stream).await.unwrap()));
    }
    let mirror_before = stream_state(&readers, "KV_ecs-feed").await.unwrap();
    assert!(mirror_before.0 > 0, "the mirror holds the feed");

    // Each consumer reads acme's own layers (allowed) and has them delivered
    // onto a subject acme may not publish to: NATS does not check the deliver
    // subject (nats-server issue 8274), so every one of them is created.
    let own = "$KV.ecs-feed.layer.checkout.acme.>";
    // Whether anything in the readers' account listens there (a push consumer
    // delivers only then): neither its JetStream API nor the imports of the
    // mirror's link count, the mirror captures no subject, so only a reader
    // listening below its own inbox does. globex's reader listens below its
    // inbox: acme can deliver there what acme may read (genuine feed messages),
    // onto subjects globex subscribed to. The SDK subscribes to unguessable
    // inbox subjects only and drops what its ordered consumer did not send.
    let globex_raw = connect_as(&url, &globex).await;
    let mut globex_inbox = globex_raw
        .subscribe(format!("_INBOX.{}.forged", globex.public_key))
        .await
        .unwrap();
    globex_raw.flush().await.unwrap();
    let targets = [
        ("ecs.events.acme.layer.forged".to_owned(), false),
        ("ecs.audit.forged".to_owned(), false),
        (
            "$KV.ecs-feed.layer.checkout.globex.prod._._".to_owned(),
            false,
        ),
        ("$KV.ecs-feed.tenant.globex".to_owned(), false),
        ("$KV.ecs-tenant-keys.acme".to_owned(), false),
        ("ecs.feed-mirror.forged".to_owned(), false),
        (format!("_INBOX.{}.forged", globex.public_key), true),
        (format!("_INBOX.{}.own", acme.public_key), true),
        ("$JS.API.STREAM.DELETE.KV_ecs-feed".to_owned(), false),
        ("$JS.API.STREAM.PURGE.KV_ecs-feed".to_owned(), false),
        ("$JS.API.STREAM.DELETE.ECS_EVENTS".to_owned(), false),
        (
            "$JS.ecs.API.CONSUMER.CREATE.KV_ecs-feed.forged.$KV.ecs-feed.layer".to_owned(),
            false,
        ),
        ("$JS.FC.KV_ecs-feed.forged".to_owned(), false),
    ];
    let mut r = Refusals::default();
    let mut created = Vec::new();
    for (index, (target, listened)) in targets.iter().enumerate() {
        let name = format!("deliver-{index}");
        let consumer = js
            .create_consumer_on_stream(
                push::Config {
                    name: Some(name.clone()),
                    deliver_subject: target.clone(),
                    filter_subject: own.to_owned(),
                    deliver_policy: DeliverPolicy::All,
                    ack_policy: jetstream::consumer::AckPolicy::None,
                    ..Default::default()
                },
                "KV_ecs-feed",
            )
            .await;
        match consumer {
            Ok(_) => created.push((target, *listened, name)),
            Err(error) => r.mismatches.push(format!(
                "a consumer delivering to {target} was refused ({error}): the test no longer \
                 exercises the hole, check whether NATS now checks deliver subjects"
            )),
        }
    }
    for (target, listened, name) in &created {
        match delivers(&readers, name).await {
            Ok(delivered) => r.check(
                &format!(
                    "something listens on {target} in the readers' account: {delivered}, \
                     expected {listened}"
                ),
                delivered == *listened,
            ),
            Err(error) => r
                .mismatches
                .push(format!("delivering to {target}: {error}")),
        }
    }

    r.check(
        "acme's delivery to its own inbox arrived (the control case)",
        tokio::time::timeout(WAIT, acme_inbox.next())
            .await
            .is_ok_and(|m| m.is_some()),
    );
    let spoofed = tokio::time::timeout(WAIT, globex_inbox.next()).await;
    let spoofed = spoofed.ok().flatten().map(|m| m.subject.to_string());
    r.check(
        &format!(
            "acme's delivery reached globex's listening inbox (the control case): {spoofed:?}"
        ),
        // A delivered message keeps the subject it has in the stream.
        spoofed.is_some_and(|s| s.starts_with("$KV.ecs-feed.layer.checkout.acme.")),
    );
    drop(globex_inbox);
    for (stream, was) in before {
        let now = stream_state(&server, stream).await;
        r.check(
            &format!("{stream} changed from {was:?} to {now:?} through deliveries"),
            now == Ok(was),
        );
    }
    let mirror_now = stream_state(&readers, "KV_ecs-feed").await;
    r.check(
        &format!("the feed mirror changed from {mirror_before:?} to {mirror_now:?}"),
        mirror_now == Ok(mirror_before),
    );
    // Only the mirror is in the readers' account: nothing captured a delivery.
    let mut names = readers.stream_names();
    let mut streams = Vec::new();
    while let Some(name) = names.next().await {
        streams.push(name.unwrap());
    }
    r.check(
        &format!("streams in the readers' account: {streams:?}"),
        streams == vec!["KV_ecs-feed".to_owned()],
    );
    r.check(
        "globex's service resolves the same values",
        globex_client
            .resolve("checkout", &globex_context)
            .is_ok_and(|c| c.values == globex_values),
    );
    r.assert_none();

    // The feed still flows to readers, through the mirror.
    let mut receiver = globex_client.watch("checkout", &globex_context).unwrap();
    let answer = app
        .put_layer(
            "checkout",
            "env=prod&tenant=globex",
            &json!({"values": {"mode": "globex-after"}}),
        )
        .await;
    assert!(answer.status.is_success(), "{}", answer.body);
    wait_for(&mut receiver, |c| c.values["mode"] == json!("globex-after")).await;
    globex_client.close();
}

#[tokio::test]
async fn an_erased_tenants_values_are_gone_from_the_readers_account() {
    let acme = reader("acme", "billing");
    let (app, ecs, _dir) = spawn_locked(locked_nats(&[&acme])).await;
    seed(&app).await;
    let url = app.nats.url();
    let server = jetstream::new(connect_as(&url, &ecs).await);
    let readers = readers_account(&url, &ecs).await;
    let attacker = connect_as(&url, &acme).await;
    let js = jetstream::new(attacker.clone());
    let own = [
        "$KV.ecs-feed.layer.checkout.acme.>",
        "$KV.ecs-feed.tenant.acme",
    ];

    // Before: acme's values are in the mirror, readable by acme's reader.
    let payloads = |filter: &'static str| {
        let (js, attacker) = (js.clone(), attacker.clone());
        async move {
            let consumer = js
                .create_consumer_on_stream(
                    push::OrderedConfig {
                        name: Some(format!(
                            "read-{}",
                            attacker.new_inbox().rsplit('.').next().unwrap()
                        )),
                        deliver_subject: attacker.new_inbox(),
                        filter_subject: filter.to_owned(),
                        deliver_policy: DeliverPolicy::All,
                        ..Default::default()
                    },
                    "KV_ecs-feed",
                )
                .await
                .unwrap();
            let pending = consumer.cached_info().num_pending;
            let mut messages = consumer.messages().await.unwrap();
            let mut out = Vec::new();
            for _ in 0..pending {
                let message = tokio::time::timeout(WAIT, messages.next())
                    .await
                    .unwrap()
                    .unwrap()
                    .unwrap();
                out.push(String::from_utf8_lossy(&message.payload).into_owned());
            }
            out
        }
    };
    // The mirror follows the feed asynchronously: wait (bounded) until it holds the seed.
    let mut layers = payloads(own[0]).await;
    for _ in 0..100 {
        if layers.iter().any(|p| p.contains("\"limit\":40")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        layers = payloads(own[0]).await;
    }
    assert!(
        layers.iter().any(|p| p.contains("\"limit\":40")),
        "acme's layer is not in the mirror: {layers:?}"
    );

    let erased = app.post("/v1/tenants/acme/erase", &json!({})).await;
    assert_eq!(erased.status.as_u16(), 200, "{}", erased.body);
    // The erasure completes in the feed bucket, then reaches the mirror.
    let bucket = server.get_key_value("ecs-feed").await.unwrap();
    tokio::time::timeout(WAIT, async {
        loop {
            let mut keys = bucket.keys().await.unwrap();
            let mut acme_keys = Vec::new();
            while let Some(key) = keys.next().await {
                let key = key.unwrap();
                if key == "tenant.acme" || key.starts_with("layer.checkout.acme.") {
                    acme_keys.push(key);
                }
            }
            let source = stream_state(&server, "KV_ecs-feed").await.unwrap();
            let mirror = stream_state(&readers, "KV_ecs-feed").await.unwrap();
            if acme_keys.is_empty() && source.1 == mirror.1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the erasure did not reach the mirror");

    // Every message the mirror holds, read through the server's import of
    // the readers' account: none carries an erased value.
    let mut mirror = readers.get_stream("KV_ecs-feed").await.unwrap();
    let state = mirror.info().await.unwrap().state.clone();
    let mut held = Vec::new();
    for sequence in state.first_sequence..=state.last_sequence {
        if let Ok(message) = mirror.get_raw_message(sequence).await {
            held.push((
                message.subject.to_string(),
                String::from_utf8_lossy(&message.payload).into_owned(),
            ));
        }
    }
    let leaks: Vec<&(String, String)> = held
        .iter()
        .filter(|(subject, payload)| {
            (subject.contains(".acme") && !payload.is_empty()) || payload.contains("\"limit\":40")
        })
        .collect();
    assert!(leaks.is_empty(), "erased values in the mirror: {leaks:?}");
    assert!(
        held.iter().any(|(subject, _)| subject.contains("globex")),
        "the mirror lost other tenants' values: {held:?}"
    );
    // acme's reader gets nothing but purge markers.
    for filter in own {
        let read = payloads(filter).await;
        assert!(
            read.iter().all(String::is_empty),
            "{filter} still reads {read:?}"
        );
    }
}

#[tokio::test]
async fn the_server_creates_the_feed_mirror_once_and_refuses_a_stream_in_its_place() {
    use ecs_projections::feed_mirror::{MirrorError, ensure_mirror};
    let nats = locked_nats(&[]);
    let url = nats.server.url();
    let client = connect_as(&url, &nats.ecs).await;
    // Created, then found as it is on every later start.
    ensure_mirror(&client, FEED_API_PREFIX, 1).await.unwrap();
    ensure_mirror(&client, FEED_API_PREFIX, 1).await.unwrap();
    let readers = jetstream::with_prefix(client.clone(), FEED_API_PREFIX);
    let mut mirror = readers.get_stream("KV_ecs-feed").await.unwrap();
    let config = mirror.info().await.unwrap().config.clone();
    assert!(config.subjects.is_empty(), "{config:?}");
    assert_eq!(
        config.mirror.map(|m| m.name),
        Some("KV_ecs-feed".to_owned())
    );

    // A stream of that name that captures subjects is not the mirror.
    readers.delete_stream("KV_ecs-feed").await.unwrap();
    readers
        .create_stream(jetstream::stream::Config {
            name: "KV_ecs-feed".to_owned(),
            subjects: vec!["$KV.ecs-feed.>".to_owned()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(matches!(
        ensure_mirror(&client, FEED_API_PREFIX, 1).await,
        Err(MirrorError::NotAMirror { .. })
    ));
    // A prefix nothing imports names the setting.
    let unreachable = ensure_mirror(&client, "$JS.nowhere.API", 1).await;
    assert!(
        matches!(&unreachable, Err(MirrorError::Unreachable { prefix, .. }) if prefix == "$JS.nowhere.API"),
        "{:?}",
        unreachable.map_err(|e| e.to_string())
    );
}

/// A certificate authority made for one test, and the files it signs.
struct TestCa {
    key: rcgen::KeyPair,
    cert: rcgen::Certificate,
    dir: tempfile::TempDir,
}

impl TestCa {
    fn new() -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "ECS test CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), cert.pem()).unwrap();
        TestCa { key, cert, dir }
    }

    /// The CA's certificate (PEM file).
    fn ca_file(&self) -> std::path::PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Issues a certificate for these names (DNS names or IP addresses);
    /// returns its certificate and key files.
    fn issue(&self, name: &str, sans: &[&str]) -> (std::path::PathBuf, std::path::PathBuf) {
        let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
        let mut params = rcgen::CertificateParams::new(sans).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let (cert_file, key_file) = (
            self.dir.path().join(format!("{name}.pem")),
            self.dir.path().join(format!("{name}-key.pem")),
        );
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        (cert_file, key_file)
    }
}

fn path(p: &std::path::Path) -> String {
    p.display().to_string()
}

#[tokio::test]
async fn nats_over_tls_is_verified_against_the_ca_both_ways() {
    let ca = TestCa::new();
    let (server_cert, server_key) = ca.issue("nats", &["127.0.0.1", "localhost"]);
    let (ecs_cert, ecs_key) = ca.issue("ecs-server", &["ecs-server"]);
    let (service_cert, service_key) = ca.issue("service", &["service"]);
    // NATS requires TLS and a client certificate signed by the CA.
    let config = ca.dir.path().join("nats.conf");
    std::fs::write(
        &config,
        format!(
            "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n  ca_file: \"{}\"\n  verify: true\n}}\n",
            path(&server_cert),
            path(&server_key),
            path(&ca.ca_file())
        ),
    )
    .unwrap();
    let nats = NatsServer::start_with_config(&config);
    let app = TestApp::spawn_on(nats, |settings| {
        settings.nats_ca = Some(path(&ca.ca_file()));
        settings.nats_cert = Some(path(&ecs_cert));
        settings.nats_key = Some(path(&ecs_key));
    })
    .await;
    seed(&app).await;

    let settings = ClientSettings::new(app.nats.url(), ["checkout"]).unwrap();
    let verified = settings
        .clone()
        .with_nats_ca(ca.ca_file())
        .with_nats_client_cert(&service_cert, &service_key);
    let client = Client::connect(verified.clone()).await.unwrap();
    assert_eq!(client.origin(), Origin::Live);
    let context = Context::from_pairs([("tenant", "acme")]).unwrap();
    let mut receiver = client.watch("checkout", &context).unwrap();
    let answer = app
        .put_layer("checkout", "tenant=acme", &json!({"values": {"limit": 42}}))
        .await;
    assert!(answer.status.is_success(), "{}", answer.body);
    wait_for(&mut receiver, |c| c.values["limit"] == json!(42)).await;
    client.close();

    // Every other way in is refused.
    let other_ca = TestCa::new();
    let (other_cert, other_key) = other_ca.issue("intruder", &["intruder"]);
    let mut refusals = Refusals::default();
    for (what, settings) in [
        ("plain text", settings.clone()),
        (
            "a server certificate checked against the system's roots",
            settings
                .clone()
                .with_nats_client_cert(&service_cert, &service_key),
        ),
        (
            "a server certificate checked against another CA",
            settings
                .clone()
                .with_nats_ca(other_ca.ca_file())
                .with_nats_client_cert(&service_cert, &service_key),
        ),
        (
            "no client certificate",
            settings.clone().with_nats_ca(ca.ca_file()),
        ),
        (
            "a client certificate of another CA",
            settings
                .clone()
                .with_nats_ca(ca.ca_file())
                .with_nats_client_cert(&other_cert, &other_key),
        ),
    ] {
        refusals.expect_refused(
            what,
            Client::connect(settings).await.map(|c| {
                c.close();
                "connected"
            }),
        );
    }
    refusals.assert_none();
}

/// Whether a connection to `url` works and is encrypted.
async fn encrypted_connection(url: &str) -> Result<bool, String> {
    use sqlx::Connection;
    let mut connection = sqlx::PgConnection::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&mut connection)
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn postgresql_over_tls_is_verified_against_the_ca() {
    let ca = TestCa::new();
    let (cert, key) = ca.issue("postgres", &["127.0.0.1", "localhost"]);
    let admin = ecs_tests::servers::start_private_cluster_with(
        &[
            ("server.crt", &std::fs::read(&cert).unwrap()),
            ("server.key", &std::fs::read(&key).unwrap()),
        ],
        "-c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key",
    )
    .unwrap();
    let verified = format!(
        "{admin}?sslmode=verify-full&sslrootcert={}",
        path(&ca.ca_file())
    );
    assert_eq!(encrypted_connection(&verified).await, Ok(true));
    assert_eq!(
        encrypted_connection(&format!("{admin}?sslmode=require")).await,
        Ok(true)
    );
    let other_ca = TestCa::new();
    let mut refusals = Refusals::default();
    refusals.expect_refused(
        "verify-full against another CA",
        encrypted_connection(&format!(
            "{admin}?sslmode=verify-full&sslrootcert={}",
            path(&other_ca.ca_file())
        ))
        .await,
    );
    refusals.assert_none();

    // ECS itself runs on it, verified.
    let app = TestApp::spawn_on(NatsServer::start(), |settings| {
        settings.database_url = verified.clone().into();
    })
    .await;
    seed(&app).await;
    let answer = app.resolved("checkout", "tenant=acme").await;
    assert_eq!(answer.body["values"]["limit"], json!(40), "{}", answer.body);
}

#[tokio::test]
async fn the_api_over_https_serves_the_sdks_http_mode() {
    let ca = TestCa::new();
    let (cert, key) = ca.issue("ecs", &["127.0.0.1", "localhost"]);
    let ca_pem = std::fs::read(ca.ca_file()).unwrap();
    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca_pem).unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let app = TestApp::spawn_with_client(NatsServer::start(), trusting, |settings| {
        settings.tls_cert = Some(path(&cert));
        settings.tls_key = Some(path(&key));
    })
    .await;
    assert!(app.address.starts_with("https://"), "{}", app.address);
    seed(&app).await;

    let mut refusals = Refusals::default();
    refusals.expect_refused(
        "plain HTTP on the HTTPS port",
        reqwest::get(app.address.replace("https://", "http://") + "/healthz")
            .await
            .and_then(|r| r.error_for_status()),
    );
    refusals.expect_refused(
        "HTTPS without trusting the CA",
        reqwest::get(app.address.clone() + "/healthz").await,
    );
    let untrusted =
        ClientSettings::over_http(&app.address, ecs_tests::app::ADMIN_TOKEN, ["checkout"]).unwrap();
    refusals.expect_refused(
        "the SDK without the CA",
        Client::connect(untrusted.clone()).await.map(|c| {
            c.close();
            "connected"
        }),
    );
    refusals.assert_none();

    let client = Client::connect(untrusted.with_http_ca(ca.ca_file()))
        .await
        .unwrap();
    assert_eq!(client.origin(), Origin::Live);
    let context = Context::from_pairs([("env", "prod"), ("tenant", "acme")]).unwrap();
    let server = app.resolved("checkout", "env=prod&tenant=acme").await;
    assert_eq!(
        client.resolve("checkout", &context).unwrap().values,
        server.body["values"]
    );
    let mut receiver = client.watch("checkout", &context).unwrap();
    let answer = app
        .put_layer("checkout", "tenant=acme", &json!({"values": {"limit": 43}}))
        .await;
    assert!(answer.status.is_success(), "{}", answer.body);
    wait_for(&mut receiver, |c| c.values["limit"] == json!(43)).await;
    client.close();
}
