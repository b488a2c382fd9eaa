//! Transport security against real servers: NATS locked down with the shipped
//! permission model (`deploy/nats-auth.conf`, credentials from
//! `ecs nats-credential`), and TLS verified against a CA made at test time.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::push};
use ecs_api::nats_credential::{Credential, Holder, render_auth_config};
use ecs_client::{Client, ClientError, ClientSettings, Config, Context, NatsAuth, Origin};
use ecs_domain::TenantId;
use ecs_tests::app::TestApp;
use ecs_tests::servers::NatsServer;
use futures::StreamExt;
use serde_json::json;
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
        settings.nats_nkey = Some(seed.into())
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

    let client = Client::connect(settings.for_tenant("acme").unwrap())
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
    client.close();
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
