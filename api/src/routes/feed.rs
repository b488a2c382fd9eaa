//! `/v1/feed`: the change feed over server-sent events, for readers that hold
//! an HTTP token but no NATS credentials (the SDK's HTTP mode).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use ecs_domain::feed::{FeedItem, FeedMessage};
use ecs_domain::{NamespaceName, Reading, Role};
use ecs_projections::ProjectionStatus;
use futures::Stream;
use tokio::sync::watch;

use crate::auth::Principal;
use crate::extract::Params;
use crate::masking::Masker;
use crate::problem::ApiError;
use crate::state::AppState;

/// How often a comment line keeps idle connections (and proxies) open.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// Query parameters of the feed (documentation only).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedParams {
    /// Comma-separated namespaces to follow.
    pub namespaces: String,
}

fn last_event_id(headers: &HeaderMap) -> Result<u64, ApiError> {
    match headers.get("last-event-id") {
        None => Ok(0),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| {
                ApiError::bad(
                    "invalid-header",
                    "Last-Event-ID",
                    "Last-Event-ID must be a position",
                )
            }),
    }
}

struct FeedState {
    /// Counts this stream against the principal's limit while it is open.
    _permit: crate::limits::StreamPermit,
    app: AppState,
    role: Role,
    namespaces: Vec<NamespaceName>,
    /// Everything at or below this position has been sent (or was before the
    /// reader's `Last-Event-ID`).
    sent: u64,
    queue: VecDeque<Event>,
    status: watch::Receiver<ProjectionStatus>,
    synced: bool,
}

fn feed_event(message: &FeedMessage) -> Event {
    Event::default()
        .event("feed")
        .id(message.position.to_string())
        .data(serde_json::to_string(message).unwrap_or_default())
}

/// An `erased` event: the reader forgets the tenant and its layers.
fn erased_event(tenant: &ecs_domain::TenantId, position: u64) -> Event {
    Event::default()
        .event("erased")
        .id(position.to_string())
        .data(serde_json::json!({"tenant": tenant, "position": position}).to_string())
}

/// The next batch: every item changed after the last position sent, read in
/// one snapshot. `sent` advances to the position that snapshot is complete
/// up to, never to a position read elsewhere: a change applied meanwhile is
/// above it and comes with the next batch.
async fn fill(state: &mut FeedState) -> Result<(), ApiError> {
    let after = state.sent;
    let batch = state
        .app
        .read
        .feed_since(&state.namespaces, state.sent)
        .await?;
    // Schemas are read afresh per batch, so a schema change masks from then on.
    let mut masker = Masker::new(&state.app.read, &state.role, Reading::Configuration);
    let batch_position = batch.position;
    for mut message in batch.messages {
        masker.feed(&mut message).await?;
        hide_tenant_name(&state.role, &mut message);
        state.queue.push_back(feed_event(&message));
    }
    // After the items, so an erased tenant's last state is forgotten too;
    // only erasures the snapshot covers, so `sent` never passes what was read.
    for (tenant, position) in state.app.read.tenants_erased_since(after).await? {
        if position <= batch_position {
            state.queue.push_back(erased_event(&tenant, position));
        }
    }
    state.sent = state.sent.max(batch_position);
    if !state.synced {
        state.synced = true;
        state.queue.push_back(
            Event::default()
                .event("synced")
                .id(state.sent.to_string())
                .data(format!("{{\"position\":{}}}", state.sent)),
        );
    }
    Ok(())
}

/// A tenant's name is for those who may know the tenant; a service follows
/// every tenant's edition (it resolves their contexts) but not their names.
fn hide_tenant_name(role: &Role, message: &mut FeedMessage) {
    if let FeedItem::Tenant { tenant, name, .. } = &mut message.item
        && !role.sees_tenant(tenant)
    {
        *name = None;
    }
}

fn events(state: FeedState) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(event) = state.queue.pop_front() {
                return Some((Ok(event), state));
            }
            // Wait for the projections to apply something new; end cleanly
            // when the server drains or stops.
            tokio::select! {
                changed = state.status.changed() => changed.ok()?,
                _ = state.app.drain.started() => return None,
            }
            if let Err(error) = fill(&mut state).await {
                tracing::warn!(?error, "feed stream stopped");
                return None;
            }
        }
    })
}

/// Follow the change feed (format: `docs/feed.md`) as server-sent events:
/// first every current item changed after `Last-Event-ID` (all of them without
/// it), then a `synced` event, then each change as it is projected. Values
/// the schema marks sensitive are masked for an auditor; a service reads them
/// (and tenants' editions, not their names).
#[utoipa::path(get, path = "/v1/feed", tag = "feed",
    params(FeedParams, ("Last-Event-ID" = Option<u64>, Header, description = "resume after this position")),
    responses(
        (status = 200, description = "`feed` events carrying feed messages, then `synced`, then live changes", content_type = "text/event-stream"),
        (status = 400, body = crate::routes::Problem),
    ))]
pub async fn feed(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    params: Params,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    params.allow(&["namespaces"])?;
    let namespaces = params
        .get("namespaces")
        .ok_or_else(|| {
            ApiError::bad(
                "missing-parameter",
                "namespaces",
                "name the namespaces to follow: namespaces=a,b",
            )
        })?
        .split(',')
        .map(NamespaceName::parse)
        .collect::<Result<Vec<_>, _>>()?;
    for ns in &namespaces {
        principal.check(principal.role.read_feed(ns), || {
            ApiError::not_found(
                "namespace-not-found",
                format!("namespace {ns} does not exist"),
            )
        })?;
    }
    let after = last_event_id(&headers)?;
    let permit = app.limits.open_stream(&principal)?;
    let status = app.projections.subscribe();
    let mut state = FeedState {
        _permit: permit,
        app,
        role: principal.role.clone(),
        namespaces,
        sent: after,
        queue: VecDeque::new(),
        status,
        synced: false,
    };
    fill(&mut state).await?;
    Ok(Sse::new(events(state)).keep_alive(KeepAlive::new().interval(HEARTBEAT)))
}
