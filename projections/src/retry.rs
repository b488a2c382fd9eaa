//! Retrying a projection step while a dependency (PostgreSQL, NATS) is
//! unavailable.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Runs `attempt` in `span` until it succeeds, waiting with a [`Backoff`]
/// after each failure (PostgreSQL unavailable, say); fails only on shutdown.
pub(crate) async fn retry_with_backoff<T, F, Fut>(
    span: &tracing::Span,
    shutdown: &CancellationToken,
    mut attempt: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut backoff = Backoff::default();
    loop {
        match attempt().instrument(span.clone()).await {
            Ok(value) => return Ok(value),
            Err(error) => {
                tracing::warn!(parent: span, error = format!("{error:#}"), "cannot apply; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => anyhow::bail!("shutting down"),
                    _ = tokio::time::sleep(backoff.next()) => {}
                }
            }
        }
    }
}

/// Exponential backoff from 100 ms to 5 s.
#[derive(Default)]
pub(crate) struct Backoff(u32);

impl Backoff {
    pub(crate) fn next(&mut self) -> Duration {
        let delay =
            Duration::from_millis(100 * 2u64.pow(self.0.min(6))).min(Duration::from_secs(5));
        self.0 += 1;
        delay
    }
}
