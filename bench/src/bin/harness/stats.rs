//! Latency samples and their percentiles.

use std::time::Duration;

use crate::report::*;

pub(crate) struct Stats {
    pub(crate) ok: usize,
    pub(crate) errors: usize,
    pub(crate) elapsed: Duration,
    /// Sorted latencies of the successful operations.
    pub(crate) latencies: Vec<Duration>,
    pub(crate) first_error: Option<String>,
}

impl Stats {
    pub(crate) fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    pub(crate) fn pct(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i.min(self.latencies.len() - 1)]
    }

    pub(crate) fn line(&self, label: &str) -> String {
        let mut s = format!(
            "{label:<44} {:>10.0} ops/s   p50 {:>8}   p99 {:>8}   max {:>8}   ({} ok, {} errors)",
            self.rate(),
            ms(self.pct(0.50)),
            ms(self.pct(0.99)),
            ms(self.latencies.last().copied().unwrap_or_default()),
            self.ok,
            self.errors
        );
        if let Some(e) = &self.first_error {
            s.push_str(&format!("\n    first error: {e}"));
        }
        s
    }

    /// The same figures as a Markdown cell: rate, p50 and p99 (and errors).
    pub(crate) fn cell(&self, unit: &str) -> String {
        let mut s = format!(
            "{} {unit}, p50 {}, p99 {}",
            thousands(self.rate()),
            ms(self.pct(0.50)),
            ms(self.pct(0.99))
        );
        if self.errors > 0 {
            s.push_str(&format!(" ({} errors)", self.errors));
        }
        s
    }
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

// ---------------------------------------------------------------------------
// --markdown: the figures as rows of one Markdown table
// ---------------------------------------------------------------------------
