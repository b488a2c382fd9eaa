//! Bad input at scale: a seeded generator of hostile requests over every
//! operation of the OpenAPI document (`/v1/openapi.json`) — malformed, huge or
//! deep JSON, invalid UTF-8, wrong types, unknown fields, wrong content types,
//! bad identifiers and path traversal in path segments and scope parameters,
//! unknown and repeated query parameters, bad `If-Match`, `Idempotency-Key`,
//! `Last-Event-ID` and `Authorization` headers.
//!
//! Every request is invalid by construction wherever the operation writes
//! (it carries at least one mutation that the API must refuse), so:
//! no answer is a 5xx, the server stays up (`/healthz` after every batch),
//! and the events stream holds exactly the messages it held before.
//!
//! `ECS_FUZZ_CASES` (default 8000) sets the number of requests,
//! `ECS_FUZZ_SEED` replays a run (the seed is printed). See `docs/faults.md`.

#![allow(clippy::unwrap_used)]
// The run prints its seed and a summary, so that a failure can be replayed.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ecs_tests::app::{ADMIN_TOKEN, TestApp, spawn_app};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng, seq::SliceRandom};
use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::{Value, json};

const DEFAULT_CASES: usize = 8000;

/// One operation of the OpenAPI document.
#[derive(Debug, Clone)]
struct Operation {
    method: Method,
    /// `/v1/namespaces/{ns}/layer`
    path: String,
    path_params: Vec<String>,
    query_params: Vec<String>,
    header_params: Vec<String>,
    /// The request body's JSON schema (refs resolved one level), if any.
    body: Option<Value>,
}

impl Operation {
    fn writes(&self) -> bool {
        self.method != Method::GET && self.method != Method::HEAD
    }

    fn streams(&self) -> bool {
        self.path.ends_with("/watch") || self.path.ends_with("/feed")
    }
}

fn resolve_ref<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let pointer = reference.trim_start_matches('#');
            doc.pointer(pointer).unwrap_or(schema)
        }
        None => schema,
    }
}

fn operations(doc: &Value) -> Vec<Operation> {
    let mut out = vec![];
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().unwrap() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            if !matches!(
                method,
                Method::GET | Method::PUT | Method::POST | Method::PATCH | Method::DELETE
            ) {
                continue;
            }
            let params = |place: &str| -> Vec<String> {
                op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["in"] == place)
                    .filter_map(|p| p["name"].as_str().map(str::to_owned))
                    .collect()
            };
            let path_params = params("path");
            let query_params = params("query");
            let header_params = params("header");
            let body = op["requestBody"]["content"]["application/json"]["schema"]
                .as_object()
                .map(|_| {
                    resolve_ref(
                        doc,
                        &op["requestBody"]["content"]["application/json"]["schema"],
                    )
                    .clone()
                });
            out.push(Operation {
                method,
                path: path.clone(),
                path_params,
                query_params,
                header_params,
                body,
            });
        }
    }
    out
}

/// Identifiers no route may accept: traversal, encoded separators, NUL,
/// invalid UTF-8, reserved subject characters, too long, unicode, injection.
fn hostile_identifier(rng: &mut StdRng) -> String {
    let fixed = [
        "..",
        "%2e%2e",
        "%2E%2E%2F%2E%2E",
        "..%2F..%2Fetc%2Fpasswd",
        "a%2Fb",
        "%2F",
        "%5C..%5C",
        "_",
        "a.b",
        "*",
        "%3E",
        "a%20b",
        "%20",
        "%00",
        "a%00b",
        "%FF%FE",
        "%C0%AE%C0%AE",
        "%E2%80%AE",
        "%C3%A9t%C3%A9",
        "%F0%9F%A6%80",
        "-leading",
        "a;b",
        "%24(id)",
        "'%3B%20DROP%20TABLE%20layers%3B--",
        "%0A",
        "%09",
        "%7B%7D",
    ];
    match rng.gen_range(0..4) {
        0 => "x".repeat(rng.gen_range(65..300)),
        1 => {
            let id = format!(
                "{}{}",
                "a".repeat(rng.gen_range(1..10)),
                fixed.choose(rng).unwrap()
            );
            if id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                "..".to_owned() // a prefix made it valid (`a-leading`)
            } else {
                id
            }
        }
        _ => (*fixed.choose(rng).unwrap()).to_owned(),
    }
}

fn valid_param(name: &str) -> String {
    match name {
        "ns" | "namespace" => "fuzz".to_owned(),
        "tenant" => "acme".to_owned(),
        _ => uuid::Uuid::new_v4().to_string(),
    }
}

/// A plausible body from the schema: every property with a value of its type.
fn plausible_body(schema: &Value) -> Value {
    let mut body = serde_json::Map::new();
    if let Some(properties) = schema["properties"].as_object() {
        for (name, property) in properties {
            body.insert(name.clone(), plausible_value(property));
        }
    }
    Value::Object(body)
}

fn type_of(schema: &Value) -> &str {
    match &schema["type"] {
        Value::String(t) => t,
        Value::Array(types) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("object"),
        _ => "object",
    }
}

fn plausible_value(schema: &Value) -> Value {
    match type_of(schema) {
        "string" => json!("fuzz"),
        "integer" | "number" => json!(1),
        "boolean" => json!(true),
        "array" => json!([]),
        _ => json!({}),
    }
}

/// A value of another JSON type than the schema's (never a valid JSON Schema
/// either, in case the field holds one).
fn wrong_value(schema: &Value, rng: &mut StdRng) -> Value {
    let choices: Vec<Value> = match type_of(schema) {
        "string" => vec![json!(12), json!({"a": 1}), json!([1, 2]), json!(false)],
        "integer" | "number" => vec![
            json!("1"),
            json!(-1),
            json!(1.5),
            json!(1e300),
            json!([1]),
            json!(18_446_744_073_709_551_615u64),
        ],
        "boolean" => vec![json!("true"), json!(1), json!([])],
        "array" => vec![json!("a"), json!({"0": "/a"}), json!(7), json!([1, {}])],
        _ => vec![json!(5), json!("str"), json!([1, 2, 3])],
    };
    choices.choose(rng).unwrap().clone()
}

#[derive(Debug)]
struct Request {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, Vec<u8>)>,
    body: Option<Vec<u8>>,
    content_type: Option<String>,
    token: Option<String>,
    mutations: Vec<&'static str>,
}

impl Request {
    fn describe(&self) -> String {
        let body = self.body.as_ref().map(|b| {
            let text = String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned();
            format!(" body({} bytes)={text}", b.len())
        });
        format!(
            "{} {}{}{} headers={:?} mutations={:?}{}",
            self.method,
            self.path,
            if self.query.is_empty() { "" } else { "?" },
            self.query
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&"),
            self.headers
                .iter()
                .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(&v[..v.len().min(60)])))
                .collect::<Vec<_>>(),
            self.mutations,
            body.unwrap_or_default()
        )
    }
}

fn deep_json(depth: usize) -> Vec<u8> {
    let mut s = String::from("{\"values\": ");
    for i in 0..depth {
        s.push_str(if i % 2 == 0 { "[" } else { "{\"a\":" });
    }
    s.push('1');
    for i in (0..depth).rev() {
        s.push(if i % 2 == 0 { ']' } else { '}' });
    }
    s.push('}');
    s.into_bytes()
}

/// The mutations an operation can take; `true` marks those that make any
/// request to it invalid (refused before anything is written).
fn mutations_for(op: &Operation, rng: &mut StdRng) -> Vec<(&'static str, bool)> {
    let mut out = vec![
        ("unknown-query", true),
        ("bad-last-event-id", false),
        ("weird-accept", false),
    ];
    // Rarely: a refusal at the door says little about the handlers.
    if rng.gen_bool(0.2) {
        out.push(("bad-token", true));
    }
    if !op.path_params.is_empty() {
        out.push(("hostile-path-id", true));
    }
    if op.query_params.iter().any(|p| SCOPE.contains(&p.as_str())) {
        out.push(("hostile-scope", true));
    }
    if !op.query_params.is_empty() {
        out.push(("repeated-query", true));
    }
    if op.query_params.iter().any(|p| TYPED.contains(&p.as_str())) {
        out.push(("bad-typed-query-value", true));
    }
    if op.query_params.iter().any(|p| free_text(p)) {
        out.push(("free-text-query-value", false));
    }
    if op.body.is_some() {
        for m in [
            "malformed-json",
            "invalid-utf8",
            "wrong-top-type",
            "wrong-field-type",
            "unknown-field",
            "huge-body",
            "deep-json",
            "wrong-content-type",
            "empty-body",
        ] {
            out.push((m, true));
        }
    } else {
        out.push(("stray-body", false));
    }
    let declares = |h: &str| op.header_params.iter().any(|p| p.eq_ignore_ascii_case(h));
    out.push(("bad-if-match", op.writes() && declares("If-Match")));
    out.push((
        "bad-idempotency-key",
        op.writes() && declares("Idempotency-Key"),
    ));
    out
}

const SCOPE: [&str; 4] = ["env", "service", "tenant", "edition"];
/// Query parameters with a type (a wrong value is refused).
const TYPED: [&str; 5] = ["position", "at", "explain", "limit", "since"];

/// Free-text query parameters (such as `message`): any text is a value.
fn free_text(name: &str) -> bool {
    !SCOPE.contains(&name) && !TYPED.contains(&name)
}

fn generate(op: &Operation, rng: &mut StdRng) -> Request {
    let available = mutations_for(op, rng);
    let mut chosen: Vec<&'static str> = vec![];
    if op.writes() {
        let invalidating: Vec<&'static str> = available
            .iter()
            .filter(|(_, i)| *i)
            .map(|(m, _)| *m)
            .collect();
        chosen.push(invalidating.choose(rng).unwrap());
    }
    for _ in 0..rng.gen_range(0..3) {
        let (m, _) = available.choose(rng).unwrap();
        if !chosen.contains(m) {
            chosen.push(m);
        }
    }
    if chosen.is_empty() {
        chosen.push(available.choose(rng).unwrap().0);
    }

    let mut path_values: Vec<(String, String)> = op
        .path_params
        .iter()
        .map(|p| (p.clone(), valid_param(p)))
        .collect();
    let mut query: Vec<(String, String)> = vec![];
    // Sometimes a plausible scope.
    if op.query_params.iter().any(|p| p == "env") && rng.gen_bool(0.5) {
        query.push(("env".to_owned(), "prod".to_owned()));
    }
    let mut headers: Vec<(String, Vec<u8>)> = vec![];
    let mut body = op
        .body
        .as_ref()
        .map(|schema| serde_json::to_vec(&plausible_body(schema)).unwrap());
    let mut content_type = body.as_ref().map(|_| "application/json".to_owned());
    let mut token = Some(ADMIN_TOKEN.to_owned());

    for mutation in &chosen {
        match *mutation {
            "hostile-path-id" => {
                let i = rng.gen_range(0..path_values.len());
                path_values[i].1 = hostile_identifier(rng);
            }
            "hostile-scope" => {
                let scopes: Vec<&String> = op
                    .query_params
                    .iter()
                    .filter(|p| SCOPE.contains(&p.as_str()))
                    .collect();
                let name = (*scopes.choose(rng).unwrap()).clone();
                query.retain(|(k, _)| *k != name);
                query.push((name, hostile_identifier(rng)));
            }
            "unknown-query" => {
                let names = [
                    "zz", "envv", "ENV", "scope", "values", "%00", "tenant[]", "a.b",
                ];
                query.push((
                    (*names.choose(rng).unwrap()).to_owned(),
                    hostile_identifier(rng),
                ));
            }
            "repeated-query" => {
                let name = op.query_params.choose(rng).unwrap().clone();
                let value = match name.as_str() {
                    "position" | "limit" => "1".to_owned(),
                    "explain" => "true".to_owned(),
                    _ => "prod".to_owned(),
                };
                query.push((name.clone(), value.clone()));
                query.push((name, value));
            }
            "bad-typed-query-value" => {
                let typed: Vec<&String> = op
                    .query_params
                    .iter()
                    .filter(|p| TYPED.contains(&p.as_str()))
                    .collect();
                let name = (*typed.choose(rng).unwrap()).clone();
                let values = [
                    "-1",
                    "1e99",
                    "99999999999999999999999",
                    "yesterday",
                    "2024-13-45T99:99:99Z",
                    "maybe",
                    "",
                    "%FF",
                    "true%00",
                    "1%00",
                ];
                query.retain(|(k, _)| *k != name);
                query.push((name, (*values.choose(rng).unwrap()).to_owned()));
            }
            "free-text-query-value" => {
                let free: Vec<&String> = op.query_params.iter().filter(|p| free_text(p)).collect();
                let name = (*free.choose(rng).unwrap()).clone();
                let values = [
                    "x%00y",
                    "%FF%FE",
                    "..%2F..",
                    "%E2%80%AE",
                    "'%3B--",
                    "%F0%9F%A6%80",
                    "%0D%0AX-Injected:%201",
                ];
                let value = match rng.gen_range(0..3) {
                    0 => "m".repeat(rng.gen_range(1000..5000)),
                    _ => (*values.choose(rng).unwrap()).to_owned(),
                };
                // Replace the value in place: a parameter another mutation
                // repeated on purpose stays repeated (and the request invalid).
                match query.iter_mut().find(|(k, _)| *k == name) {
                    Some((_, existing)) => *existing = value,
                    None => query.push((name, value)),
                }
            }
            "malformed-json" => {
                let samples: [&[u8]; 8] = [
                    b"{",
                    b"{\"values\": }",
                    b"nul",
                    b"{\"values\": {}} trailing",
                    b"{'values': {}}",
                    b"{\"values\": {\"a\": 1,}}",
                    b"\x00\x01\x02",
                    b"{\"values\": NaN}",
                ];
                body = Some(samples.choose(rng).unwrap().to_vec());
            }
            "invalid-utf8" => {
                let mut bytes = b"{\"values\": {\"a\": \"".to_vec();
                bytes.extend([0xff, 0xfe, 0xc3, 0x28, 0xed, 0xa0, 0x80]);
                bytes.extend(b"\"}, \"message\": \"\xff\"}");
                body = Some(bytes);
            }
            "wrong-top-type" => {
                let samples = [
                    "[]",
                    "\"values\"",
                    "1",
                    "null",
                    "true",
                    "[{\"values\": {}}]",
                ];
                body = Some(samples.choose(rng).unwrap().as_bytes().to_vec());
            }
            "wrong-field-type" => {
                let schema = op.body.clone().unwrap_or_default();
                let mut value = plausible_body(&schema);
                if let (Some(properties), Some(object)) =
                    (schema["properties"].as_object(), value.as_object_mut())
                {
                    let names: Vec<&String> = properties.keys().collect();
                    if let Some(name) = names.choose(rng) {
                        object.insert((*name).clone(), wrong_value(&properties[*name], rng));
                    } else {
                        object.insert("__fuzz".to_owned(), json!(1));
                    }
                }
                body = Some(serde_json::to_vec(&value).unwrap());
            }
            "unknown-field" => {
                let schema = op.body.clone().unwrap_or_default();
                let mut value = plausible_body(&schema);
                let names = [
                    "__proto__",
                    "Values",
                    "extra",
                    "constructor",
                    "$ref",
                    "values ",
                ];
                value.as_object_mut().unwrap().insert(
                    (*names.choose(rng).unwrap()).to_owned(),
                    json!({"injected": true}),
                );
                body = Some(serde_json::to_vec(&value).unwrap());
            }
            "huge-body" => {
                let size = rng.gen_range(70_000..400_000);
                let mut bytes = b"{\"values\": {\"a\": \"".to_vec();
                bytes.extend(std::iter::repeat_n(b'x', size));
                bytes.extend(b"\"}}");
                body = Some(bytes);
            }
            "deep-json" => body = Some(deep_json(rng.gen_range(200..5000))),
            "wrong-content-type" => {
                let types = [
                    "text/plain",
                    "application/x-www-form-urlencoded",
                    "multipart/form-data; boundary=x",
                    "application/xml",
                    "application/jsonx",
                ];
                content_type = Some((*types.choose(rng).unwrap()).to_owned());
            }
            "empty-body" => body = Some(vec![]),
            "stray-body" => {
                body = Some(b"{\"values\": {\"a\": 1}}".to_vec());
                content_type = Some("application/json".to_owned());
            }
            "bad-if-match" => {
                let values: [&[u8]; 7] = [
                    b"abc",
                    b"\"-1\"",
                    b"\"99999999999999999999999\"",
                    b"\"1",
                    b"",
                    b"\"1\", \"2\"",
                    b"\"\xff\"",
                ];
                headers.push(("if-match".to_owned(), values.choose(rng).unwrap().to_vec()));
            }
            "bad-idempotency-key" => {
                let value = match rng.gen_range(0..3) {
                    0 => vec![],
                    1 => vec![b'k'; rng.gen_range(256..2000)],
                    _ => b"key-\xff\xfe".to_vec(),
                };
                headers.push(("idempotency-key".to_owned(), value));
            }
            "bad-last-event-id" => {
                let values: [&[u8]; 5] = [
                    b"-1",
                    b"abc",
                    b"99999999999999999999999999",
                    b"1e9",
                    b"\xff",
                ];
                headers.push((
                    "last-event-id".to_owned(),
                    values.choose(rng).unwrap().to_vec(),
                ));
            }
            "weird-accept" => {
                let values: [&[u8]; 3] = [b"text/event-stream", b"application/xml", b"*/*;q=abc"];
                headers.push(("accept".to_owned(), values.choose(rng).unwrap().to_vec()));
            }
            "bad-token" => {
                token = match rng.gen_range(0..3) {
                    0 => None,
                    1 => Some("not-the-token".to_owned()),
                    _ => Some("x".repeat(5000)),
                };
            }
            other => unreachable!("mutation {other}"),
        }
    }
    let mut path = op.path.clone();
    for (name, value) in &path_values {
        path = path.replace(&format!("{{{name}}}"), value);
    }
    Request {
        method: op.method.clone(),
        path,
        query,
        headers,
        body,
        content_type,
        token,
        mutations: chosen,
    }
}

enum Outcome {
    Status(u16, String),
    /// The request could not be built (not sent).
    Unsendable,
    NoAnswer(String),
}

async fn send(app: &TestApp, op: &Operation, request: &Request) -> Outcome {
    let mut url = format!("{}{}", app.address, request.path);
    if !request.query.is_empty() {
        url.push('?');
        url.push_str(
            &request
                .query
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&"),
        );
    }
    let Ok(url) = reqwest::Url::parse(&url) else {
        return Outcome::Unsendable;
    };
    let mut builder = app
        .client
        .request(request.method.clone(), url)
        .timeout(Duration::from_secs(10));
    if let Some(token) = &request.token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    for (name, value) in &request.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) else {
            return Outcome::Unsendable;
        };
        builder = builder.header(name, value);
    }
    if let Some(content_type) = &request.content_type {
        builder = builder.header("content-type", content_type);
    }
    if let Some(body) = &request.body {
        builder = builder.body(body.clone());
    }
    match builder.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            // Server-sent events never end: look at the status only.
            let text = if op.streams() && status == 200 {
                String::new()
            } else {
                response.text().await.unwrap_or_default()
            };
            Outcome::Status(status, text)
        }
        Err(e) if e.is_builder() => Outcome::Unsendable,
        Err(e) => Outcome::NoAnswer(format!("{e:?}")),
    }
}

async fn stream_last(app: &TestApp) -> u64 {
    let client = async_nats::connect(app.nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream(&app.settings.stream_name).await.unwrap();
    stream.info().await.unwrap().state.last_sequence
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_no_5xx_and_write_nothing() {
    let cases: usize = std::env::var("ECS_FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let seed: u64 = std::env::var("ECS_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("fuzz: {cases} cases, seed {seed} (replay with ECS_FUZZ_SEED={seed})");

    let app = spawn_app().await;
    // Something to aim at: a namespace with a schema, a tenant, layers.
    let schema = json!({"type": "object", "properties": {"limit": {"type": "integer"}}});
    assert!(
        app.put_namespace("fuzz", &json!({"schema": schema}))
            .await
            .status
            .is_success()
    );
    assert!(app.put_tenant("acme", "pro").await.status.is_success());
    for scope in ["", "env=prod", "tenant=acme"] {
        let answer = app
            .put_layer("fuzz", scope, &json!({"values": {"limit": 1}}))
            .await;
        assert!(answer.status.is_success(), "{}", answer.body);
    }
    let doc = app.get("/v1/openapi.json").await.body;
    let ops = operations(&doc);
    assert!(
        ops.len() >= 10,
        "too few operations in the OpenAPI document"
    );
    let before = stream_last(&app).await;

    let mut rng = StdRng::seed_from_u64(seed);
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut per_mutation: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut failures: Vec<String> = vec![];
    let mut unsendable = 0;
    let mut last = before;
    let begin = Instant::now();
    for case in 0..cases {
        let op = ops.choose(&mut rng).unwrap();
        let request = generate(op, &mut rng);
        for m in &request.mutations {
            *per_mutation.entry(m).or_default() += 1;
        }
        match send(&app, op, &request).await {
            Outcome::Status(status, body) => {
                *statuses.entry(status).or_default() += 1;
                if status >= 500 {
                    failures.push(format!(
                        "case {case}: {status} for {} -> {body}",
                        request.describe()
                    ));
                }
            }
            Outcome::Unsendable => unsendable += 1,
            Outcome::NoAnswer(error) => failures.push(format!(
                "case {case}: no answer ({error}) for {}",
                request.describe()
            )),
        }
        if op.writes() {
            let now = stream_last(&app).await;
            if now != last {
                failures.push(format!(
                    "case {case}: the events stream grew from {last} to {now} after {}",
                    request.describe()
                ));
                last = now;
            }
        }
        if case % 100 == 99 {
            let health = app.get("/healthz").await;
            assert_eq!(health.status, 200, "the server is down after case {case}");
        }
    }
    let after = stream_last(&app).await;
    println!(
        "fuzz: {cases} requests over {} operations in {:.1}s ({unsendable} not sendable by \
         the HTTP client); statuses {statuses:?}",
        ops.len(),
        begin.elapsed().as_secs_f64()
    );
    println!("fuzz: mutations {per_mutation:?}");
    println!(
        "fuzz: events stream last sequence {before} before, {after} after; {} failure(s)",
        failures.len()
    );
    for failure in failures.iter().take(10) {
        println!("FAIL {failure}");
    }
    assert!(
        failures.is_empty(),
        "{} failure(s), first: {}",
        failures.len(),
        failures[0]
    );
    assert_eq!(before, after, "the fuzz run wrote to the events stream");
    assert_eq!(app.get("/healthz").await.status, 200);
}

/// A NUL character in JSON text is valid JSON and valid UTF-8, but
/// PostgreSQL's `text` and `jsonb` refuse it.
#[tokio::test]
async fn nul_in_a_written_string_is_refused_and_does_not_wedge_the_projections() {
    let app = spawn_app().await;
    assert!(
        app.put_namespace("fuzz", &json!({}))
            .await
            .status
            .is_success()
    );
    let before = stream_last(&app).await;
    let answer = app
        .send(
            app.request(Method::PUT, "/v1/namespaces/fuzz/layer")
                .timeout(Duration::from_secs(20))
                .json(&json!({"values": {"a": "x\u{0}y"}, "message": "m\u{0}"})),
        )
        .await;
    println!("PUT with NUL: {} {}", answer.status, answer.body);
    let ready = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    let ready_status = ready.status();
    println!(
        "readyz after: {ready_status} {}",
        ready.text().await.unwrap_or_default()
    );
    assert!(answer.status.is_client_error(), "{}", answer.status);
    assert_eq!(stream_last(&app).await, before, "nothing written");
    assert_eq!(ready_status, 200);
}

/// A NUL in a free-text query filter reaches PostgreSQL.
#[tokio::test]
async fn nul_in_a_query_filter_is_a_4xx() {
    let app = spawn_app().await;
    let list = app.get("/v1/audit?action=x%00").await;
    println!("GET /v1/audit?action=x%00 -> {} {}", list.status, list.body);
    let export = match app
        .request(Method::GET, "/v1/audit/export?action=x%00")
        .send()
        .await
    {
        Ok(r) => {
            let status = r.status();
            (Some(status), r.text().await.map_err(|e| format!("{e:?}")))
        }
        Err(e) => (None, Err(format!("{e:?}"))),
    };
    println!("GET /v1/audit/export?action=x%00 -> {export:?}");
    assert!(list.status.is_client_error(), "{}", list.status);
    assert!(export.0.is_some_and(|s| s.is_client_error()), "{export:?}");
}
