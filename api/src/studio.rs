//! Config Studio's built assets at `/studio/`, read from a directory
//! (`ECS_STUDIO_DIR`) so that `cargo build` needs no npm: the server serves
//! whatever `npm run build` left there, and a page saying how to build it
//! when nothing is there yet.
//!
//! Every answer carries a Content-Security-Policy that allows only this
//! origin (no inline script, no inline style, no `eval`, no other host), so
//! a value rendered by Studio can never run as code. The one exception is the
//! configured OIDC issuer, which the app may fetch from (its discovery
//! document and token endpoint) when OIDC sign-in is configured.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use tower::ServiceExt as _;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;

/// Only this origin, for everything, and the OIDC issuer's origin to fetch
/// from when one is configured; frames and plugins not at all.
fn content_security_policy(issuer_origin: Option<&str>) -> String {
    let connect = match issuer_origin {
        Some(origin) => format!("'self' {origin}"),
        None => "'self'".to_owned(),
    };
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         font-src 'self'; connect-src {connect}; object-src 'none'; base-uri 'self'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

/// `scheme://host[:port]` of an absolute http(s) URL, as a CSP source names
/// it; None for anything else.
pub fn origin_of(url: &str) -> Option<String> {
    let uri: Uri = url.parse().ok()?;
    let scheme = uri.scheme_str()?;
    if !matches!(scheme, "http" | "https") {
        return None;
    }
    let authority = uri.authority()?.as_str();
    if authority.contains('@') || authority.contains(';') || authority.contains(' ') {
        return None;
    }
    Some(format!("{scheme}://{authority}"))
}

/// Built file names carry a content hash, so they never change.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The page answered when the directory holds no build.
fn not_built(dir: &Path) -> Response {
    let dir = dir
        .display()
        .to_string()
        .replace('&', "&amp;")
        .replace('<', "&lt;");
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Config Studio is not built</title></head><body><main>\
         <h1>Config Studio is not built</h1>\
         <p>This server serves Config Studio from <code>{dir}</code>, which holds no build.</p>\
         <p>Build it with <code>cd studio &amp;&amp; npm ci &amp;&amp; npm run build</code> \
         (or run <code>deploy/run.sh</code>), or point <code>ECS_STUDIO_DIR</code> at a \
         directory holding a build, then reload this page.</p></main></body></html>"
    );
    (StatusCode::NOT_FOUND, Html(page)).into_response()
}

/// `/studio` and everything under `/studio/`: files of the build (hashed
/// assets cached for good), and `index.html` for any other path so that the
/// app's own routes load from a bookmark (single-page-app fallback).
pub fn router<S: Clone + Send + Sync + 'static>(dir: &str, issuer: Option<&str>) -> Router<S> {
    let dir = Arc::new(PathBuf::from(dir));
    let csp = content_security_policy(issuer.and_then(origin_of).as_deref());
    let csp = HeaderValue::from_str(&csp).expect("a CSP of checked origins is a header value");
    let serve = move |request: Request| {
        let dir = dir.clone();
        async move { serve(&dir, request).await }
    };
    Router::new()
        .route("/studio", get(|| async { Redirect::permanent("/studio/") }))
        .route("/studio/", get(serve.clone()))
        .route("/studio/{*path}", get(serve))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            csp,
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ))
}

/// One file of the build, looked up below `dir` by the path after `/studio`
/// (`ServeDir` refuses any path leaving the directory).
async fn serve(dir: &Path, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let path = parts
        .uri
        .path()
        .strip_prefix("/studio")
        .filter(|p| !p.is_empty())
        .unwrap_or("/")
        .to_owned();
    parts.uri = match Uri::builder().path_and_query(path.as_str()).build() {
        Ok(uri) => uri,
        Err(_) => return StatusCode::NOT_FOUND.into_response(),
    };
    let request = Request::from_parts(parts, body);
    if path.starts_with("/assets/") {
        let mut response = match ServeDir::new(dir).oneshot(request).await {
            Ok(response) => response.map(Body::new),
            Err(never) => match never {},
        };
        if response.status() == StatusCode::OK {
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
        }
        return response;
    }
    let pages = ServeDir::new(dir).fallback(ServeFile::new(dir.join("index.html")));
    let mut response = match pages.oneshot(request).await {
        Ok(response) => response.map(Body::new),
        Err(never) => match never {},
    };
    // Pages fall back to index.html, so a 404 here means there is no build.
    if response.status() == StatusCode::NOT_FOUND {
        return not_built(dir);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
