//! Graceful shutdown: the signals that start it and the drain the handlers
//! share.
//!
//! A shutdown has three steps (`docs/operations.md`, "Shutdown"):
//! 1. **drain**: the [`Drain`] starts; every new request (`/readyz` too) is
//!    answered 503 `shutting-down` with `Retry-After` and `Connection: close`,
//!    server-sent event streams end, and the requests already running go on;
//! 2. once none runs (or `ECS_SHUTDOWN_GRACE` passed), the listener
//!    closes and the open connections are closed as soon as they are idle,
//!    within what is left of the grace period;
//! 3. the projector, the feed publisher and the audit tasks stop (writes that
//!    were answered have been projected: a write waits for its projection).

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TaskTrackerToken;

/// The server's drain: whether it started, and the requests still running.
#[derive(Clone, Debug)]
pub struct Drain {
    started: CancellationToken,
    running: TaskTracker,
}

impl Drain {
    /// A drain that starts when `started` is cancelled.
    pub fn new(started: CancellationToken) -> Self {
        Drain {
            started,
            running: TaskTracker::new(),
        }
    }

    pub fn is_draining(&self) -> bool {
        self.started.is_cancelled()
    }

    /// Completes when the drain starts.
    pub async fn started(&self) {
        self.started.cancelled().await;
    }

    /// Marks a request as running until the token is dropped.
    pub(crate) fn track(&self) -> TaskTrackerToken {
        self.running.token()
    }

    /// Completes when the drain has started and no request runs any more.
    pub async fn idle(&self) {
        self.started.cancelled().await;
        self.running.close();
        self.running.wait().await;
    }

    /// How many requests run now.
    pub fn running(&self) -> usize {
        self.running.len()
    }
}

/// Completes at the first SIGTERM or SIGINT, naming it.
pub async fn signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => tokio::select! {
                _ = terminate.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "SIGINT",
            },
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the server");
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
