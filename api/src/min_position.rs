//! Read-your-writes across instances: a read given the position of a write
//! (query parameter `min_position=N` or header `ECS-Min-Position: N`) waits
//! until this server's projections have applied it, bounded by
//! `ECS_MIN_POSITION_WAIT_MS`, and answers 503 with `Retry-After` after that.
//! A write answers on the instance that took it only once applied there; a
//! client that reads from another instance behind a load balancer passes the
//! write's position along so that it never reads an older state.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::problem::ApiError;
use crate::state::AppState;

/// The query parameter naming the position a read must see.
pub const PARAMETER: &str = "min_position";
/// The header naming the position a read must see.
pub const HEADER: &str = "ECS-Min-Position";

/// Waits for the position a read asks for, then serves it. Only reads
/// (GET and HEAD) take it: a write already waits for its own position.
pub async fn wait_for_min_position(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    let wanted = match wanted_position(&mut request) {
        Ok(wanted) => wanted,
        Err(error) => return error.into_response(),
    };
    if let Some(wanted) = wanted {
        let wait = Duration::from_millis(state.settings.min_position_wait_ms);
        if !state.projections.wait_for(wanted, wait).await {
            return ApiError::Behind { wanted }.into_response();
        }
    }
    next.run(request).await
}

/// The position the read asks for (the larger when both the header and the
/// parameter are given). The parameter is taken out of the URI, so that the
/// endpoints, which refuse parameters they do not know, never see it.
fn wanted_position(request: &mut Request) -> Result<Option<u64>, ApiError> {
    let from_header = match request.headers().get(HEADER) {
        None => None,
        Some(value) => Some(parse(HEADER, value.to_str().unwrap_or_default())?),
    };
    let Some(query) = request.uri().query() else {
        return Ok(from_header);
    };
    let mut from_query = None;
    let mut kept = vec![];
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == PARAMETER {
            if from_query.is_some() {
                return Err(ApiError::bad(
                    "repeated-parameter",
                    PARAMETER,
                    format!("{PARAMETER} is given twice"),
                ));
            }
            from_query = Some(parse(PARAMETER, value)?);
        } else {
            kept.push(pair);
        }
    }
    if from_query.is_some() {
        let path = request.uri().path();
        let rebuilt = if kept.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{}", kept.join("&"))
        };
        *request.uri_mut() = rebuilt
            .parse::<Uri>()
            .map_err(|_| ApiError::bad("invalid-query", "query", "the query is not valid"))?;
    }
    Ok(from_header.max(from_query))
}

fn parse(field: &str, value: &str) -> Result<u64, ApiError> {
    value.trim().parse().map_err(|_| {
        ApiError::bad(
            "invalid-parameter",
            field,
            format!("{field} must be a stream position (a whole number), not {value:?}"),
        )
    })
}
