//! `/v1/namespaces/{ns}/watch`: the resolved document for a context as a
//! stream of server-sent events, one per change.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;

use crate::auth::Principal;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use ecs_domain::{NamespaceName, Scope};
use ecs_projections::ProjectionStatus;
use serde_json::Value;
use tokio::sync::watch;

use crate::extract::{Params, PathId, SCOPE_PARAMS};
use crate::problem::ApiError;
use crate::routes::resolved::{Resolution, ResolvedBody, mask_sensitive, resolve_context};
use crate::routes::{Problem, ScopeParams};
use crate::state::AppState;

/// How often an idle stream sends a comment, so proxies keep it open.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// How many candidate positions one catch-up step examines.
const BATCH: u32 = 256;

/// The event name of every document sent.
const EVENT: &str = "config";

fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad(
                "invalid-header",
                "Last-Event-ID",
                "Last-Event-ID must be a position (a non-negative integer) from an earlier event",
            )
        })
}

/// Watch the resolved document of a context: an event at once with the
/// current document (or, with `Last-Event-ID`, one per change missed since
/// that position), then one per change.
#[utoipa::path(get, path = "/v1/namespaces/{ns}/watch", tag = "resolution",
    params(("ns" = String, Path, description = "namespace name"), ScopeParams,
        ("Last-Event-ID" = Option<String>, Header,
            description = "the `id` (a position) of the last event received: only later changes are sent")),
    responses(
        (status = 200, content_type = "text/event-stream",
            description = "server-sent events: `event: config`, `id: <position>`, \
                `data: {\"values\": {...}, \"position\": <position>}` whenever the resolved \
                document changes; a comment line every 15 s while idle",
            body = ResolvedBody),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem),
    ))]
pub async fn watch_resolved(
    State(app): State<AppState>,
    PathId(ns): PathId<NamespaceName>,
    Extension(principal): Extension<Principal>,
    params: Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    params.allow(&SCOPE_PARAMS)?;
    let context = params.scope()?;
    crate::routes::resolved::authorize(&principal, &ns, &context)?;
    let resume = last_event_id(&headers)?;
    let permit = app.limits.open_stream(&principal)?;
    // Subscribe before reading, so no change between the read and the
    // subscription goes unseen.
    let mut status = app.projections.subscribe();
    status.borrow_and_update();
    // The namespace and the tenant must exist now (404 otherwise).
    let mut current = resolve_context(&app, &ns, &context, None).await?;
    mask_sensitive(&app, &principal, &ns, &mut current.values).await?;
    let mut watcher = Watcher {
        _permit: permit,
        principal,
        app,
        ns,
        context,
        status,
        cursor: 0,
        last: None,
        needs_baseline: false,
        sent: 0,
        pending: VecDeque::new(),
        done: false,
    };
    match resume {
        None => {
            watcher.cursor = current.position;
            watcher.last = Some(current.values.clone());
            watcher.pending.push_back(current);
        }
        Some(position) => {
            watcher.cursor = position;
            watcher.sent = position;
            watcher.needs_baseline = true;
        }
    }
    let stream = futures::stream::unfold(watcher, Watcher::next);
    let sse = Sse::new(stream).keep_alive(KeepAlive::new().interval(HEARTBEAT));
    Ok((
        [(
            HeaderName::from_static("x-accel-buffering"),
            HeaderValue::from_static("no"),
        )],
        sse,
    )
        .into_response())
}

/// The state of one watching client.
struct Watcher {
    /// Counts this stream against the principal's limit while it is open.
    _permit: crate::limits::StreamPermit,
    /// Sensitive values are masked for roles that may not read them.
    principal: Principal,
    app: AppState,
    ns: NamespaceName,
    context: Scope,
    status: watch::Receiver<ProjectionStatus>,
    /// Every position up to this one is examined (or known to the client).
    cursor: u64,
    /// The values last sent (or known to the client); `None`: no document.
    last: Option<Value>,
    /// `last` is still to be read at `cursor` (a resumed stream).
    needs_baseline: bool,
    /// The position of the last event sent (0: none yet).
    sent: u64,
    /// Documents to send, oldest first.
    pending: VecDeque<Resolution>,
    /// Stop after sending `pending`.
    done: bool,
}

impl Watcher {
    /// The next event, or `None` when the stream ends (the server shuts down
    /// or the read model fails; a client then resumes with `Last-Event-ID`).
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if let Some(resolution) = self.pending.pop_front() {
                // Never an older position after a newer one, never one twice.
                if resolution.position <= self.sent {
                    continue;
                }
                self.sent = resolution.position;
                match event(resolution) {
                    Some(event) => return Some((Ok(event), self)),
                    None => continue,
                }
            }
            if self.done {
                return None;
            }
            let applied = self.status.borrow_and_update().applied;
            if applied > self.cursor {
                if let Err(error) = self.catch_up(applied).await {
                    tracing::warn!(ns = %self.ns, ?error, "watch stream ends: cannot read the projections");
                    self.done = true;
                }
                continue;
            }
            // The stream ends cleanly when the server drains, and on an
            // error: the projector (and so the server) stopped.
            tokio::select! {
                changed = self.status.changed() => changed.ok()?,
                _ = self.app.drain.started() => return None,
            }
        }
    }

    /// Examines the positions in `(cursor, applied]` at which the document
    /// may have changed and queues the document at each one where it did.
    async fn catch_up(&mut self, applied: u64) -> Result<(), ApiError> {
        if self.needs_baseline {
            self.last = self.resolve_at(self.cursor).await?.map(|r| r.values);
            self.needs_baseline = false;
        }
        let positions = self
            .app
            .read
            .change_positions(
                &self.ns,
                self.context.tenant.as_ref(),
                self.cursor,
                applied,
                BATCH,
            )
            .await?;
        let full = positions.len() == BATCH as usize;
        for position in &positions {
            let resolution = self.resolve_at(*position).await?;
            let values = resolution.as_ref().map(|r| &r.values);
            if values != self.last.as_ref() {
                self.last = values.cloned();
                self.pending.extend(resolution);
            }
        }
        self.cursor = match positions.last() {
            Some(last) if full => *last,
            _ => applied,
        };
        Ok(())
    }

    /// The document at `position`; `None` when the namespace or the tenant
    /// did not exist then.
    async fn resolve_at(&self, position: u64) -> Result<Option<Resolution>, ApiError> {
        match resolve_context(&self.app, &self.ns, &self.context, Some(position)).await {
            // The projections went back (a rebuild): the document at `position`
            // cannot be read now; the client resumes later.
            Ok(resolution) if resolution.position < position => Err(ApiError::Unavailable(
                "the projections are behind the watched position".to_owned(),
            )),
            Ok(mut resolution) => {
                mask_sensitive(&self.app, &self.principal, &self.ns, &mut resolution.values)
                    .await?;
                Ok(Some(resolution))
            }
            Err(ApiError::NotFound { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }
}

fn event(resolution: Resolution) -> Option<Event> {
    let body = ResolvedBody {
        values: resolution.values,
        position: resolution.position,
        sources: None,
    };
    match Event::default()
        .event(EVENT)
        .id(resolution.position.to_string())
        .json_data(&body)
    {
        Ok(event) => Some(event),
        Err(error) => {
            tracing::error!(%error, "cannot encode a watch event");
            None
        }
    }
}
