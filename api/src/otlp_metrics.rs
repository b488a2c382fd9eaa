//! Metrics over OTLP as well as Prometheus: a `metrics` recorder that hands
//! every update to the Prometheus recorder and to OpenTelemetry instruments
//! of the same names, which an OTLP exporter pushes periodically. Installed
//! only when OTLP is configured (`crate::telemetry`); without it the
//! Prometheus recorder is installed alone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;

use crate::exported_metrics::{BUCKETS, METRICS};

/// One OpenTelemetry instrument per metric name, built on first use.
#[derive(Clone)]
enum Instrument {
    Counter(opentelemetry::metrics::Counter<u64>),
    Gauge(opentelemetry::metrics::Gauge<f64>),
    Histogram(opentelemetry::metrics::Histogram<f64>),
}

/// Forwards to the Prometheus recorder and to OpenTelemetry.
pub struct FanOut<P> {
    prometheus: P,
    meter: Meter,
    instruments: Mutex<HashMap<String, Instrument>>,
}

impl<P: Recorder> FanOut<P> {
    pub fn new(prometheus: P, meter: Meter) -> Self {
        FanOut {
            prometheus,
            meter,
            instruments: Mutex::new(HashMap::new()),
        }
    }

    fn instrument(
        &self,
        name: &str,
        make: impl FnOnce(&Meter, String) -> Instrument,
    ) -> Instrument {
        let mut instruments = self.instruments.lock().unwrap_or_else(|e| e.into_inner());
        instruments
            .entry(name.to_owned())
            .or_insert_with(|| make(&self.meter, name.to_owned()))
            .clone()
    }
}

fn help(name: &str) -> String {
    METRICS
        .iter()
        .find(|m| m.name == name)
        .map_or_else(String::new, |m| m.help.to_owned())
}

fn attributes(key: &Key) -> Vec<KeyValue> {
    key.labels()
        .map(|l| KeyValue::new(l.key().to_owned(), l.value().to_owned()))
        .collect()
}

/// A counter on both sides; `absolute` becomes the increase since the last value.
struct BothCounter {
    prometheus: Counter,
    otel: opentelemetry::metrics::Counter<u64>,
    attributes: Vec<KeyValue>,
    last: AtomicU64,
}

impl CounterFn for BothCounter {
    fn increment(&self, value: u64) {
        self.prometheus.increment(value);
        self.last.fetch_add(value, Ordering::Relaxed);
        self.otel.add(value, &self.attributes);
    }

    fn absolute(&self, value: u64) {
        self.prometheus.absolute(value);
        let before = self.last.fetch_max(value, Ordering::Relaxed);
        self.otel
            .add(value.saturating_sub(before), &self.attributes);
    }
}

/// A gauge on both sides; increments keep the value to report.
struct BothGauge {
    prometheus: Gauge,
    otel: opentelemetry::metrics::Gauge<f64>,
    attributes: Vec<KeyValue>,
    value: AtomicU64,
}

impl BothGauge {
    fn update(&self, change: impl Fn(f64) -> f64) {
        let mut current = self.value.load(Ordering::Relaxed);
        loop {
            let next = change(f64::from_bits(current)).to_bits();
            match self
                .value
                .compare_exchange(current, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.otel.record(f64::from_bits(next), &self.attributes);
                    return;
                }
                Err(actual) => current = actual,
            }
        }
    }
}

impl GaugeFn for BothGauge {
    fn increment(&self, value: f64) {
        self.prometheus.increment(value);
        self.update(|v| v + value);
    }

    fn decrement(&self, value: f64) {
        self.prometheus.decrement(value);
        self.update(|v| v - value);
    }

    fn set(&self, value: f64) {
        self.prometheus.set(value);
        self.update(|_| value);
    }
}

struct BothHistogram {
    prometheus: Histogram,
    otel: opentelemetry::metrics::Histogram<f64>,
    attributes: Vec<KeyValue>,
}

impl HistogramFn for BothHistogram {
    fn record(&self, value: f64) {
        self.prometheus.record(value);
        self.otel.record(value, &self.attributes);
    }
}

impl<P: Recorder> Recorder for FanOut<P> {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.prometheus.describe_counter(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.prometheus.describe_gauge(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.prometheus.describe_histogram(key, unit, description);
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        let prometheus = self.prometheus.register_counter(key, metadata);
        let Instrument::Counter(otel) = self.instrument(key.name(), |meter, name| {
            Instrument::Counter(
                meter
                    .u64_counter(name.clone())
                    .with_description(help(&name))
                    .build(),
            )
        }) else {
            return prometheus;
        };
        Counter::from_arc(Arc::new(BothCounter {
            prometheus,
            otel,
            attributes: attributes(key),
            last: AtomicU64::new(0),
        }))
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        let prometheus = self.prometheus.register_gauge(key, metadata);
        let Instrument::Gauge(otel) = self.instrument(key.name(), |meter, name| {
            Instrument::Gauge(
                meter
                    .f64_gauge(name.clone())
                    .with_description(help(&name))
                    .build(),
            )
        }) else {
            return prometheus;
        };
        Gauge::from_arc(Arc::new(BothGauge {
            prometheus,
            otel,
            attributes: attributes(key),
            value: AtomicU64::new(0f64.to_bits()),
        }))
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        let prometheus = self.prometheus.register_histogram(key, metadata);
        let Instrument::Histogram(otel) = self.instrument(key.name(), |meter, name| {
            Instrument::Histogram(
                meter
                    .f64_histogram(name.clone())
                    .with_description(help(&name))
                    .with_boundaries(BUCKETS.to_vec())
                    .build(),
            )
        }) else {
            return prometheus;
        };
        Histogram::from_arc(Arc::new(BothHistogram {
            prometheus,
            otel,
            attributes: attributes(key),
        }))
    }
}
