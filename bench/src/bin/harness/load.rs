//! A closed-loop load generator at a fixed concurrency.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::stats::*;

/// Runs `op(worker, i)` in `concurrency` tasks for `duration` (after a short
/// unmeasured warm-up), each task issuing its next operation as soon as the
/// previous one answered.
pub(crate) async fn load<F, Fut>(concurrency: usize, duration: Duration, op: F) -> Stats
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let op = Arc::new(op);
    let counter = Arc::new(AtomicU64::new(0));
    let warmup = (duration / 5).min(Duration::from_secs(2));
    let start = Instant::now();
    let measure_from = start + warmup;
    let stop_at = measure_from + duration;
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let op = op.clone();
        let counter = counter.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(16_384);
            let (mut errors, mut first_error) = (0usize, None);
            loop {
                let began = Instant::now();
                if began >= stop_at {
                    break;
                }
                let i = counter.fetch_add(1, Ordering::Relaxed);
                let result = op(worker, i).await;
                let took = began.elapsed();
                if began < measure_from {
                    continue;
                }
                match result {
                    Ok(()) => latencies.push(took),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
            (latencies, errors, first_error)
        }));
    }
    let mut stats = Stats {
        ok: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
        first_error: None,
    };
    for task in tasks {
        match task.await {
            Ok((latencies, errors, first_error)) => {
                stats.latencies.extend(latencies);
                stats.errors += errors;
                if stats.first_error.is_none() {
                    stats.first_error = first_error;
                }
            }
            Err(e) => {
                stats.errors += 1;
                stats.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    // Operations still running at `stop_at` finish late: measure to the end.
    stats.elapsed = measure_from.elapsed().max(duration);
    stats.ok = stats.latencies.len();
    stats.latencies.sort_unstable();
    stats
}

// ---------------------------------------------------------------------------
// reads: resolved reads over HTTP vs a static axum handler
// ---------------------------------------------------------------------------
