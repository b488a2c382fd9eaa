//! Governance against a real server: who may do what.
//!
//! - An isolation matrix: every endpoint for every role (admin, tenant admins
//!   of acme and globex, editors and viewers with and without a tenant, a
//!   service, an auditor), with the expected status of each call, and a scan
//!   of every answer for markers that only the other tenant's (or a hidden
//!   namespace's) layers hold.
//! - Credentials: malformed, unknown, expired and revoked API keys; HS256 JWTs;
//!   RS256/ES256 JWTs checked against a JWKS file (`tests/fixtures/`); `iss`
//!   and `aud`; every refusal recorded in the audit stream.
//! - Token management by tenant admins.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use ecs_tests::app::{ADMIN_TOKEN, Answer, TestApp, spawn_app, spawn_app_with};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};

const ACME_MARKER: &str = "acme-marker-4410";
const GLOBEX_MARKER: &str = "globex-secret-marker-7731";
const BILLING_MARKER: &str = "billing-only-marker-5520";

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn url(app: &TestApp, path: &str) -> String {
    format!("{}{path}", app.address)
}

fn as_bearer(app: &TestApp, bearer: &str, method: Method, path: &str) -> RequestBuilder {
    app.client
        .request(method, url(app, path))
        .bearer_auth(bearer)
}

/// A JSON call with a credential; `body` is sent as JSON when present.
async fn call(
    app: &TestApp,
    bearer: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Answer {
    let mut builder = as_bearer(app, bearer, method, path);
    if let Some(body) = body {
        builder = builder.json(body);
    }
    app.send(builder).await
}

/// Issues an API key as `bearer`; the answer as is.
async fn issue(app: &TestApp, bearer: &str, body: &Value) -> Answer {
    call(app, bearer, Method::POST, "/v1/tokens", Some(body)).await
}

/// Issues an API key as the admin: `(id, token)`.
async fn issue_key(app: &TestApp, body: &Value) -> (String, String) {
    let answer = issue(app, ADMIN_TOKEN, body).await;
    assert_eq!(
        answer.status,
        StatusCode::CREATED,
        "{body}: {}",
        answer.body
    );
    (
        answer.body["id"].as_str().unwrap().to_owned(),
        answer.body["token"].as_str().unwrap().to_owned(),
    )
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[track_caller]
fn assert_status(answer: &Answer, status: StatusCode, what: &str) {
    assert_eq!(answer.status, status, "{what}: {}", answer.body);
}

/// Sorted string values of `field` in the array `body[list]`.
fn ids(body: &Value, list: &str, field: &str) -> Vec<String> {
    let mut out: Vec<String> = body[list]
        .as_array()
        .unwrap_or_else(|| panic!("{list} in {body}"))
        .iter()
        .map(|v| v[field].as_str().unwrap_or_default().to_owned())
        .collect();
    out.sort();
    out
}

/// Seeds two namespaces, two tenants and their layers. Every globex layer
/// holds [`GLOBEX_MARKER`], every acme layer [`ACME_MARKER`], every billing
/// layer [`BILLING_MARKER`].
async fn seed(app: &TestApp) {
    for (ns, description) in [("checkout", "Checkout"), ("billing", "Billing")] {
        let answer = app
            .put_namespace(ns, &json!({ "description": description }))
            .await;
        assert_status(&answer, StatusCode::CREATED, ns);
    }
    for (tenant, edition, name) in [
        ("acme", "standard", format!("Acme {ACME_MARKER}")),
        ("globex", "pro", format!("Globex {GLOBEX_MARKER}")),
    ] {
        let answer = app
            .put(
                &format!("/v1/tenants/{tenant}"),
                &json!({ "edition": edition, "name": name }),
            )
            .await;
        assert_status(&answer, StatusCode::CREATED, tenant);
    }
    for (ns, scope) in layer_targets() {
        let answer = app
            .put_layer(
                ns,
                scope,
                &json!({ "values": layer_values(ns, scope), "message": "seed" }),
            )
            .await;
        assert_status(&answer, StatusCode::CREATED, &format!("{ns} {scope}"));
    }
}

fn layer_targets() -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    for ns in ["checkout", "billing"] {
        for scope in ["", "tenant=acme", "tenant=globex", "env=prod&service=api"] {
            out.push((ns, scope));
        }
    }
    out
}

fn layer_values(ns: &str, scope: &str) -> Value {
    let mut values = match scope {
        "" => json!({ "currency": "USD", "banner": "welcome" }),
        "tenant=acme" => json!({ "banner": ACME_MARKER, "acme_only": { "code": ACME_MARKER } }),
        "tenant=globex" => {
            json!({ "banner": GLOBEX_MARKER, "globex_only": { "code": GLOBEX_MARKER } })
        }
        _ => json!({ "timeout_ms": 500 }),
    };
    if ns == "billing" {
        values["billing"] = json!(BILLING_MARKER);
    }
    values
}

fn with_query(path: &str, query: &str) -> String {
    if query.is_empty() {
        path.to_owned()
    } else if path.contains('?') {
        format!("{path}&{query}")
    } else {
        format!("{path}?{query}")
    }
}

// ---------------------------------------------------------------------------
// The principals of the matrix
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum P {
    /// The bootstrap admin.
    Admin,
    /// tenant-admin of acme.
    Ta,
    /// tenant-admin of globex.
    Tg,
    /// editor of {checkout}.
    Ed,
    /// editor of {checkout}, tenant acme.
    EdA,
    /// viewer of {checkout, billing}.
    Vw,
    /// viewer of {checkout}, tenant acme.
    VwA,
    /// service prod/api.
    Svc,
    /// auditor.
    Aud,
}

/// The column order of every row of the matrix.
const PRINCIPALS: [P; 9] = [
    P::Admin,
    P::Ta,
    P::Tg,
    P::Ed,
    P::EdA,
    P::Vw,
    P::VwA,
    P::Svc,
    P::Aud,
];

impl P {
    fn index(self) -> usize {
        PRINCIPALS.iter().position(|p| *p == self).unwrap()
    }

    /// The role, as `POST /v1/tokens` takes it (the admin uses the bootstrap token).
    fn token_request(self) -> Option<Value> {
        let name = |n: &str| format!("matrix {n}");
        Some(match self {
            P::Admin => return None,
            P::Ta => json!({"name": name(ACME_MARKER), "role": "tenant-admin", "tenant": "acme"}),
            P::Tg => {
                json!({"name": name(GLOBEX_MARKER), "role": "tenant-admin", "tenant": "globex"})
            }
            P::Ed => json!({"name": name("editor"), "role": "editor", "namespaces": ["checkout"]}),
            P::EdA => json!({"name": name(ACME_MARKER), "role": "editor",
                "namespaces": ["checkout"], "tenant": "acme"}),
            P::Vw => json!({"name": name("viewer"), "role": "viewer",
                "namespaces": ["checkout", "billing"]}),
            P::VwA => json!({"name": name(ACME_MARKER), "role": "viewer",
                "namespaces": ["checkout"], "tenant": "acme"}),
            P::Svc => {
                json!({"name": name("service"), "role": "service", "env": "prod", "service": "api"})
            }
            P::Aud => json!({"name": name("auditor"), "role": "auditor"}),
        })
    }

    /// Markers this principal must never receive.
    fn forbidden_markers(self) -> Vec<&'static str> {
        let mut out = Vec::new();
        match self {
            P::Ta | P::EdA | P::VwA => out.push(GLOBEX_MARKER),
            P::Tg => out.push(ACME_MARKER),
            _ => {}
        }
        if matches!(self, P::Ed | P::EdA | P::VwA) {
            out.push(BILLING_MARKER);
        }
        out
    }
}

/// The credentials of the principals, and per principal three API keys it
/// may try to revoke (one of acme, one of globex, one of no tenant).
struct Principals {
    tokens: Vec<String>,
    victims: Vec<[String; 3]>,
}

impl Principals {
    async fn issue(app: &TestApp) -> Principals {
        let mut tokens = Vec::new();
        let mut victims = Vec::new();
        for p in PRINCIPALS {
            tokens.push(match p.token_request() {
                None => ADMIN_TOKEN.to_owned(),
                Some(body) => issue_key(app, &body).await.1,
            });
            let victim = |tenant: Option<&str>, marker: &str| {
                let mut body = json!({
                    "name": format!("victim of {p:?} {marker}"),
                    "role": "viewer",
                    "namespaces": ["checkout"],
                });
                if let Some(tenant) = tenant {
                    body["tenant"] = json!(tenant);
                }
                body
            };
            victims.push([
                issue_key(app, &victim(Some("acme"), ACME_MARKER)).await.0,
                issue_key(app, &victim(Some("globex"), GLOBEX_MARKER))
                    .await
                    .0,
                issue_key(app, &victim(None, "untenanted")).await.0,
            ]);
        }
        Principals { tokens, victims }
    }

    fn token(&self, p: P) -> &str {
        &self.tokens[p.index()]
    }
}

// ---------------------------------------------------------------------------
// The matrix
// ---------------------------------------------------------------------------

/// One endpoint call and, per principal (in [`PRINCIPALS`] order), its status.
struct Row {
    method: Method,
    path: String,
    body: Option<Value>,
    expect: [u16; 9],
    /// Principals whose expected status the server does not give yet.
    bugs: Vec<(P, &'static str)>,
}

fn row(method: Method, path: impl Into<String>, body: Option<Value>, expect: [u16; 9]) -> Row {
    Row {
        method,
        path: path.into(),
        body,
        expect,
        bugs: Vec::new(),
    }
}

impl Row {
    fn bug(mut self, principals: &[P], reason: &'static str) -> Row {
        self.bugs.extend(principals.iter().map(|p| (*p, reason)));
        self
    }
}

/// The six layer calls at one scope: reads answer `read`, writes `write`.
fn layer_rows(ns: &str, scope: &str, read: [u16; 9], write: [u16; 9]) -> Vec<Row> {
    let layer = with_query(&format!("/v1/namespaces/{ns}/layer"), scope);
    let history = with_query(&format!("/v1/namespaces/{ns}/layer/history"), scope);
    let rollback = with_query(&format!("/v1/namespaces/{ns}/layer/rollback"), scope);
    vec![
        row(Method::GET, &layer, None, read),
        row(
            Method::PUT,
            &layer,
            Some(json!({ "values": layer_values(ns, scope), "message": "matrix put" })),
            write,
        ),
        row(
            Method::PATCH,
            &layer,
            Some(json!({ "values": { "patched": true }, "message": "matrix patch" })),
            write,
        ),
        row(Method::DELETE, &layer, None, write),
        row(Method::GET, &history, None, read),
        row(
            Method::POST,
            &rollback,
            Some(json!({ "revision": 1, "message": "matrix rollback" })),
            write,
        ),
    ]
}

const TOKEN_404: &str = "a tenant admin revoking a token outside its tenant gets 403, not 404 \
    (DELETE /v1/tokens/{id}: manage_tokens answers Forbidden, so whether the id exists leaks)";
const TOKEN_ORACLE: &str = "a role that may not manage tokens gets 404 for an unknown id but 403 \
    for an existing one (DELETE /v1/tokens/{id} looks the token up before checking the role)";

/// Every endpoint, with the expected status for each principal:
/// `[admin, ta-acme, ta-globex, editor, editor-acme, viewer, viewer-acme, service, auditor]`.
#[rustfmt::skip]
fn matrix() -> Vec<Row> {
    use Method as M;
    let mut rows = vec![
        // Namespaces.
        row(M::GET, "/v1/namespaces", None,                     [200, 200, 200, 200, 200, 200, 200, 200, 200]),
        row(M::GET, "/v1/namespaces/checkout", None,            [200, 200, 200, 200, 200, 200, 200, 200, 200]),
        row(M::GET, "/v1/namespaces/billing", None,             [200, 200, 200, 404, 404, 200, 404, 200, 200]),
        row(M::GET, "/v1/namespaces/nonexistent", None,         [404, 404, 404, 404, 404, 404, 404, 404, 404]),
        row(M::PUT, "/v1/namespaces/checkout", Some(json!({"description": "Checkout"})),
                                                                [200, 403, 403, 403, 403, 403, 403, 403, 403]),
        row(M::PUT, "/v1/namespaces/billing", Some(json!({"description": "Billing"})),
                                                                [200, 403, 403, 403, 403, 403, 403, 403, 403]),
    ];
    // Layers: GET, PUT, PATCH, DELETE, history, rollback.
    //                                                    admin ta   tg   ed   edA  vw   vwA  svc  aud
    rows.extend(layer_rows("checkout", "",                     [200, 404, 404, 200, 404, 200, 404, 403, 200],
                                                               [200, 404, 404, 200, 404, 403, 404, 403, 403]));
    rows.extend(layer_rows("checkout", "tenant=acme",          [200, 200, 404, 200, 200, 200, 200, 403, 200],
                                                               [200, 200, 404, 200, 200, 403, 403, 403, 403]));
    rows.extend(layer_rows("checkout", "tenant=globex",        [200, 404, 200, 200, 404, 200, 404, 403, 200],
                                                               [200, 404, 200, 200, 404, 403, 404, 403, 403]));
    rows.extend(layer_rows("checkout", "env=prod&service=api", [200, 404, 404, 200, 404, 200, 404, 403, 200],
                                                               [200, 404, 404, 200, 404, 403, 404, 403, 403]));
    rows.extend(layer_rows("billing", "",                      [200, 404, 404, 404, 404, 200, 404, 403, 200],
                                                               [200, 404, 404, 404, 404, 403, 404, 403, 403]));
    rows.extend(layer_rows("billing", "tenant=acme",           [200, 200, 404, 404, 404, 200, 404, 403, 200],
                                                               [200, 200, 404, 404, 404, 403, 404, 403, 403]));
    rows.extend(layer_rows("billing", "tenant=globex",         [200, 404, 200, 404, 404, 200, 404, 403, 200],
                                                               [200, 404, 200, 404, 404, 403, 404, 403, 403]));
    rows.extend(layer_rows("billing", "env=prod&service=api",  [200, 404, 404, 404, 404, 200, 404, 403, 200],
                                                               [200, 404, 404, 404, 404, 403, 404, 403, 403]));
    // Resolved (with explain) and watch, per context.
    let contexts: [(&str, &str, [u16; 9]); 12] = [
        //                                                      admin ta   tg   ed   edA  vw   vwA  svc  aud
        ("checkout", "",                                        [200, 403, 403, 200, 403, 200, 403, 403, 200]),
        ("checkout", "tenant=acme",                             [200, 200, 404, 200, 200, 200, 200, 403, 200]),
        ("checkout", "tenant=globex",                           [200, 404, 200, 200, 404, 200, 404, 403, 200]),
        ("checkout", "env=prod&service=api",                    [200, 403, 403, 200, 403, 200, 403, 200, 200]),
        ("checkout", "env=prod&service=api&tenant=acme",        [200, 200, 404, 200, 200, 200, 200, 200, 200]),
        ("checkout", "env=prod&service=api&tenant=globex",      [200, 404, 200, 200, 404, 200, 404, 200, 200]),
        ("checkout", "env=prod&service=web",                    [200, 403, 403, 200, 403, 200, 403, 403, 200]),
        ("checkout", "tenant=nobody",                           [404, 404, 404, 404, 404, 404, 404, 403, 404]),
        ("billing", "",                                         [200, 403, 403, 404, 404, 200, 404, 403, 200]),
        ("billing", "tenant=acme",                              [200, 200, 404, 404, 404, 200, 404, 403, 200]),
        ("billing", "env=prod&service=api&tenant=globex",       [200, 404, 200, 404, 404, 200, 404, 200, 200]),
        ("nonexistent", "tenant=acme",                          [404, 404, 404, 404, 404, 404, 404, 403, 404]),
    ];
    for (ns, context, expect) in contexts {
        rows.push(row(M::GET, with_query(&format!("/v1/namespaces/{ns}/resolved?explain=true"), context), None, expect));
        rows.push(row(M::GET, with_query(&format!("/v1/namespaces/{ns}/watch"), context), None, expect));
    }
    rows.extend([
        // The raw change feed carries every tenant's layers.
        row(M::GET, "/v1/feed?namespaces=checkout", None,       [200, 403, 403, 403, 403, 403, 403, 200, 200]),
        row(M::GET, "/v1/feed?namespaces=billing", None,        [200, 403, 403, 404, 404, 403, 404, 200, 200]),
        row(M::GET, "/v1/feed?namespaces=checkout,billing", None,
                                                                [200, 403, 403, 403, 403, 403, 403, 200, 200]),
        // Tenants.
        row(M::GET, "/v1/tenants", None,                        [200, 200, 200, 200, 200, 200, 200, 200, 200]),
        // A service is bound to an env and a service, not to tenants: it sees none.
        row(M::GET, "/v1/tenants/acme", None,                   [200, 200, 404, 200, 200, 200, 200, 404, 200]),
        row(M::GET, "/v1/tenants/globex", None,                 [200, 404, 200, 200, 404, 200, 404, 404, 200]),
        row(M::GET, "/v1/tenants/nobody", None,                 [404, 404, 404, 404, 404, 404, 404, 404, 404]),
        row(M::PUT, "/v1/tenants/acme", Some(json!({"edition": "standard", "name": format!("Acme {ACME_MARKER}")})),
                                                                [200, 403, 403, 403, 403, 403, 403, 403, 403]),
        row(M::PUT, "/v1/tenants/globex", Some(json!({"edition": "pro", "name": format!("Globex {GLOBEX_MARKER}")})),
                                                                [200, 403, 403, 403, 403, 403, 403, 403, 403]),
        // Tokens.
        row(M::GET, "/v1/tokens", None,                         [200, 200, 200, 403, 403, 403, 403, 403, 403]),
        row(M::POST, "/v1/tokens", Some(json!({"name": "m", "role": "viewer", "namespaces": ["checkout"], "tenant": "acme"})),
                                                                [201, 201, 403, 403, 403, 403, 403, 403, 403]),
        row(M::POST, "/v1/tokens", Some(json!({"name": "m", "role": "tenant-admin", "tenant": "globex"})),
                                                                [201, 403, 201, 403, 403, 403, 403, 403, 403]),
        row(M::POST, "/v1/tokens", Some(json!({"name": "m", "role": "editor", "namespaces": ["checkout"]})),
                                                                [201, 403, 403, 403, 403, 403, 403, 403, 403]),
        row(M::POST, "/v1/tokens", Some(json!({"name": "m", "role": "auditor"})),
                                                                [201, 403, 403, 403, 403, 403, 403, 403, 403]),
        row(M::DELETE, "/v1/tokens/{victim-acme}", None,        [200, 200, 404, 403, 403, 403, 403, 403, 403])
            .bug(&[P::Tg], TOKEN_404),
        row(M::DELETE, "/v1/tokens/{victim-globex}", None,      [200, 404, 200, 403, 403, 403, 403, 403, 403])
            .bug(&[P::Ta], TOKEN_404),
        row(M::DELETE, "/v1/tokens/{victim-none}", None,        [200, 404, 404, 403, 403, 403, 403, 403, 403])
            .bug(&[P::Ta, P::Tg], TOKEN_404),
        row(M::DELETE, "/v1/tokens/0123456789abcdef", None,     [404, 404, 404, 403, 403, 403, 403, 403, 403])
            .bug(&[P::Ed, P::EdA, P::Vw, P::VwA, P::Svc, P::Aud], TOKEN_ORACLE),
        // Change requests (none are open: every list is empty, but answers).
        row(M::GET, "/v1/change-requests", None,                [200, 200, 200, 200, 200, 200, 200, 200, 200]),
        // The audit log: admins and auditors only.
        row(M::GET, "/v1/audit", None,                          [200, 403, 403, 403, 403, 403, 403, 403, 200]),
        row(M::GET, "/v1/audit?tenant=globex", None,            [200, 403, 403, 403, 403, 403, 403, 403, 200]),
        row(M::GET, "/v1/audit/export", None,                   [200, 403, 403, 403, 403, 403, 403, 403, 200]),
        // Administration (the admin's rebuild runs last, after the matrix).
        row(M::GET, "/v1/admin/projections", None,              [200, 403, 403, 403, 403, 403, 403, 403, 403]),
        row(M::POST, "/v1/admin/projections/rebuild", None,     [0, 403, 403, 403, 403, 403, 403, 403, 403]),
        row(M::GET, "/v1/openapi.json", None,                   [200, 200, 200, 200, 200, 200, 200, 200, 200]),
    ]);
    rows
}

/// Runs one call and returns the mismatches it shows.
async fn run_case(
    app: &TestApp,
    principals: &Principals,
    p: P,
    r: &Row,
    expected: u16,
) -> Vec<String> {
    let [acme, globex, none] = &principals.victims[p.index()];
    let path = r
        .path
        .replace("{victim-acme}", acme)
        .replace("{victim-globex}", globex)
        .replace("{victim-none}", none);
    let what = format!("{p:?} {} {path}", r.method);
    let mut builder = as_bearer(app, principals.token(p), r.method.clone(), &path);
    if let Some(body) = &r.body {
        builder = builder.json(body);
    }
    let response = match builder.send().await {
        Ok(response) => response,
        Err(error) => return vec![format!("{what}: no answer: {error}")],
    };
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let streaming = status == 200 && content_type.starts_with("text/event-stream");
    // A server-sent event stream never ends: a watch's first event (the
    // current document) is scanned, then the stream is dropped.
    let text = if streaming {
        let mut response = response;
        let mut text = String::new();
        if path.contains("/watch") {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            while !text.contains("\n\n") {
                match tokio::time::timeout_at(deadline, response.chunk()).await {
                    Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
                    _ => break,
                }
            }
            if !text.contains("event: config") {
                return vec![format!("{what}: no first config event: {text:?}")];
            }
        }
        drop(response);
        text
    } else {
        match tokio::time::timeout(Duration::from_secs(10), response.text()).await {
            Ok(Ok(text)) => text,
            _ => return vec![format!("{what}: {status} with an unreadable body")],
        }
    };
    let mut out = Vec::new();
    if status != expected {
        let excerpt: String = text.chars().take(300).collect();
        out.push(format!(
            "{what}: got {status}, expected {expected}: {excerpt}"
        ));
    }
    let sse = path.contains("/watch") || path.starts_with("/v1/feed");
    if status == 200 && sse && !streaming {
        out.push(format!("{what}: 200 but content type {content_type:?}"));
    }
    if status >= 400 {
        let code = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|b| b["code"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let fits = match status {
            403 => code == "forbidden",
            404 => code.ends_with("-not-found") && code != "no-such-route",
            _ => true,
        };
        if !fits {
            out.push(format!("{what}: {status} with code {code:?}"));
        }
    }
    for marker in p.forbidden_markers() {
        if text.contains(marker) {
            out.push(format!(
                "{what}: LEAK: the answer contains {marker}: {text}"
            ));
        }
    }
    out
}

/// Runs the matrix: every row for every principal. `bugs` selects whether the
/// calls known not to answer as expected run (alone) or are skipped.
async fn run_matrix(app: &TestApp, principals: &Principals, bugs: bool) -> (usize, Vec<String>) {
    let mut mismatches = Vec::new();
    let mut ran = 0;
    for r in matrix() {
        for p in PRINCIPALS {
            let expected = r.expect[p.index()];
            let bug = r.bugs.iter().find(|(b, _)| *b == p).map(|(_, why)| *why);
            if expected == 0 || bug.is_some() != bugs {
                continue;
            }
            ran += 1;
            for mismatch in run_case(app, principals, p, &r, expected).await {
                mismatches.push(match bug {
                    Some(why) => format!("{mismatch}\n    (a fixed bug is back: {why})"),
                    None => mismatch,
                });
            }
        }
    }
    (ran, mismatches)
}

/// Markers are where they belong, so scanning for them means something.
async fn check_markers_are_visible(app: &TestApp, principals: &Principals) {
    for (p, query, marker) in [
        (P::Admin, "tenant=acme", ACME_MARKER),
        (P::Admin, "tenant=globex", GLOBEX_MARKER),
        (P::Ta, "tenant=acme", ACME_MARKER),
        (P::Tg, "tenant=globex", GLOBEX_MARKER),
        (P::VwA, "tenant=acme", ACME_MARKER),
    ] {
        let answer = call(
            app,
            principals.token(p),
            Method::GET,
            &format!("/v1/namespaces/checkout/resolved?{query}&explain=true"),
            None,
        )
        .await;
        assert_status(&answer, StatusCode::OK, &format!("{p:?} resolved {query}"));
        assert!(answer.body.to_string().contains(marker), "{}", answer.body);
    }
    let answer = call(
        app,
        principals.token(P::Vw),
        Method::GET,
        "/v1/namespaces/billing/resolved",
        None,
    )
    .await;
    assert!(
        answer.body.to_string().contains(BILLING_MARKER),
        "{}",
        answer.body
    );
}

/// List endpoints list only what the caller may see.
async fn check_lists(app: &TestApp, principals: &Principals) -> Vec<String> {
    let mut out = Vec::new();
    let mut expect = |what: String, actual: Vec<String>, expected: &[&str]| {
        if actual != expected {
            out.push(format!("{what}: got {actual:?}, expected {expected:?}"));
        }
    };
    for (p, tenants, namespaces) in [
        (
            P::Admin,
            &["acme", "globex"][..],
            &["billing", "checkout"][..],
        ),
        (P::Ta, &["acme"], &["billing", "checkout"]),
        (P::Tg, &["globex"], &["billing", "checkout"]),
        (P::Ed, &["acme", "globex"], &["checkout"]),
        (P::EdA, &["acme"], &["checkout"]),
        (P::Vw, &["acme", "globex"], &["billing", "checkout"]),
        (P::VwA, &["acme"], &["checkout"]),
        (P::Svc, &[], &["billing", "checkout"]),
        (P::Aud, &["acme", "globex"], &["billing", "checkout"]),
    ] {
        let token = principals.token(p);
        let answer = call(app, token, Method::GET, "/v1/tenants", None).await;
        expect(
            format!("{p:?} GET /v1/tenants"),
            ids(&answer.body, "tenants", "id"),
            tenants,
        );
        let answer = call(app, token, Method::GET, "/v1/namespaces", None).await;
        expect(
            format!("{p:?} GET /v1/namespaces"),
            ids(&answer.body, "namespaces", "name"),
            namespaces,
        );
    }
    for (p, tenant) in [(P::Ta, "acme"), (P::Tg, "globex")] {
        let answer = call(app, principals.token(p), Method::GET, "/v1/tokens", None).await;
        let tenants: Vec<String> = ids(&answer.body, "tokens", "tenant");
        if tenants.is_empty() || tenants.iter().any(|t| t != tenant) {
            out.push(format!(
                "{p:?} GET /v1/tokens lists tokens of tenants {tenants:?}, expected only {tenant}"
            ));
        }
    }
    let answer = call(app, ADMIN_TOKEN, Method::GET, "/v1/tokens", None).await;
    let all = ids(&answer.body, "tokens", "tenant");
    for tenant in ["", "acme", "globex"] {
        if !all.iter().any(|t| t == tenant) {
            out.push(format!("admin GET /v1/tokens lists no token of {tenant:?}"));
        }
    }
    out
}

/// Starts a rebuild as the admin and waits until it is done.
async fn rebuild(app: &TestApp) {
    let answer = app
        .post("/v1/admin/projections/rebuild", &Value::Null)
        .await;
    assert_status(&answer, StatusCode::ACCEPTED, "rebuild");
    let target = answer.body["target_position"].as_u64().unwrap();
    for _ in 0..400 {
        let status = app.get("/v1/admin/projections").await;
        if status.status == StatusCode::OK
            && status.body["rebuilding"] == json!(false)
            && status.body["applied"].as_u64().unwrap_or(0) >= target
        {
            app.wait_ready().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the rebuild did not finish");
}

#[tokio::test]
async fn isolation_matrix_every_endpoint_for_every_role() {
    let app = spawn_app().await;
    seed(&app).await;
    let principals = Principals::issue(&app).await;
    check_markers_are_visible(&app, &principals).await;

    let mut mismatches = check_lists(&app, &principals).await;
    let (ran, found) = run_matrix(&app, &principals, false).await;
    mismatches.extend(found);
    assert!(ran > 800, "only {ran} calls ran");

    // After a rebuild (every projection dropped and replayed), the same keys
    // work and the same rules hold; the matrix's reads run again.
    rebuild(&app).await;
    for r in matrix().into_iter().filter(|r| r.method == Method::GET) {
        for p in PRINCIPALS {
            let expected = r.expect[p.index()];
            if r.bugs.iter().any(|(b, _)| *b == p) {
                continue;
            }
            for mismatch in run_case(&app, &principals, p, &r, expected).await {
                mismatches.push(format!("after the rebuild: {mismatch}"));
            }
        }
    }
    mismatches.extend(
        check_lists(&app, &principals)
            .await
            .into_iter()
            .map(|m| format!("after the rebuild: {m}")),
    );
    assert!(
        mismatches.is_empty(),
        "{} of {ran} calls (and the list checks) answered otherwise:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[tokio::test]
async fn isolation_matrix_token_revocation_hides_what_the_caller_may_not_know() {
    let app = spawn_app().await;
    seed(&app).await;
    let principals = Principals::issue(&app).await;
    let (ran, mismatches) = run_matrix(&app, &principals, true).await;
    assert!(ran > 0);
    assert!(
        mismatches.is_empty(),
        "{} of {ran} calls answered otherwise:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

// ---------------------------------------------------------------------------
// Credentials, and the audit of refusals
// ---------------------------------------------------------------------------

/// The refused attempts recorded in the audit stream (`ECS_AUDIT`).
/// The attempts an authentication refusal record stands for: failed
/// authentications are recorded once per source, reason and window, with a
/// count (`... (N attempts from ...)`).
fn attempts(record: &Value) -> u64 {
    record["reason"]
        .as_str()
        .filter(|r| r.starts_with("authentication"))
        .and_then(|r| r.rsplit_once(" attempt"))
        .and_then(|(head, _)| head.rsplit_once('(').map(|(_, n)| n.to_owned()))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Checks refusals: 401 with a problem body and `WWW-Authenticate`, and
/// every attempt counted once in the audit log. Collects mismatches.
struct Refusals<'a> {
    app: &'a TestApp,
    count: u64,
    mismatches: Vec<String>,
}

impl<'a> Refusals<'a> {
    async fn new(app: &'a TestApp) -> Refusals<'a> {
        Refusals {
            app,
            count: 0,
            mismatches: Vec::new(),
        }
    }

    /// `builder` must answer 401 (and be counted in the audit log).
    async fn refused(&mut self, what: &str, builder: RequestBuilder) {
        let answer = self.app.send(builder).await;
        self.count += 1;
        if answer.status != StatusCode::UNAUTHORIZED {
            self.mismatches.push(format!(
                "{what}: got {}, expected 401: {}",
                answer.status, answer.body
            ));
            return;
        }
        if answer.code() != "unauthorized" || answer.header("www-authenticate").is_none() {
            self.mismatches.push(format!(
                "{what}: 401 without the problem code or WWW-Authenticate: {} {:?}",
                answer.body, answer.headers
            ));
        }
    }

    /// `builder` must be accepted (200).
    async fn accepted(&mut self, what: &str, builder: RequestBuilder) -> Answer {
        let answer = self.app.send(builder).await;
        if answer.status != StatusCode::OK {
            self.mismatches.push(format!(
                "{what}: got {}, expected 200: {}",
                answer.status, answer.body
            ));
        }
        answer
    }

    async fn finish(mut self) {
        // The audit log counts every attempt, in one record per source,
        // reason and window (the tests' window is 1 s).
        let mut counted = 0;
        for _ in 0..100 {
            let answer = self.app.get("/v1/audit?outcome=refused&limit=1000").await;
            counted = answer.body["entries"]
                .as_array()
                .map_or(0, |entries| entries.iter().map(attempts).sum::<u64>());
            if counted >= self.count {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if counted != self.count {
            self.mismatches.push(format!(
                "GET /v1/audit?outcome=refused counts {counted} failed authentications, \
                 expected {}",
                self.count
            ));
        }
        assert!(self.count > 0);
        assert!(
            self.mismatches.is_empty(),
            "{} mismatches:\n{}",
            self.mismatches.len(),
            self.mismatches.join("\n")
        );
    }
}

fn raw(app: &TestApp, authorization: Option<&str>) -> RequestBuilder {
    let builder = app.client.get(url(app, "/v1/namespaces"));
    match authorization {
        Some(value) => builder.header("authorization", value),
        None => builder,
    }
}

fn bearer(app: &TestApp, token: &str) -> RequestBuilder {
    as_bearer(app, token, Method::GET, "/v1/namespaces")
}

#[tokio::test]
async fn api_keys_malformed_unknown_expired_and_revoked_are_refused_and_audited() {
    let app = spawn_app().await;
    app.put_namespace("checkout", &json!({})).await;
    let mut r = Refusals::new(&app).await;

    r.refused("no Authorization header", raw(&app, None)).await;
    for value in [
        "Bearer ",
        "Bearer",
        "Bearer ecs_",
        "Bearer ecs_x",
        "Bearer ecs_x_",
        "Bearer ecs__secret",
        "Bearer ecs_not-alnum_secret",
        "Bearer garbage",
        "Bearer a.b.c",
        "Bearer test-admin-token-but-longer",
        "Basic dGVzdC1hZG1pbi10b2tlbg==",
        "Token test-admin-token",
        "test-admin-token",
    ] {
        r.refused(&format!("Authorization: {value:?}"), raw(&app, Some(value)))
            .await;
    }
    // The scheme is case-insensitive (RFC 9110).
    r.accepted(
        "bearer in lower case",
        raw(&app, Some("bearer test-admin-token")),
    )
    .await;

    // A key's id with another key's secret, and an unknown id.
    let (id, token) = issue_key(
        &app,
        &json!({"name": "v", "role": "viewer", "namespaces": ["checkout"]}),
    )
    .await;
    r.accepted("a fresh key", bearer(&app, &token)).await;
    let secret = token.rsplit('_').next().unwrap();
    let (_, other) = issue_key(&app, &json!({"name": "a", "role": "auditor"})).await;
    let other_secret = other.rsplit('_').next().unwrap();
    r.refused(
        "a key's id with another key's secret",
        bearer(&app, &format!("ecs_{id}_{other_secret}")),
    )
    .await;
    r.refused(
        "an unknown id",
        bearer(&app, &format!("ecs_0123456789abcdef_{secret}")),
    )
    .await;
    r.refused(
        "a truncated secret",
        bearer(&app, &token[..token.len() - 1]),
    )
    .await;

    // Expiry: valid until expires_at, refused from then on.
    let expires = time::OffsetDateTime::now_utc() + Duration::from_secs(2);
    let (_, expiring) = issue_key(
        &app,
        &json!({"name": "e", "role": "viewer", "namespaces": ["checkout"],
            "expires_at": rfc3339(expires)}),
    )
    .await;
    r.accepted("a key before it expires", bearer(&app, &expiring))
        .await;
    let wait = expires - time::OffsetDateTime::now_utc() + Duration::from_millis(1100);
    tokio::time::sleep(wait.try_into().unwrap_or(Duration::ZERO)).await;
    r.refused("an expired key", bearer(&app, &expiring)).await;

    // Revocation takes effect as soon as the DELETE answers.
    let answer = app.delete(&format!("/v1/tokens/{id}")).await;
    assert_status(&answer, StatusCode::OK, "revoke");
    r.refused("a revoked key", bearer(&app, &token)).await;
    let answer = app.delete(&format!("/v1/tokens/{id}")).await;
    assert!(
        answer.status.is_success()
            || answer.status == StatusCode::CONFLICT
            || answer.code() == "token-not-found",
        "revoking twice: {} {}",
        answer.status,
        answer.body
    );
    r.refused("a revoked key, again", bearer(&app, &token))
        .await;
    // Other keys still work.
    r.accepted("another key", bearer(&app, &other)).await;
    r.finish().await;
}

// ---------------------------------------------------------------------------
// JWTs
// ---------------------------------------------------------------------------

fn fixture(name: &str) -> String {
    format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

fn rsa_key(name: &str) -> EncodingKey {
    EncodingKey::from_rsa_pem(&pem(name)).unwrap()
}

fn ec_key(name: &str) -> EncodingKey {
    EncodingKey::from_ec_pem(&pem(name)).unwrap()
}

fn claims(role: Value) -> Value {
    json!({ "sub": "alice", "exp": now() + 600, "ecs_role": role })
}

fn viewer_claims() -> Value {
    claims(json!({ "role": "viewer", "namespaces": ["checkout"] }))
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn hs256(secret: &str, claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(secret.as_bytes()),
        claims,
    )
}

/// Base64url without padding (RFC 7515), for hand-made tokens.
fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// An unsigned token: `alg: none`.
fn unsigned(claims: &Value) -> String {
    let header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64url(claims.to_string().as_bytes());
    format!("{header}.{payload}.")
}

#[test]
fn b64url_matches_rfc_4648() {
    assert_eq!(b64url(b""), "");
    assert_eq!(b64url(b"f"), "Zg");
    assert_eq!(b64url(b"fo"), "Zm8");
    assert_eq!(b64url(b"foo"), "Zm9v");
    assert_eq!(b64url(b"foob"), "Zm9vYg");
    assert_eq!(b64url(&[0xfb, 0xff]), "-_8");
}

#[tokio::test]
async fn hs256_jwts_signed_with_the_secret_and_current_are_accepted() {
    let app = spawn_app_with(|s| s.jwt_hs256_secret = Some("dev-secret".into())).await;
    seed(&app).await;
    let mut r = Refusals::new(&app).await;

    // A viewer of checkout: sees checkout only, may not write.
    let viewer = hs256("dev-secret", &viewer_claims());
    let answer = r.accepted("an HS256 viewer", bearer(&app, &viewer)).await;
    assert_eq!(
        ids(&answer.body, "namespaces", "name"),
        ["checkout"],
        "{}",
        answer.body
    );
    let answer = call(
        &app,
        &viewer,
        Method::PUT,
        "/v1/namespaces/checkout/layer",
        Some(&json!({"values": {}})),
    )
    .await;
    assert_status(&answer, StatusCode::FORBIDDEN, "a viewer JWT writes");
    // A tenant admin of acme: sees acme only, and its writes are its own.
    let tenant_admin = hs256(
        "dev-secret",
        &claims(json!({"role": "tenant-admin", "tenant": "acme"})),
    );
    let answer = call(&app, &tenant_admin, Method::GET, "/v1/tenants", None).await;
    assert_eq!(
        ids(&answer.body, "tenants", "id"),
        ["acme"],
        "{}",
        answer.body
    );
    let answer = call(
        &app,
        &tenant_admin,
        Method::GET,
        "/v1/namespaces/checkout/resolved?tenant=globex",
        None,
    )
    .await;
    assert_status(&answer, StatusCode::NOT_FOUND, "acme's JWT reads globex");
    assert!(!answer.body.to_string().contains(GLOBEX_MARKER));
    let answer = call(
        &app,
        &tenant_admin,
        Method::PATCH,
        "/v1/namespaces/checkout/layer?tenant=acme",
        Some(&json!({"values": {"by_jwt": true}, "message": "jwt"})),
    )
    .await;
    assert_status(&answer, StatusCode::OK, "acme's JWT patches acme");
    let history = app.history("checkout", "tenant=acme").await;
    let last = history.body["revisions"]
        .as_array()
        .unwrap()
        .last()
        .unwrap();
    assert_eq!(last["actor"], json!("jwt:alice"), "{last}");

    r.refused(
        "HS256 signed with another secret",
        bearer(&app, &hs256("not-the-secret", &viewer_claims())),
    )
    .await;
    let mut expired = viewer_claims();
    expired["exp"] = json!(now() - 300);
    r.refused(
        "an expired HS256 JWT",
        bearer(&app, &hs256("dev-secret", &expired)),
    )
    .await;
    r.refused("alg none", bearer(&app, &unsigned(&viewer_claims())))
        .await;
    r.refused(
        "alg none claiming admin",
        bearer(&app, &unsigned(&claims(json!({"role": "admin"})))),
    )
    .await;
    let mut tampered = viewer.split('.').map(str::to_owned).collect::<Vec<_>>();
    tampered[1] = b64url(claims(json!({"role": "admin"})).to_string().as_bytes());
    r.refused(
        "a viewer JWT whose payload says admin",
        bearer(&app, &tampered.join(".")),
    )
    .await;
    for (what, claims) in [
        (
            "no sub",
            json!({"exp": now() + 600, "ecs_role": {"role": "auditor"}}),
        ),
        (
            "no exp",
            json!({"sub": "alice", "ecs_role": {"role": "auditor"}}),
        ),
        ("no ecs_role", json!({"sub": "alice", "exp": now() + 600})),
        ("an unknown role", claims(json!({"role": "superuser"}))),
        (
            "a tenant-admin without tenant",
            claims(json!({"role": "tenant-admin"})),
        ),
        (
            "a role with a bad tenant id",
            claims(json!({"role": "tenant-admin", "tenant": "a.b"})),
        ),
    ] {
        r.refused(
            &format!("an HS256 JWT with {what}"),
            bearer(&app, &hs256("dev-secret", &claims)),
        )
        .await;
    }
    // Without a JWKS, RS256 is refused.
    r.refused(
        "RS256 without a JWKS",
        bearer(
            &app,
            &sign(
                Algorithm::RS256,
                Some("test-rsa-1"),
                &rsa_key("rsa.pem"),
                &viewer_claims(),
            ),
        ),
    )
    .await;
    r.finish().await;
}

#[tokio::test]
async fn rs256_and_es256_jwts_are_checked_against_the_jwks() {
    let app = spawn_app_with(|s| s.jwt_jwks_file = Some(fixture("jwks.json"))).await;
    seed(&app).await;
    let mut r = Refusals::new(&app).await;
    let rsa = rsa_key("rsa.pem");
    let ec = ec_key("ec.pem");

    let answer = r
        .accepted(
            "RS256 with kid test-rsa-1",
            bearer(
                &app,
                &sign(Algorithm::RS256, Some("test-rsa-1"), &rsa, &viewer_claims()),
            ),
        )
        .await;
    assert_eq!(ids(&answer.body, "namespaces", "name"), ["checkout"]);
    let ta = claims(json!({"role": "tenant-admin", "tenant": "globex"}));
    let answer = r
        .accepted(
            "ES256 with kid test-ec-1",
            as_bearer(
                &app,
                &sign(Algorithm::ES256, Some("test-ec-1"), &ec, &ta),
                Method::GET,
                "/v1/tenants",
            ),
        )
        .await;
    assert_eq!(ids(&answer.body, "tenants", "id"), ["globex"]);
    assert!(!answer.body.to_string().contains(ACME_MARKER));

    r.refused(
        "RS256 with an unknown kid",
        bearer(
            &app,
            &sign(
                Algorithm::RS256,
                Some("no-such-kid"),
                &rsa,
                &viewer_claims(),
            ),
        ),
    )
    .await;
    r.refused(
        "RS256 without a kid (the JWKS has two keys)",
        bearer(&app, &sign(Algorithm::RS256, None, &rsa, &viewer_claims())),
    )
    .await;
    r.refused(
        "RS256 by a key not in the JWKS, with a listed kid",
        bearer(
            &app,
            &sign(
                Algorithm::RS256,
                Some("test-rsa-1"),
                &rsa_key("rsa-unlisted.pem"),
                &viewer_claims(),
            ),
        ),
    )
    .await;
    r.refused(
        "ES256 by a key not in the JWKS, with a listed kid",
        bearer(
            &app,
            &sign(
                Algorithm::ES256,
                Some("test-ec-1"),
                &ec_key("ec-unlisted.pem"),
                &viewer_claims(),
            ),
        ),
    )
    .await;
    r.refused(
        "RS256 naming the EC key's kid",
        bearer(
            &app,
            &sign(Algorithm::RS256, Some("test-ec-1"), &rsa, &viewer_claims()),
        ),
    )
    .await;
    r.refused(
        "ES256 naming the RSA key's kid",
        bearer(
            &app,
            &sign(Algorithm::ES256, Some("test-rsa-1"), &ec, &viewer_claims()),
        ),
    )
    .await;
    let mut expired = viewer_claims();
    expired["exp"] = json!(now() - 300);
    r.refused(
        "an expired RS256 JWT",
        bearer(
            &app,
            &sign(Algorithm::RS256, Some("test-rsa-1"), &rsa, &expired),
        ),
    )
    .await;
    // HS256 is not accepted without a secret, whatever it was signed with
    // (here the RSA public key's text: the algorithm-confusion attack).
    let public = std::fs::read_to_string(fixture("jwks.json")).unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("test-rsa-1".into());
    let confused = jsonwebtoken::encode(
        &header,
        &viewer_claims(),
        &EncodingKey::from_secret(public.as_bytes()),
    )
    .unwrap();
    r.refused("HS256 without a configured secret", bearer(&app, &confused))
        .await;
    r.refused("alg none", bearer(&app, &unsigned(&viewer_claims())))
        .await;
    r.finish().await;
}

const ISSUER: &str = "https://idp.example.test";
const AUDIENCE: &str = "ecs-api";

async fn spawn_with_issuer_and_audience() -> TestApp {
    spawn_app_with(|s| {
        s.jwt_jwks_file = Some(fixture("jwks.json"));
        s.jwt_issuer = Some(ISSUER.into());
        s.jwt_audience = Some(AUDIENCE.into());
    })
    .await
}

fn rs256(claims: &Value) -> String {
    sign(
        Algorithm::RS256,
        Some("test-rsa-1"),
        &rsa_key("rsa.pem"),
        claims,
    )
}

#[tokio::test]
async fn jwt_issuer_and_audience_must_match_when_set() {
    let app = spawn_with_issuer_and_audience().await;
    app.put_namespace("checkout", &json!({})).await;
    let mut r = Refusals::new(&app).await;
    let with = |iss: Value, aud: Value| {
        let mut c = viewer_claims();
        c["iss"] = iss;
        c["aud"] = aud;
        c
    };
    r.accepted(
        "the right iss and aud",
        bearer(&app, &rs256(&with(json!(ISSUER), json!(AUDIENCE)))),
    )
    .await;
    r.accepted(
        "the right iss, aud among several",
        bearer(
            &app,
            &rs256(&with(json!(ISSUER), json!(["other", AUDIENCE]))),
        ),
    )
    .await;
    r.refused(
        "another issuer",
        bearer(
            &app,
            &rs256(&with(json!("https://evil.example.test"), json!(AUDIENCE))),
        ),
    )
    .await;
    r.refused(
        "another audience",
        bearer(&app, &rs256(&with(json!(ISSUER), json!("other-api")))),
    )
    .await;
    r.refused(
        "an issuer that only starts like the right one",
        bearer(
            &app,
            &rs256(&with(json!(format!("{ISSUER}.evil")), json!(AUDIENCE))),
        ),
    )
    .await;
    r.finish().await;
}

#[tokio::test]
async fn jwt_without_issuer_or_audience_is_refused_when_they_are_set() {
    let app = spawn_with_issuer_and_audience().await;
    app.put_namespace("checkout", &json!({})).await;
    let mut r = Refusals::new(&app).await;
    let mut no_iss = viewer_claims();
    no_iss["aud"] = json!(AUDIENCE);
    r.refused("no iss", bearer(&app, &rs256(&no_iss))).await;
    let mut no_aud = viewer_claims();
    no_aud["iss"] = json!(ISSUER);
    r.refused("no aud", bearer(&app, &rs256(&no_aud))).await;
    r.refused("neither", bearer(&app, &rs256(&viewer_claims())))
        .await;
    r.finish().await;
}

// ---------------------------------------------------------------------------
// Token management
// ---------------------------------------------------------------------------

#[tokio::test]
async fn tenant_admins_manage_their_tenants_tokens_only() {
    let app = spawn_app().await;
    seed(&app).await;
    let (_, acme_admin) = issue_key(
        &app,
        &json!({"name": "acme admin", "role": "tenant-admin", "tenant": "acme"}),
    )
    .await;
    let (globex_id, _) = issue_key(
        &app,
        &json!({"name": GLOBEX_MARKER, "role": "viewer", "namespaces": ["checkout"], "tenant": "globex"}),
    )
    .await;
    let (_, viewer) = issue_key(
        &app,
        &json!({"name": "v", "role": "viewer", "namespaces": ["checkout"], "tenant": "acme"}),
    )
    .await;
    let (_, editor) = issue_key(
        &app,
        &json!({"name": "e", "role": "editor", "namespaces": ["checkout"], "tenant": "acme"}),
    )
    .await;

    // What a tenant admin of acme may grant: roles within acme.
    let mut issued = Vec::new();
    for body in [
        json!({"name": "ta", "role": "tenant-admin", "tenant": "acme"}),
        json!({"name": "ed", "role": "editor", "namespaces": ["checkout"], "tenant": "acme"}),
        json!({"name": "ed2", "role": "editor", "namespaces": ["checkout", "billing"], "tenant": "acme"}),
        json!({"name": "vw", "role": "viewer", "namespaces": ["billing"], "tenant": "acme"}),
        json!({"name": "exp", "role": "viewer", "namespaces": ["checkout"], "tenant": "acme",
            "expires_at": rfc3339(time::OffsetDateTime::now_utc() + Duration::from_secs(3600))}),
    ] {
        let answer = issue(&app, &acme_admin, &body).await;
        assert_status(&answer, StatusCode::CREATED, &body.to_string());
        issued.push((
            answer.body["id"].as_str().unwrap().to_owned(),
            answer.body["token"].as_str().unwrap().to_owned(),
        ));
    }
    // An issued key works, with its role.
    let answer = call(&app, &issued[1].1, Method::GET, "/v1/tenants", None).await;
    assert_status(&answer, StatusCode::OK, "the issued editor");
    assert_eq!(ids(&answer.body, "tenants", "id"), ["acme"]);
    let answer = call(
        &app,
        &issued[1].1,
        Method::PATCH,
        "/v1/namespaces/checkout/layer?tenant=acme",
        Some(&json!({"values": {"x": 1}})),
    )
    .await;
    assert_status(&answer, StatusCode::OK, "the issued editor writes acme");

    // What it may not grant.
    for body in [
        json!({"name": "x", "role": "admin"}),
        json!({"name": "x", "role": "auditor"}),
        json!({"name": "x", "role": "service", "env": "prod", "service": "api"}),
        json!({"name": "x", "role": "editor", "namespaces": ["checkout"]}),
        json!({"name": "x", "role": "viewer", "namespaces": ["checkout"]}),
        json!({"name": "x", "role": "tenant-admin", "tenant": "globex"}),
        json!({"name": "x", "role": "editor", "namespaces": ["checkout"], "tenant": "globex"}),
        json!({"name": "x", "role": "viewer", "namespaces": ["checkout"], "tenant": "globex"}),
    ] {
        let answer = issue(&app, &acme_admin, &body).await;
        assert_status(
            &answer,
            StatusCode::FORBIDDEN,
            &format!("acme's admin grants {body}"),
        );
        assert_eq!(answer.code(), "forbidden");
    }
    // Neither a viewer nor an editor may issue, even within their tenant.
    for (who, token) in [("viewer", &viewer), ("editor", &editor)] {
        for body in [
            json!({"name": "x", "role": "viewer", "namespaces": ["checkout"], "tenant": "acme"}),
            json!({"name": "x", "role": "viewer", "namespaces": ["checkout"]}),
        ] {
            let answer = issue(&app, token, &body).await;
            assert_status(
                &answer,
                StatusCode::FORBIDDEN,
                &format!("a {who} grants {body}"),
            );
        }
        let answer = call(&app, token, Method::GET, "/v1/tokens", None).await;
        assert_status(
            &answer,
            StatusCode::FORBIDDEN,
            &format!("a {who} lists tokens"),
        );
    }

    // It lists only acme's tokens, its own issues among them.
    let answer = call(&app, &acme_admin, Method::GET, "/v1/tokens", None).await;
    assert_status(&answer, StatusCode::OK, "list");
    assert!(!answer.body.to_string().contains(GLOBEX_MARKER));
    let listed = ids(&answer.body, "tokens", "id");
    for (id, _) in &issued {
        assert!(listed.contains(id), "{id} not in {listed:?}");
    }
    assert!(!listed.contains(&globex_id));
    assert!(
        ids(&answer.body, "tokens", "tenant")
            .iter()
            .all(|t| t == "acme"),
        "{}",
        answer.body
    );
    assert!(
        !answer.body.to_string().contains("secret"),
        "no secret or hash is listed: {}",
        answer.body
    );

    // It revokes its tenant's token: refused at once.
    let answer = call(
        &app,
        &acme_admin,
        Method::DELETE,
        &format!("/v1/tokens/{}", issued[1].0),
        None,
    )
    .await;
    assert_status(&answer, StatusCode::OK, "revoke acme's editor");
    let answer = call(&app, &issued[1].1, Method::GET, "/v1/tenants", None).await;
    assert_status(&answer, StatusCode::UNAUTHORIZED, "the revoked editor");
    // A viewer may not revoke.
    let answer = call(
        &app,
        &viewer,
        Method::DELETE,
        &format!("/v1/tokens/{}", issued[2].0),
        None,
    )
    .await;
    assert_status(&answer, StatusCode::FORBIDDEN, "a viewer revokes");
    // globex's token is untouched by acme's admin (the status is in
    // `tenant_admins_cannot_see_other_tenants_tokens`).
    let answer = call(
        &app,
        &acme_admin,
        Method::DELETE,
        &format!("/v1/tokens/{globex_id}"),
        None,
    )
    .await;
    assert!(
        matches!(answer.status.as_u16(), 403 | 404),
        "{}",
        answer.body
    );
    let answer = app.get("/v1/tokens").await;
    let globex = answer.body["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == json!(globex_id))
        .unwrap();
    assert_eq!(globex["revoked_at"], Value::Null, "{globex}");
}

#[tokio::test]
async fn tenant_admins_cannot_see_other_tenants_tokens() {
    let app = spawn_app().await;
    seed(&app).await;
    let (_, acme_admin) = issue_key(
        &app,
        &json!({"name": "a", "role": "tenant-admin", "tenant": "acme"}),
    )
    .await;
    let (globex_id, _) = issue_key(
        &app,
        &json!({"name": "g", "role": "viewer", "namespaces": ["checkout"], "tenant": "globex"}),
    )
    .await;
    let (auditor_id, _) = issue_key(&app, &json!({"name": "au", "role": "auditor"})).await;
    for id in [globex_id.as_str(), auditor_id.as_str(), "0123456789abcdef"] {
        let answer = call(
            &app,
            &acme_admin,
            Method::DELETE,
            &format!("/v1/tokens/{id}"),
            None,
        )
        .await;
        assert_status(&answer, StatusCode::NOT_FOUND, &format!("revoke {id}"));
        assert_eq!(answer.code(), "token-not-found");
    }
}

#[tokio::test]
async fn token_requests_missing_or_misplaced_fields_are_400_naming_the_field() {
    let app = spawn_app().await;
    seed(&app).await;
    for (body, field) in [
        (json!({"name": "x", "role": "tenant-admin"}), "tenant"),
        (json!({"name": "x", "role": "editor"}), "namespaces"),
        (
            json!({"name": "x", "role": "editor", "namespaces": []}),
            "namespaces",
        ),
        (
            json!({"name": "x", "role": "viewer", "tenant": "acme"}),
            "namespaces",
        ),
        (
            json!({"name": "x", "role": "service", "service": "api"}),
            "env",
        ),
        (
            json!({"name": "x", "role": "service", "env": "prod"}),
            "service",
        ),
        (
            json!({"name": "x", "role": "admin", "tenant": "acme"}),
            "tenant",
        ),
        (
            json!({"name": "x", "role": "auditor", "namespaces": ["checkout"]}),
            "namespaces",
        ),
        (
            json!({"name": "x", "role": "tenant-admin", "tenant": "acme", "env": "prod"}),
            "env",
        ),
        (
            json!({"name": "x", "role": "viewer", "namespaces": ["checkout"], "service": "api"}),
            "service",
        ),
        (
            json!({"name": "x", "role": "service", "env": "prod", "service": "api", "tenant": "acme"}),
            "tenant",
        ),
        (json!({"name": "x", "role": "superuser"}), "role"),
        (
            json!({"name": "x", "role": "tenant-admin", "tenant": "a.b"}),
            "tenant",
        ),
        (
            json!({"name": "x", "role": "viewer", "namespaces": ["check out"]}),
            "namespaces",
        ),
        (
            json!({"name": "x", "role": "auditor", "expires_at": "tomorrow"}),
            "expires_at",
        ),
        (json!({"role": "auditor"}), "name"),
        (json!({"name": "x"}), "role"),
    ] {
        let answer = issue(&app, ADMIN_TOKEN, &body).await;
        assert_status(&answer, StatusCode::BAD_REQUEST, &body.to_string());
        let named = answer.body["field"].as_str().unwrap_or_default();
        let detail = answer.body["detail"].as_str().unwrap_or_default();
        assert!(
            named.starts_with(field) || (named == "body" && detail.contains(field)),
            "{body} must name {field}: {}",
            answer.body
        );
    }
    // A tenant that does not exist.
    let answer = issue(
        &app,
        ADMIN_TOKEN,
        &json!({"name": "x", "role": "tenant-admin", "tenant": "nobody"}),
    )
    .await;
    assert_status(&answer, StatusCode::NOT_FOUND, "an unknown tenant");
    assert_eq!(answer.code(), "tenant-not-found");
}
