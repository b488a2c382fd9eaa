//! The HTTP server: accepts connections up to a cap, bounds how long a client
//! may take to send its headers, tells handlers the peer's address, and
//! drains on shutdown (see [`crate::shutdown`]).
//!
//! `axum::serve` offers none of the limits, so connections are served here
//! with hyper directly (HTTP/1.1, as `axum::serve` did).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt as _;

use crate::listener::{Connection, HttpListener};
use crate::shutdown::Drain;

/// How long a stop waits for one more connection from the listen backlog
/// before it closes the listener.
const BACKLOG_WAIT: Duration = Duration::from_millis(20);

/// How long a stop waits, after the listener closed, for the requests of the
/// connections accepted last to arrive before idle connections are closed.
const LINGER: Duration = Duration::from_millis(250);

/// The connection limits of the server.
#[derive(Debug, Clone, Copy)]
pub struct ServeSettings {
    /// Open connections at most; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers; an idle
    /// keep-alive connection is closed after it too.
    pub header_timeout: Duration,
    /// How long a shutdown waits for running requests and open connections.
    pub grace: Duration,
}

/// Serves `router` on `listener` until the drain has finished (see
/// [`crate::shutdown`]).
pub async fn serve(
    mut listener: HttpListener,
    router: Router,
    settings: ServeSettings,
    drain: Drain,
) -> anyhow::Result<()> {
    let connections = Arc::new(Semaphore::new(settings.max_connections));
    let graceful = GracefulShutdown::new();
    // HTTP/1.1, as before with `axum::serve`. The header-read timer starts
    // as soon as a connection waits for a request, so a client that sends
    // nothing is disconnected as one that sends its headers slowly.
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_timeout);

    let serve_connection = |stream: Connection, peer: SocketAddr, permit: OwnedSemaphorePermit| {
        let router = router.clone();
        let service = tower::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request.map(axum::body::Body::new))
        });
        let connection =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
            drop(permit);
        });
    };

    // Until the drain starts, and while requests still run after it (whose
    // clients may send more: they are answered 503 rather than refused a
    // connection), accept connections.
    let mut deadline: Option<Instant> = None;
    loop {
        let until = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        let stop = async {
            tokio::select! {
                _ = drain.idle() => {}
                _ = tokio::time::sleep_until(until.into()) => {}
            }
        };
        let accepted = tokio::select! {
            biased;
            _ = stop => break,
            _ = drain.started(), if deadline.is_none() => {
                deadline = Some(Instant::now() + settings.grace);
                tracing::info!(running = drain.running(), "draining: no new work is accepted");
                continue;
            }
            accepted = accept(&mut listener, &connections) => accepted,
        };
        let Some((stream, peer, permit)) = accepted else {
            continue;
        };
        serve_connection(stream, peer, permit);
    }
    // Connections the kernel completed that were not accepted yet would be
    // reset when the listener closes, cutting requests their clients already
    // sent: take each, so its request is answered (`503 shutting-down`, with
    // `Connection: close`) before the listener goes.
    // (A short wait per accept, not a bare poll: the reactor may not have
    // seen a waiting connection's readiness yet.)
    while let Ok(Some((stream, peer, permit))) =
        tokio::time::timeout(BACKLOG_WAIT, accept(&mut listener, &connections)).await
    {
        serve_connection(stream, peer, permit);
    }
    drop(listener);
    let deadline = deadline.unwrap_or_else(|| Instant::now() + settings.grace);
    // A connection accepted last may not have sent its request yet; closing
    // it as idle would cut a request already on its way. Wait a moment, so
    // that its request is read and answered (503 shutting-down).
    let linger = LINGER.min(deadline.saturating_duration_since(Instant::now()));
    tokio::time::sleep(linger).await;
    let open = graceful.count();
    tracing::info!(
        open,
        "the listener is closed; closing connections as they go idle"
    );
    if tokio::time::timeout_at(deadline.into(), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "the shutdown grace period (ECS_SHUTDOWN_GRACE) ended with connections open; \
             they are closed"
        );
    }
    Ok(())
}

/// The next connection (its TLS handshake done, when the API serves HTTPS),
/// once one is allowed by the cap. Accept errors (such as too many open
/// files) are retried by the listener.
async fn accept(
    listener: &mut HttpListener,
    connections: &Arc<Semaphore>,
) -> Option<(Connection, SocketAddr, OwnedSemaphorePermit)> {
    let permit = connections.clone().acquire_owned().await.ok()?;
    let (stream, peer) = axum::serve::Listener::accept(listener).await;
    Some((stream, peer, permit))
}
