//! Logs, traces and OTLP metrics: the process's `tracing` subscriber, writing
//! text or JSON log lines and, when OTLP is configured, exporting spans as
//! OpenTelemetry traces and the metrics (`crate::otlp_metrics`) as
//! OpenTelemetry metrics.
//!
//! Both are off by default. They are on when the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is
//! set, unless `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`;
//! `OTEL_METRICS_EXPORTER=none` keeps metrics to Prometheus alone. The
//! exporters speak OTLP/HTTP protobuf and read the other `OTEL_*` variables
//! (headers, timeout, batch sizes, export interval, sampler, resource
//! attributes) themselves.

use std::sync::OnceLock;

use anyhow::Context as _;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// Where spans go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Traces {
    /// Nowhere: only the log.
    Off,
    /// To the OTLP endpoint of the `OTEL_*` variables.
    FromEnvironment,
    /// To this OTLP/HTTP traces URL (`…/v1/traces`).
    To(String),
}

impl Traces {
    /// What the standard OpenTelemetry variables ask for.
    pub fn from_env() -> Traces {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let disabled = var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"));
        let endpoint = var("OTEL_EXPORTER_OTLP_ENDPOINT")
            .or_else(|| var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
            .is_some();
        if endpoint && !disabled {
            Traces::FromEnvironment
        } else {
            Traces::Off
        }
    }
}

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    /// `ECS_LOG_FORMAT=json` or text.
    pub fn from_env() -> LogFormat {
        if std::env::var("ECS_LOG_FORMAT").is_ok_and(|f| f == "json") {
            LogFormat::Json
        } else {
            LogFormat::Text
        }
    }
}

/// The installed telemetry; dropping it flushes and stops the exporters.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    meters: Option<SdkMeterProvider>,
}

/// The meter the metrics recorder exports through, once OTLP metrics are on.
static OTLP_METER: OnceLock<opentelemetry::metrics::Meter> = OnceLock::new();

/// The OTLP meter, when [`Telemetry::install`] turned OTLP metrics on.
pub fn otlp_meter() -> Option<opentelemetry::metrics::Meter> {
    OTLP_METER.get().cloned()
}

fn metrics_disabled() -> bool {
    std::env::var("OTEL_METRICS_EXPORTER").is_ok_and(|v| v.trim().eq_ignore_ascii_case("none"))
}

impl Telemetry {
    /// Installs the process's subscriber: the log filtered by `RUST_LOG`
    /// (default `info`) in `format`, and the OTLP exporter of `traces`.
    /// Fails when a subscriber is already installed or the exporter cannot
    /// be built.
    pub fn install(format: LogFormat, traces: Traces) -> anyhow::Result<Telemetry> {
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
        let provider = match &traces {
            Traces::Off => None,
            Traces::FromEnvironment => Some(provider(None)?),
            Traces::To(url) => Some(provider(Some(url))?),
        };
        let meters = match &traces {
            Traces::Off => None,
            _ if metrics_disabled() => None,
            Traces::FromEnvironment => Some(meter_provider(None)?),
            Traces::To(url) => Some(meter_provider(Some(
                &url.replace("/v1/traces", "/v1/metrics"),
            ))?),
        };
        if let Some(meters) = &meters {
            // The recorder is installed with the first application; it
            // forwards to OTLP from then on.
            let _ = OTLP_METER.set(meters.meter("ecs"));
        }
        let otel = provider.as_ref().map(|p| {
            tracing_opentelemetry::layer()
                .with_tracer(p.tracer("ecs"))
                .with_tracked_inactivity(false)
        });
        let log = match format {
            LogFormat::Json => tracing_subscriber::fmt::layer().json().boxed(),
            LogFormat::Text => tracing_subscriber::fmt::layer().boxed(),
        };
        tracing_subscriber::registry()
            .with(filter)
            .with(otel)
            .with(log)
            .try_init()
            .context("a tracing subscriber is already installed")?;
        Ok(Telemetry { provider, meters })
    }

    /// Exports every finished span, and the metrics, now.
    pub fn flush(&self) {
        if let Some(provider) = &self.provider
            && let Err(error) = provider.force_flush()
        {
            tracing::warn!(%error, "cannot export traces");
        }
        if let Some(meters) = &self.meters
            && let Err(error) = meters.force_flush()
        {
            tracing::warn!(%error, "cannot export metrics");
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "cannot export the last traces");
        }
        if let Some(meters) = self.meters.take()
            && let Err(error) = meters.shutdown()
        {
            tracing::warn!(%error, "cannot export the last metrics");
        }
    }
}

/// A tracer provider batching spans to OTLP/HTTP, at `url` or where the
/// `OTEL_*` variables say.
fn provider(url: Option<&String>) -> anyhow::Result<SdkTracerProvider> {
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary);
    if let Some(url) = url {
        exporter = exporter.with_endpoint(url.clone());
    }
    let exporter = exporter.build().context("cannot build the OTLP exporter")?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource())
        .build())
}

/// A meter provider pushing metrics to OTLP/HTTP periodically (every 60 s,
/// or `OTEL_METRIC_EXPORT_INTERVAL` ms), at `url` or where the `OTEL_*`
/// variables say.
fn meter_provider(url: Option<&String>) -> anyhow::Result<SdkMeterProvider> {
    let mut exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary);
    if let Some(url) = url {
        exporter = exporter.with_endpoint(url.clone());
    }
    let exporter = exporter
        .build()
        .context("cannot build the OTLP metrics exporter")?;
    Ok(SdkMeterProvider::builder()
        .with_periodic_exporter(exporter)
        .with_resource(resource())
        .build())
}

fn resource() -> Resource {
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("ecs");
    }
    resource.build()
}

/// The span of one HTTP request: a child of the W3C `traceparent` the client
/// sent, naming the request, correlation and trace ids so every log line
/// inside it carries them.
pub fn request_span(request: &http::Request<axum::body::Body>) -> tracing::Span {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        uri = %request.uri().path(),
        request_id = %header("x-request-id"),
        correlation_id = %header("x-correlation-id"),
        trace_id = tracing::field::Empty,
        actor = tracing::field::Empty,
    );
    let parent = TraceContextPropagator::new()
        .extract(&opentelemetry_http::HeaderExtractor(request.headers()));
    let remote = parent.span().span_context().trace_id();
    if parent.span().span_context().is_valid() {
        // Only fails when the span is disabled (filtered out).
        let _ = span.set_parent(parent);
    }
    let own = span.context().span().span_context().trace_id();
    let trace_id = if own == opentelemetry::TraceId::INVALID {
        remote
    } else {
        own
    };
    if trace_id != opentelemetry::TraceId::INVALID {
        span.record("trace_id", tracing::field::display(trace_id));
    }
    span
}
