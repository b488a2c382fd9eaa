//! OFREP change events (the protocol's ADR 8, `eventStreams`): a bulk
//! evaluation answers the URL of a server-sent-events stream; the stream sends
//! `{"type": "refetchEvaluation", "lastModified": <unix seconds>}` whenever
//! the flags document of the caller's context changes, and providers re-fetch
//! the bulk evaluation. Nothing is evaluated or sent over the stream but the
//! notice.
//!
//! Browsers' `EventSource` sends no headers, so the stream URL carries a
//! ticket: an HS256 token naming the namespace and context the caller was
//! authorized for when the bulk evaluation answered, valid for
//! [`TICKET_LIFETIME`]. Its key comes from `ECS_MASTER_KEY`, so every
//! instance accepts every instance's tickets; without a master key (the
//! development mode) each process draws its own.

use std::convert::Infallible;
use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use ecs_domain::{NamespaceName, Scope};
use ecs_projections::ProjectionStatus;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use utoipa::{IntoParams, ToSchema};

use crate::routes::resolved::resolve_context;
use crate::routes::watch::HEARTBEAT;
use crate::state::AppState;

/// The path of the stream, relative to the OFREP base URL's origin.
pub const EVENTS_PATH: &str = "/ofrep/v1/events";

/// How long a stream URL is accepted: a provider gets a fresh one with every
/// bulk evaluation (on start, on a context change, after a notice).
pub const TICKET_LIFETIME: Duration = Duration::from_secs(3600);

/// How long an unseen page keeps its stream open (OFREP's
/// `inactivityDelaySec`, the protocol's default).
const INACTIVITY_DELAY_SECS: u64 = 120;

/// One entry of a bulk answer's `eventStreams`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventStream {
    /// Always `sse`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The stream on the OFREP server's own origin.
    pub endpoint: EventStreamEndpoint,
    pub inactivity_delay_sec: u64,
}

/// OFREP's `endpoint`: a request URI on the provider's configured origin.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventStreamEndpoint {
    pub request_uri: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Ticket {
    /// The flags namespace.
    ns: String,
    /// The ECS context, as resolved reads take it.
    ctx: Scope,
    /// Unix seconds.
    exp: u64,
}

fn key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(rand::random)
}

fn signing_key(app: &AppState) -> [u8; 32] {
    match &app.settings.master_key {
        Some(master) => Sha256::new()
            .chain_update(b"ecs ofrep event stream tickets\0")
            .chain_update(master.expose().as_bytes())
            .finalize()
            .into(),
        None => *key(),
    }
}

/// The `eventStreams` entry for a caller authorized to evaluate `namespace`
/// in `scope`.
pub fn event_stream(
    app: &AppState,
    namespace: &NamespaceName,
    scope: &Scope,
) -> Option<EventStream> {
    let exp = time::OffsetDateTime::now_utc().unix_timestamp() as u64 + TICKET_LIFETIME.as_secs();
    let ticket = Ticket {
        ns: namespace.to_string(),
        ctx: scope.clone(),
        exp,
    };
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &ticket,
        &EncodingKey::from_secret(&signing_key(app)),
    )
    .inspect_err(|error| tracing::error!(%error, "cannot sign an OFREP stream ticket"))
    .ok()?;
    Some(EventStream {
        kind: "sse".to_owned(),
        endpoint: EventStreamEndpoint {
            request_uri: format!("{EVENTS_PATH}?ticket={token}"),
        },
        inactivity_delay_sec: INACTIVITY_DELAY_SECS,
    })
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct EventsQuery {
    /// The ticket from a bulk evaluation's `eventStreams`.
    ticket: Option<String>,
}

/// Change notices for the flags of one context.
#[utoipa::path(get, path = "/ofrep/v1/events", tag = "flags",
    params(EventsQuery),
    responses(
        (status = 200, content_type = "text/event-stream",
            description = "server-sent events: `event: message`, `id: <position>`, \
                `data: {\"type\": \"refetchEvaluation\", \"lastModified\": <unix seconds>}` \
                whenever the flags document of the ticket's context changes; a comment line \
                every 15 s while idle"),
        (status = 401, description = "a ticket that is not valid or has expired: `{errorCode, errorDetails}`"),
    ))]
pub async fn events(State(app): State<AppState>, Query(query): Query<EventsQuery>) -> Response {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.required_spec_claims = ["exp".to_owned()].into();
    validation.leeway = 0;
    let ticket = jsonwebtoken::decode::<Ticket>(
        query.ticket.as_deref().unwrap_or_default(),
        &DecodingKey::from_secret(&signing_key(&app)),
        &validation,
    )
    .ok()
    .and_then(|data| {
        NamespaceName::parse(&data.claims.ns)
            .ok()
            .map(|ns| (ns, data.claims.ctx))
    });
    let Some((namespace, scope)) = ticket else {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({
                "errorCode": "GENERAL",
                "errorDetails": "the ticket parameter is missing, not valid or expired; evaluate the flags again for a new one",
            })),
        )
            .into_response();
    };
    // Subscribe before reading, so no change between the two goes unseen.
    let mut status = app.projections.subscribe();
    status.borrow_and_update();
    let last = resolve_context(&app, &namespace, &scope, None)
        .await
        .ok()
        .map(|r| r.values);
    let notifier = Notifier {
        app,
        namespace,
        scope,
        status,
        last,
    };
    let stream = futures::stream::unfold(notifier, Notifier::next);
    (
        [(
            HeaderName::from_static("x-accel-buffering"),
            HeaderValue::from_static("no"),
        )],
        Sse::new(stream).keep_alive(KeepAlive::new().interval(HEARTBEAT)),
    )
        .into_response()
}

struct Notifier {
    app: AppState,
    namespace: NamespaceName,
    scope: Scope,
    status: watch::Receiver<ProjectionStatus>,
    /// The flags document last seen (`None`: none, or not readable).
    last: Option<Value>,
}

impl Notifier {
    /// The next notice: when the context's flags document differs from the
    /// last one seen. Ends when the server drains or the projector stops.
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            tokio::select! {
                changed = self.status.changed() => changed.ok()?,
                _ = self.app.drain.started() => return None,
            }
            self.status.borrow_and_update();
            let Ok(current) = resolve_context(&self.app, &self.namespace, &self.scope, None).await
            else {
                continue;
            };
            if self.last.as_ref() == Some(&current.values) {
                continue;
            }
            self.last = Some(current.values);
            let data = json!({
                "type": "refetchEvaluation",
                "lastModified": time::OffsetDateTime::now_utc().unix_timestamp(),
            });
            let event = Event::default()
                .event("message")
                .id(current.position.to_string())
                .data(data.to_string());
            return Some((Ok(event), self));
        }
    }
}
