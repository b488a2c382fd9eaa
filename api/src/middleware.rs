//! The HTTP middleware, over [`AppState`]: what runs around every handler.
//! The parts they use (credentials, limits, the drain, refusal records)
//! know nothing of the state they are kept in.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::audit::RequestFacts;
use crate::auth::{AuthFailure, Principal};
use crate::failed_auth::Source;
use crate::limits::rate_limited;
use crate::problem::{ApiError, ProblemInfo};
use crate::state::AppState;

/// Middleware: requires `Authorization: Bearer <credential>` and stores the
/// principal in the request's extensions. Refusals are audited.
pub async fn require_bearer(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let credential = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        })
        // OpenFeature's OFREP providers send an API key in `X-API-Key`; it
        // is the same credential a bearer token carries.
        .or_else(|| {
            request
                .headers()
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().to_owned())
        });
    let result = match credential {
        None => Err(AuthFailure::Missing),
        Some(credential) => state.auth.authenticate(&credential).await,
    };
    match result {
        Ok(principal) => {
            tracing::Span::current().record("actor", principal.name.as_str());
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(AuthFailure::Unavailable) => {
            ApiError::Unavailable("the credential store is unavailable".into()).into_response()
        }
        Err(failure) => {
            metrics::counter!("ecs_auth_failures_total").increment(1);
            tracing::debug!(reason = %failure, "authentication refused");
            // Counted, and recorded once per source, reason and window
            // (`crate::failed_auth`): never one audit record per attempt.
            let source = request
                .extensions()
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map_or(Source::Other, |c| Source::Address(c.0.ip()));
            let facts = RequestFacts::of(&request);
            state.failed_auth.note(source, &failure, facts);
            ApiError::Unauthorized.into_response()
        }
    }
}

/// Middleware (before authentication): the request rate of one source
/// address, so that callers without a credential are limited too.
pub async fn limit_source(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(limit) = &state.limits.per_source
        && let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>()
        && let Err(wait) = limit.check(&peer.ip())
    {
        return rate_limited("source", wait);
    }
    next.run(request).await
}

/// Middleware (after authentication): the request rate of one principal,
/// whichever addresses it calls from.
pub async fn limit_principal(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(limit) = &state.limits.per_principal
        && let Some(principal) = request.extensions().get::<Principal>()
        && let Err(wait) = limit.check(&principal.name)
    {
        return rate_limited("principal", wait);
    }
    next.run(request).await
}

/// Middleware: a request not answered within `ECS_REQUEST_TIMEOUT_SECS` is
/// answered 503 `timeout` (a write may have been stored: retry it with the
/// same `Idempotency-Key`). Only producing the response is timed, so
/// server-sent event streams, whose bodies last, are exempt.
pub async fn request_timeout(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(state.limits.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            metrics::counter!("ecs_limited_total", "limit" => "timeout").increment(1);
            ApiError::TimedOut.into_response()
        }
    }
}
/// Middleware (outermost but for request ids and tracing): refuses new work
/// once the drain started and counts the requests running. `/healthz` stays
/// open: the process is alive until it exits.
pub async fn gate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // Counted before the check, so that a drain that starts in between still
    // waits for this request.
    let _running = state.drain.track();
    if state.drain.is_draining() && request.uri().path() != "/healthz" {
        return ApiError::ShuttingDown.into_response();
    }
    next.run(request).await
}

/// Middleware (inside authentication): records every refused attempt of an
/// authenticated caller — authorization denials and validation failures.
pub async fn audit_refusals(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let facts = RequestFacts::of(&request);
    let principal = request.extensions().get::<Principal>().cloned();
    let response = next.run(request).await;
    if let Some(info) = response.extensions().get::<ProblemInfo>()
        && let Some(kind) = info.refusal_kind()
    {
        state
            .record_refusal(
                facts,
                principal.as_ref(),
                kind,
                &format!("{}: {}", info.code, info.detail),
            )
            .await;
    }
    response
}
