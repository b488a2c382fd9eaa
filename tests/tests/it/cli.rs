//! The `ecs` command line against a real server: every subcommand, its exit
//! codes and `-o json`; configuration as code round trips; imports.

#![allow(clippy::unwrap_used)]

use ecs_cli::Outcome;
use ecs_tests::app::{ADMIN_TOKEN, TestApp, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Runs `ecs ARGS...` in-process against `app` with the admin token.
async fn ecs(app: &TestApp, args: &[&str]) -> Outcome {
    ecs_as(app, ADMIN_TOKEN, args).await
}

async fn ecs_as(app: &TestApp, token: &str, args: &[&str]) -> Outcome {
    let mut line = vec!["ecs", "--url", app.address.as_str(), "--token", token];
    line.extend_from_slice(args);
    ecs_cli::run_from(line).await
}

/// Runs and expects `code`, showing the output otherwise.
async fn expect(app: &TestApp, code: i32, args: &[&str]) -> Outcome {
    let outcome = ecs(app, args).await;
    assert_eq!(
        outcome.code, code,
        "ecs {args:?}\nstdout: {}\nstderr: {}",
        outcome.stdout, outcome.stderr
    );
    outcome
}

fn json_of(outcome: &Outcome) -> Value {
    serde_json::from_str(&outcome.stdout).unwrap_or_else(|e| panic!("{e}: {}", outcome.stdout))
}

fn checkout_schema() -> Value {
    json!({"type": "object", "properties": {
        "max_items": {"type": "integer", "minimum": 1},
        "currency": {"type": "string", "default": "EUR"},
        "features": {"type": "object", "properties": {"express": {"type": "boolean"}}},
        "payment": {"type": "object", "properties": {"provider": {"type": "string"}}}}})
}

async fn seed(app: &TestApp) {
    let ns = json!({"description": "Checkout", "schema": checkout_schema()});
    assert_eq!(
        app.put_namespace("checkout", &ns).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put_tenant("acme", "enterprise").await.status,
        StatusCode::CREATED
    );
}

async fn applied_position(app: &TestApp) -> u64 {
    app.get("/v1/admin/projections").await.body["applied"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn reading_and_writing_layers() {
    let app = spawn_app().await;
    seed(&app).await;

    let set = expect(
        &app,
        0,
        &[
            "set",
            "checkout",
            "max_items=250",
            "features.express=true",
            "currency=USD",
            "--scope",
            "env=prod",
            "-m",
            "bigger carts",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(json_of(&set)["revision"], 1);
    let layer = app.get_layer("checkout", "env=prod").await.body;
    assert_eq!(
        layer["values"],
        json!({"max_items": 250, "features": {"express": true}, "currency": "USD"})
    );
    assert_eq!(layer["message"], "bigger carts");

    let get = expect(
        &app,
        0,
        &["get", "checkout", "--scope", "env=prod", "-o", "json"],
    )
    .await;
    assert_eq!(json_of(&get)["values"], layer["values"]);
    let human = expect(&app, 0, &["get", "checkout", "--scope", "env=prod"]).await;
    assert!(human.stdout.contains("max_items: 250"), "{}", human.stdout);

    expect(
        &app,
        0,
        &[
            "unset",
            "checkout",
            "features.express",
            "--scope",
            "env=prod",
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let patch = dir.path().join("patch.yaml");
    std::fs::write(&patch, "payment:\n  provider: adyen\ncurrency: null\n").unwrap();
    expect(
        &app,
        0,
        &[
            "patch",
            "checkout",
            "-f",
            patch.to_str().unwrap(),
            "--scope",
            "env=prod",
        ],
    )
    .await;
    let layer = app.get_layer("checkout", "env=prod").await.body;
    assert_eq!(layer["revision"], 3);
    assert_eq!(
        layer["values"],
        json!({"max_items": 250, "features": {}, "payment": {"provider": "adyen"}})
    );

    let resolved = expect(
        &app,
        0,
        &[
            "resolve",
            "checkout",
            "--context",
            "env=prod,tenant=acme",
            "--explain",
            "-o",
            "json",
        ],
    )
    .await;
    let resolved = json_of(&resolved);
    assert_eq!(resolved["values"]["currency"], "EUR");
    assert_eq!(resolved["sources"]["/currency"]["origin"], "schema-default");
    assert_eq!(
        resolved["sources"]["/max_items"]["scope"],
        json!({"env": "prod"})
    );
    let explained = expect(
        &app,
        0,
        &["resolve", "checkout", "--context", "env=prod", "--explain"],
    )
    .await;
    assert!(
        explained.stdout.contains("schema-default"),
        "{}",
        explained.stdout
    );

    let first_position = json_of(&set)["position"].as_u64().unwrap().to_string();
    let past = expect(
        &app,
        0,
        &[
            "resolve",
            "checkout",
            "--context",
            "env=prod",
            "--position",
            &first_position,
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(json_of(&past)["values"]["currency"], "USD");

    let history = expect(
        &app,
        0,
        &["history", "checkout", "--scope", "env=prod", "-o", "json"],
    )
    .await;
    let revisions = json_of(&history)["revisions"].as_array().unwrap().clone();
    assert_eq!(revisions.len(), 3);
    let first = revisions.iter().find(|r| r["revision"] == 1).unwrap();
    let first_at = first["at"].as_str().unwrap();
    let then = expect(
        &app,
        0,
        &[
            "resolve",
            "checkout",
            "--context",
            "env=prod",
            "--at",
            first_at,
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(json_of(&then)["values"]["features"]["express"], true);
    let layer_then = expect(
        &app,
        0,
        &[
            "get",
            "checkout",
            "--scope",
            "env=prod",
            "--position",
            &first_position,
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(json_of(&layer_then)["revision"], 1);
    expect(&app, 64, &["resolve", "checkout", "--at", "yesterday"]).await;
    let table = expect(&app, 0, &["history", "checkout", "--scope", "env=prod"]).await;
    assert!(table.stdout.contains("bigger carts"), "{}", table.stdout);

    expect(
        &app,
        0,
        &[
            "rollback",
            "checkout",
            "--scope",
            "env=prod",
            "--revision",
            "1",
            "-m",
            "back",
        ],
    )
    .await;
    let layer = app.get_layer("checkout", "env=prod").await.body;
    assert_eq!(
        (
            layer["revision"].clone(),
            layer["values"]["currency"].clone()
        ),
        (json!(4), json!("USD"))
    );

    let namespaces = expect(&app, 0, &["namespaces", "-o", "json"]).await;
    assert_eq!(json_of(&namespaces)["namespaces"][0]["name"], "checkout");
    let tenants = expect(&app, 0, &["tenants", "-o", "yaml"]).await;
    assert!(
        tenants.stdout.contains("id: acme") && tenants.stdout.contains("edition: enterprise"),
        "{}",
        tenants.stdout
    );
    let table = expect(&app, 0, &["tenants"]).await;
    assert!(table.stdout.contains("acme"), "{}", table.stdout);
}

#[tokio::test]
async fn each_failure_has_its_exit_code() {
    let app = spawn_app().await;
    seed(&app).await;
    expect(
        &app,
        0,
        &["set", "checkout", "max_items=5", "--scope", "env=prod"],
    )
    .await;

    // Not found: a namespace, a layer.
    expect(&app, 3, &["get", "nowhere", "--scope", "env=prod"]).await;
    let missing = expect(&app, 3, &["get", "checkout", "--scope", "env=dev"]).await;
    assert!(
        missing.stderr.contains("layer-not-found"),
        "{}",
        missing.stderr
    );
    // Conflict: a stale If-Match.
    let stale = expect(
        &app,
        4,
        &[
            "set",
            "checkout",
            "max_items=6",
            "--scope",
            "env=prod",
            "--if-match",
            "7",
        ],
    )
    .await;
    assert!(
        stale.stderr.contains("stale-revision") && stale.stderr.contains("current revision: 1"),
        "{}",
        stale.stderr
    );
    // Validation: every violated pointer is printed.
    let invalid = expect(
        &app,
        5,
        &[
            "set",
            "checkout",
            "max_items=0",
            "features.express=\"yes\"",
            "--scope",
            "env=prod",
        ],
    )
    .await;
    assert!(
        invalid.stderr.contains("/max_items") && invalid.stderr.contains("/features/express"),
        "{}",
        invalid.stderr
    );
    // A lock names the pointer and the scope locking it.
    app.put_layer(
        "checkout",
        "",
        &json!({"values": {"payment": {"provider": "stripe"}}, "lock": ["/payment/provider"]}),
    )
    .await;
    let locked = expect(
        &app,
        5,
        &[
            "set",
            "checkout",
            "payment.provider=adyen",
            "--scope",
            "tenant=acme",
        ],
    )
    .await;
    assert!(
        locked
            .stderr
            .contains("/payment/provider: locked at /payment/provider by global"),
        "{}",
        locked.stderr
    );
    // Unauthorized.
    let denied = ecs_as(&app, "wrong-token", &["namespaces"]).await;
    assert_eq!(denied.code, 6, "{}", denied.stderr);
    // Usage: a bad scope, a missing argument, an identifier the server refuses.
    expect(&app, 64, &["get", "checkout", "--scope", "region=eu"]).await;
    expect(&app, 64, &["set", "checkout"]).await;
    let bad = expect(&app, 64, &["get", "checkout", "--scope", "env=no!pe"]).await;
    assert!(bad.stderr.contains("field: env"), "{}", bad.stderr);
    // Unavailable: nothing listens there.
    let closed = ecs_cli::run_from([
        "ecs",
        "--url",
        "http://127.0.0.1:9",
        "--token",
        "x",
        "namespaces",
    ])
    .await;
    assert_eq!(closed.code, 7, "{}", closed.stderr);
    // Every subcommand's help exits 0 and shows examples.
    for subcommand in [
        "get",
        "set",
        "patch",
        "unset",
        "resolve",
        "history",
        "rollback",
        "namespaces",
        "tenants",
        "diff",
        "promote",
        "export",
        "apply",
        "import",
        "tokens",
        "audit",
        "change-requests",
        "admin",
        "completions",
    ] {
        let help = expect(&app, 0, &[subcommand, "--help"]).await;
        assert!(
            help.stdout.contains("Examples:"),
            "{subcommand}: {}",
            help.stdout
        );
    }
    // Help exits 0 and shows examples.
    let help = expect(&app, 0, &["set", "--help"]).await;
    assert!(help.stdout.contains("Examples:"), "{}", help.stdout);
}

/// A server with a namespace of every kind of content, written through the API.
async fn populate(app: &TestApp) {
    seed(app).await;
    assert_eq!(
        app.put_tenant("globex", "standard").await.status,
        StatusCode::CREATED
    );
    let approval = json!({"description": "Billing", "approval": {"scopes": [{"env": "prod"}]}});
    assert_eq!(
        app.put_namespace("billing", &approval).await.status,
        StatusCode::CREATED
    );
    for (query, body) in [
        (
            "",
            json!({"values": {"max_items": 50, "features": {"express": false}}}),
        ),
        (
            "env=prod",
            json!({"values": {"max_items": 100, "payment": {"provider": "stripe"}}, "lock": ["/payment/provider"]}),
        ),
        (
            "env=prod&tenant=acme",
            json!({"values": {"max_items": 250, "currency": "CHF"}}),
        ),
        (
            "tenant=globex",
            json!({"values": {"features": {"express": true}}}),
        ),
    ] {
        let answer = app.put_layer("checkout", query, &body).await;
        assert!(answer.status.is_success(), "{}", answer.body);
    }
    // A cleared layer is not exported.
    app.put_layer("checkout", "env=dev", &json!({"values": {"max_items": 1}}))
        .await;
    app.delete("/v1/namespaces/checkout/layer?env=dev").await;
    app.put_layer("billing", "env=dev", &json!({"values": {"retries": 3}}))
        .await;
}

fn read_tree(dir: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    for sub in ["", "namespaces"] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                files.insert(
                    path.strip_prefix(dir).unwrap().display().to_string(),
                    std::fs::read(&path).unwrap(),
                );
            }
        }
    }
    files
}

#[tokio::test]
async fn export_then_apply_on_an_empty_server_round_trips_byte_identically() {
    let source = spawn_app().await;
    populate(&source).await;
    let first = tempfile::tempdir().unwrap();
    let dir = first.path().to_str().unwrap();
    expect(&source, 0, &["export", dir]).await;
    let exported = read_tree(first.path());
    assert_eq!(
        exported.keys().cloned().collect::<Vec<_>>(),
        [
            "namespaces/billing.yaml",
            "namespaces/checkout.yaml",
            "tenants.yaml"
        ]
    );
    let checkout = String::from_utf8(exported["namespaces/checkout.yaml"].clone()).unwrap();
    assert!(
        checkout.contains("env=prod,tenant=acme:") && checkout.contains("- /payment/provider"),
        "{checkout}"
    );
    assert!(
        !checkout.contains("env=dev"),
        "a cleared layer is not exported: {checkout}"
    );
    // The source already matches its own export.
    expect(&source, 0, &["apply", dir]).await;

    let target = spawn_app().await;
    let plan = expect(&target, 2, &["apply", dir]).await;
    assert!(
        plan.stdout.contains("namespace checkout: create"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("+ /max_items = 250"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("+ lock /payment/provider"),
        "{}",
        plan.stdout
    );
    let json_plan = expect(&target, 2, &["apply", dir, "-o", "json"]).await;
    assert_eq!(json_of(&json_plan)["steps"].as_array().unwrap().len(), 9);

    let applied = expect(&target, 0, &["apply", dir, "--yes", "-m", "restore"]).await;
    assert!(
        applied.stdout.contains("Applied 9 change(s)."),
        "{}",
        applied.stdout
    );

    let second = tempfile::tempdir().unwrap();
    expect(&target, 0, &["export", second.path().to_str().unwrap()]).await;
    assert_eq!(
        read_tree(second.path()),
        exported,
        "export → apply → export is byte-identical"
    );

    // A second apply plans nothing and writes nothing.
    let before = applied_position(&target).await;
    let again = expect(&target, 0, &["apply", dir, "--yes"]).await;
    assert!(again.stdout.contains("No changes"), "{}", again.stdout);
    assert_eq!(applied_position(&target).await, before);

    // An edited file plans exactly its change; a removed layer is cleared.
    let edited = checkout
        .replace("max_items: 250", "max_items: 300")
        .replace(
            "  tenant=globex:\n    values:\n      features:\n        express: true\n",
            "",
        );
    assert_ne!(edited, checkout);
    std::fs::write(first.path().join("namespaces/checkout.yaml"), &edited).unwrap();
    let plan = expect(&target, 2, &["apply", dir]).await;
    assert!(
        plan.stdout
            .contains("layer checkout env=prod,tenant=acme: change"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("~ /max_items: 250 -> 300"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("layer checkout tenant=globex: clear"),
        "{}",
        plan.stdout
    );
    expect(&target, 0, &["apply", dir, "--yes"]).await;
    assert_eq!(
        target.resolved("checkout", "tenant=globex").await.body["values"]["features"]["express"],
        false
    );
    expect(&target, 0, &["apply", dir]).await;
}

#[tokio::test]
async fn a_concurrent_change_stops_apply() {
    let app = spawn_app().await;
    seed(&app).await;
    app.put_layer(
        "checkout",
        "env=prod",
        &json!({"values": {"max_items": 10}}),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    expect(&app, 0, &["export", dir.path().to_str().unwrap()]).await;
    let file = dir.path().join("namespaces/checkout.yaml");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("max_items: 10", "max_items: 20");
    std::fs::write(&file, text).unwrap();

    let api = ecs_cli::Api::new(&app.address, Some(ADMIN_TOKEN.to_owned())).unwrap();
    let plan = ecs_cli::code::plan(&api, dir.path()).await.unwrap();
    assert_eq!(plan.steps.len(), 1);
    // Someone writes the layer between the plan and its execution.
    app.put_layer(
        "checkout",
        "env=prod",
        &json!({"values": {"max_items": 15}}),
    )
    .await;
    let mut out = ecs_cli::output::Printer::default();
    let error = plan.execute(&api, "apply", &mut out).await.unwrap_err();
    assert_eq!(error.exit(), ecs_cli::Exit::Conflict);
    assert!(
        error
            .to_string()
            .contains("changed on the server since the plan was made"),
        "{error}"
    );
    assert_eq!(
        app.get_layer("checkout", "env=prod").await.body["values"]["max_items"],
        15
    );
}

const APPSETTINGS: &str = r#"{
  "Logging": { "LogLevel": { "Default": "Information", "Microsoft.AspNetCore": "Warning" } },
  "AllowedHosts": "*",
  "ConnectionStrings": { "Orders": "Server=db;Database=orders" },
  "Checkout": {
    "MaxItems": 250,
    "Currency": "CHF",
    "Features": { "Express": true },
    "Retry": { "Count": 3, "BackoffSeconds": 1.5 },
    "Regions": ["eu-west", "eu-central"]
  }
}"#;

#[tokio::test]
async fn importing_appsettings_json_and_a_dotenv_file() {
    let app = spawn_app().await;
    let schema = json!({"type": "object", "properties": {
        "checkout": {"type": "object", "properties": {
            "max_items": {"type": "integer"}, "currency": {"type": "string"},
            "features": {"type": "object", "properties": {"express": {"type": "boolean"}}},
            "zip_prefix": {"type": "string"}}}}});
    assert_eq!(
        app.put_namespace("shop", &json!({"schema": schema}))
            .await
            .status,
        StatusCode::CREATED
    );
    let dir = tempfile::tempdir().unwrap();
    let appsettings = dir.path().join("appsettings.json");
    std::fs::write(&appsettings, APPSETTINGS).unwrap();
    let path = appsettings.to_str().unwrap();

    let dry = expect(
        &app,
        0,
        &["import", "shop", path, "--dry-run", "-o", "json"],
    )
    .await;
    let expected = json!({
        "Logging": {"LogLevel": {"Default": "Information", "Microsoft.AspNetCore": "Warning"}},
        "AllowedHosts": "*",
        "ConnectionStrings": {"Orders": "Server=db;Database=orders"},
        "checkout": {"max_items": 250, "currency": "CHF", "features": {"express": true},
                     "Retry": {"Count": 3, "BackoffSeconds": 1.5}, "Regions": ["eu-west", "eu-central"]}});
    assert_eq!(json_of(&dry), expected);
    assert_eq!(
        app.get_layer("shop", "").await.status,
        StatusCode::NOT_FOUND,
        "a dry run writes nothing"
    );

    expect(&app, 0, &["import", "shop", path]).await;
    assert_eq!(app.resolved("shop", "").await.body["values"], expected);

    let env = dir.path().join(".env");
    std::fs::write(&env, "# dev overrides\nCHECKOUT__MAX_ITEMS=10\nCHECKOUT__ZIP_PREFIX=0123\nexport CHECKOUT__FEATURES__EXPRESS=false\nCHECKOUT__REGIONS__0=local\nDEBUG=true\nGREETING=\"hello world\"\n").unwrap();
    expect(
        &app,
        0,
        &[
            "import",
            "shop",
            env.to_str().unwrap(),
            "--scope",
            "env=dev",
            "-m",
            "from .env",
        ],
    )
    .await;
    let layer = app.get_layer("shop", "env=dev").await.body;
    assert_eq!(layer["message"], "from .env");
    assert_eq!(
        layer["values"],
        json!({"checkout": {"max_items": 10, "zip_prefix": "0123", "features": {"express": false}, "REGIONS": ["local"]},
               "DEBUG": true, "GREETING": "hello world"})
    );
    let resolved = app.resolved("shop", "env=dev").await.body["values"].clone();
    assert_eq!(resolved["checkout"]["max_items"], 10);
    assert_eq!(resolved["checkout"]["currency"], "CHF");

    let props = dir.path().join("app.properties");
    std::fs::write(
        &props,
        "checkout.currency = USD\n! comment\nCheckout.MaxItems: 7\n",
    )
    .unwrap();
    let dry = expect(
        &app,
        0,
        &[
            "import",
            "shop",
            props.to_str().unwrap(),
            "--dry-run",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(
        json_of(&dry),
        json!({"checkout": {"currency": "USD", "max_items": 7}})
    );
    let yaml = dir.path().join("values.yml");
    std::fs::write(
        &yaml,
        "Checkout:\n  MaxItems: 12\n  Features: {Express: true}\n",
    )
    .unwrap();
    let dry = expect(
        &app,
        0,
        &[
            "import",
            "shop",
            yaml.to_str().unwrap(),
            "--dry-run",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(
        json_of(&dry),
        json!({"checkout": {"max_items": 12, "features": {"express": true}}})
    );
    let unknown = dir.path().join("settings.ini");
    std::fs::write(&unknown, "a=1").unwrap();
    expect(&app, 64, &["import", "shop", unknown.to_str().unwrap()]).await;
}

#[tokio::test]
async fn diff_and_promote() {
    let app = spawn_app().await;
    seed(&app).await;
    let staging = app
        .put_layer(
            "checkout",
            "env=staging",
            &json!({"values": {"max_items": 300, "features": {"express": true}}}),
        )
        .await;
    app.put_layer(
        "checkout",
        "env=prod",
        &json!({"values": {"max_items": 100, "currency": "USD"}}),
    )
    .await;

    let diff = expect(
        &app,
        2,
        &[
            "diff",
            "checkout",
            "--from",
            "env=staging",
            "--to",
            "env=prod",
        ],
    )
    .await;
    assert!(
        diff.stdout.contains("~ /max_items: 300 -> 100"),
        "{}",
        diff.stdout
    );
    assert!(
        diff.stdout.contains("- /features/express (was true)"),
        "{}",
        diff.stdout
    );
    assert!(
        diff.stdout.contains("+ /currency = \"USD\""),
        "{}",
        diff.stdout
    );
    let same = expect(
        &app,
        0,
        &[
            "diff", "checkout", "--from", "env=prod", "--to", "env=prod", "-o", "json",
        ],
    )
    .await;
    assert_eq!(json_of(&same)["changes"], json!([]));

    let promote = expect(
        &app,
        2,
        &[
            "promote",
            "checkout",
            "--from",
            "env=staging",
            "--to",
            "env=prod",
        ],
    )
    .await;
    assert!(
        promote.stdout.contains("~ /max_items: 100 -> 300"),
        "{}",
        promote.stdout
    );
    assert_eq!(
        app.get_layer("checkout", "env=prod").await.body["revision"],
        1,
        "nothing without --yes"
    );
    expect(
        &app,
        0,
        &[
            "promote",
            "checkout",
            "--from",
            "env=staging",
            "--to",
            "env=prod",
            "--yes",
        ],
    )
    .await;
    let prod = app.get_layer("checkout", "env=prod").await.body;
    assert_eq!(prod["revision"], 2, "one change");
    assert_eq!(
        prod["values"],
        json!({"max_items": 300, "currency": "USD", "features": {"express": true}})
    );
    assert_eq!(prod["message"], "promote from env=staging");
    expect(
        &app,
        0,
        &[
            "promote",
            "checkout",
            "--from",
            "env=staging",
            "--to",
            "env=prod",
        ],
    )
    .await;

    // Two revisions, two points in time, two resolved contexts.
    let revisions = expect(
        &app,
        2,
        &[
            "diff",
            "checkout",
            "--scope",
            "env=prod",
            "--from-revision",
            "1",
            "--to-revision",
            "2",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(json_of(&revisions)["changes"].as_array().unwrap().len(), 2);
    let position = staging.position().to_string();
    let times = expect(
        &app,
        2,
        &[
            "diff",
            "checkout",
            "--scope",
            "env=prod",
            "--from-position",
            &position,
        ],
    )
    .await;
    assert!(
        times.stdout.contains("+ /max_items = 300"),
        "{}",
        times.stdout
    );
    let resolved = expect(
        &app,
        2,
        &[
            "diff",
            "checkout",
            "--resolved",
            "--from",
            "env=staging",
            "--to",
            "env=prod",
        ],
    )
    .await;
    assert!(
        resolved.stdout.contains("+ /currency")
            || resolved.stdout.contains("~ /currency: \"EUR\" -> \"USD\""),
        "{}",
        resolved.stdout
    );
    expect(
        &app,
        3,
        &[
            "diff",
            "checkout",
            "--scope",
            "env=prod",
            "--from-revision",
            "9",
            "--to-revision",
            "2",
        ],
    )
    .await;
}

#[tokio::test]
async fn tokens_audit_change_requests_admin_and_completions() {
    let app = spawn_app().await;
    seed(&app).await;
    let issued = expect(
        &app,
        0,
        &[
            "tokens",
            "issue",
            "ci",
            "--role",
            "editor",
            "--namespace",
            "checkout",
            "-o",
            "json",
        ],
    )
    .await;
    let issued = json_of(&issued);
    let (id, secret) = (
        issued["id"].as_str().unwrap().to_owned(),
        issued["token"].as_str().unwrap().to_owned(),
    );
    let list = expect(&app, 0, &["tokens", "-o", "json"]).await;
    assert!(
        json_of(&list)["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == id.as_str())
    );
    expect(
        &app,
        64,
        &[
            "tokens", "issue", "x", "--role", "editor", "--tenant", "acme", "--env", "prod",
        ],
    )
    .await;

    // An approval policy: the editor's write opens a change request; the admin approves it.
    let policy = json!({"schema": checkout_schema(), "approval": {"scopes": [{"env": "prod"}]}});
    assert!(
        app.put_namespace("checkout", &policy)
            .await
            .status
            .is_success()
    );
    let opened = ecs_as(
        &app,
        &secret,
        &[
            "set",
            "checkout",
            "max_items=9",
            "--scope",
            "env=prod",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(opened.code, 0, "{}", opened.stderr);
    let request = json_of(&opened)["change_request"]
        .as_str()
        .unwrap()
        .to_owned();
    let listed = expect(
        &app,
        0,
        &["change-requests", "list", "--status", "open", "-o", "json"],
    )
    .await;
    assert_eq!(
        json_of(&listed)["change_requests"][0]["id"],
        request.as_str()
    );
    let shown = expect(&app, 0, &["change-requests", "show", &request]).await;
    assert!(shown.stdout.contains("/max_items"), "{}", shown.stdout);
    expect(
        &app,
        0,
        &["change-requests", "approve", &request, "-m", "fine"],
    )
    .await;
    assert_eq!(
        app.get_layer("checkout", "env=prod").await.body["values"]["max_items"],
        9
    );
    expect(&app, 3, &["change-requests", "show", "ffffffffffffffff"]).await;
    let again = ecs_as(
        &app,
        &secret,
        &[
            "set",
            "checkout",
            "max_items=8",
            "--scope",
            "env=prod",
            "-o",
            "json",
        ],
    )
    .await;
    let second = json_of(&again)["change_request"]
        .as_str()
        .unwrap()
        .to_owned();
    expect(&app, 0, &["cr", "reject", &second, "-m", "no"]).await;

    expect(&app, 0, &["tokens", "revoke", &id]).await;
    let revoked = ecs_as(&app, &secret, &["namespaces"]).await;
    assert_eq!(revoked.code, 6, "{}", revoked.stderr);

    let audit = expect(
        &app,
        0,
        &[
            "audit",
            "--namespace",
            "checkout",
            "--outcome",
            "accepted",
            "-o",
            "json",
        ],
    )
    .await;
    let entries = json_of(&audit)["entries"].as_array().unwrap().clone();
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "change-request.approved"),
        "{entries:?}"
    );
    let refused = expect(&app, 0, &["audit", "--outcome", "refused"]).await;
    assert!(refused.stdout.contains("refused"), "{}", refused.stdout);
    expect(&app, 64, &["audit", "--outcome", "maybe"]).await;

    let status = expect(&app, 0, &["admin", "status", "-o", "json"]).await;
    assert_eq!(json_of(&status)["readiness"]["ready"], true);
    assert_eq!(json_of(&status)["lag"], 0);
    let before = app
        .get("/v1/namespaces/checkout/resolved?env=prod")
        .await
        .body["values"]
        .clone();
    expect(&app, 0, &["admin", "rebuild"]).await;
    assert_eq!(
        app.get("/v1/namespaces/checkout/resolved?env=prod")
            .await
            .body["values"],
        before
    );

    for shell in ["bash", "zsh", "fish"] {
        let completions = expect(&app, 0, &["completions", shell]).await;
        assert!(completions.stdout.contains("promote"), "{shell}");
    }
}

#[tokio::test]
async fn the_demo_directory_applies_and_is_in_export_form() {
    let app = spawn_app().await;
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/demo");
    let demo = demo.to_str().unwrap();
    expect(&app, 2, &["apply", demo]).await;
    expect(&app, 0, &["apply", demo, "--yes", "-m", "demo data"]).await;
    let resolved = app.resolved("checkout", "env=prod&tenant=acme").await.body["values"].clone();
    assert_eq!(
        resolved,
        json!({"currency": "EUR", "max_items": 1000, "features": {"express": true},
               "payment": {"provider": "stripe", "retries": 5}})
    );
    let exported = tempfile::tempdir().unwrap();
    expect(&app, 0, &["export", exported.path().to_str().unwrap()]).await;
    assert_eq!(
        read_tree(exported.path()),
        read_tree(std::path::Path::new(demo))
    );
}

#[tokio::test]
async fn profiles_give_the_url_and_token() {
    let app = spawn_app().await;
    seed(&app).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{ADMIN_TOKEN}\n")).unwrap();
    let config = dir.path().join("cli.toml");
    std::fs::write(
        &config,
        format!(
            "default_profile = \"broken\"\n[profiles.test]\nurl = \"{}\"\ntoken_file = \"{}\"\n[profiles.broken]\nurl = \"http://127.0.0.1:9\"\n",
            app.address,
            token_file.display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let listed = with_config(config, &["--profile", "test", "namespaces", "-o", "json"]).await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert_eq!(json_of(&listed)["namespaces"][0]["name"], "checkout");
    // The default profile is used without --profile; flags win over it.
    assert_eq!(with_config(config, &["namespaces"]).await.code, 7);
    let flagged = with_config(
        config,
        &["namespaces", "--url", &app.address, "--token", ADMIN_TOKEN],
    )
    .await;
    assert_eq!(flagged.code, 0, "{}", flagged.stderr);
    assert_eq!(
        with_config(config, &["--profile", "nope", "namespaces"])
            .await
            .code,
        64
    );
}

async fn with_config(config: &str, args: &[&str]) -> Outcome {
    let mut line = vec!["ecs", "--cli-config", config];
    line.extend_from_slice(args);
    ecs_cli::run_from(line).await
}
