//! Every metric ECS exports to Prometheus, with its help text.
//! `docs/observability.md` lists the same names (a test keeps them equal).

/// What kind of series a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One exported metric.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

const fn metric(name: &'static str, kind: Kind, help: &'static str) -> Metric {
    Metric { name, kind, help }
}

/// Histogram buckets, in seconds, for Prometheus and OTLP alike.
pub const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The catalogue.
pub const METRICS: &[Metric] = &[
    metric(
        "ecs_http_requests_total",
        Kind::Counter,
        "HTTP requests answered, by method, matched route and status.",
    ),
    metric(
        "ecs_http_request_duration_seconds",
        Kind::Histogram,
        "HTTP request latency in seconds, by method and matched route.",
    ),
    metric(
        "ecs_commands_total",
        Kind::Counter,
        "Commands by aggregate and outcome (accepted, unchanged, duplicate, rejected, conflict, unavailable, too-large).",
    ),
    metric(
        "ecs_append_duration_seconds",
        Kind::Histogram,
        "Latency of appending one command's message to the events stream, in seconds.",
    ),
    metric(
        "ecs_writes_not_in_effect_total",
        Kind::Counter,
        "Accepted writes answered before the projection applied them (the write wait ran out), by aggregate.",
    ),
    metric(
        "ecs_rollbacks_total",
        Kind::Counter,
        "Layer rollbacks accepted.",
    ),
    metric(
        "ecs_changes_total",
        Kind::Counter,
        "Changes published to the feed, by tenant (`_` for changes not scoped to a tenant).",
    ),
    metric(
        "ecs_projection_applied_position",
        Kind::Gauge,
        "The last events-stream position the PostgreSQL projection applied.",
    ),
    metric(
        "ecs_projection_lag_messages",
        Kind::Gauge,
        "Messages of the events stream not yet applied by the projection.",
    ),
    metric(
        "ecs_projection_messages_applied_total",
        Kind::Counter,
        "Events-stream messages applied by the projection.",
    ),
    metric(
        "ecs_projection_messages_skipped_total",
        Kind::Counter,
        "Unreadable messages skipped as an operator recorded.",
    ),
    metric(
        "ecs_projection_rebuilds_failed_total",
        Kind::Counter,
        "Projection rebuilds that failed.",
    ),
    metric(
        "ecs_projection_stopped",
        Kind::Gauge,
        "1 while a projection is stopped at an unreadable message, by projection.",
    ),
    metric(
        "ecs_feed_published_position",
        Kind::Gauge,
        "The last events-stream position published to the change feed.",
    ),
    metric(
        "ecs_feed_lag_messages",
        Kind::Gauge,
        "Positions the change feed is behind the projection.",
    ),
    metric(
        "ecs_sse_streams",
        Kind::Gauge,
        "Server-sent event streams open now (watch and feed subscribers).",
    ),
    metric(
        "ecs_drift_instances_behind",
        Kind::Gauge,
        "SDK instances behind the latest position of what they follow (reporting, not stale).",
    ),
    metric(
        "ecs_drift_instances_stale",
        Kind::Gauge,
        "SDK instances silent for three of their report intervals, or stopped.",
    ),
    metric(
        "ecs_drift_max_lag_seconds",
        Kind::Gauge,
        "Seconds since the first change the most-behind reporting SDK instance has not applied.",
    ),
    metric(
        "ecs_drift_reports_total",
        Kind::Counter,
        "Drift reports received from SDK clients, by way (nats, http) and outcome (accepted, refused, failed).",
    ),
    metric(
        "ecs_sdk_subscribers",
        Kind::Gauge,
        "Watchers open in the reporting (not stale) SDK instances.",
    ),
    metric(
        "ecs_propagation_seconds",
        Kind::Histogram,
        "Seconds from a change's acceptance to its apply in an SDK client, as clients report them, by service.",
    ),
    metric(
        "ecs_auth_failures_total",
        Kind::Counter,
        "Failed authentications.",
    ),
    metric(
        "ecs_audit_refusals_total",
        Kind::Counter,
        "Refused requests recorded in the audit log, by kind.",
    ),
    metric(
        "ecs_audit_stream_usage_ratio",
        Kind::Gauge,
        "Bytes in the audit stream over its limit.",
    ),
    metric(
        "ecs_limited_total",
        Kind::Counter,
        "Requests refused or cut by a limit, by limit.",
    ),
];

/// Registers every metric's help text with the installed recorder, and
/// starts the counters without labels at zero so they are scraped (and
/// alert rules see them) before their first event.
pub fn describe() {
    for metric in METRICS {
        match metric.kind {
            Kind::Counter => metrics::describe_counter!(metric.name, metric.help),
            Kind::Gauge => metrics::describe_gauge!(metric.name, metric.help),
            Kind::Histogram => metrics::describe_histogram!(metric.name, metric.help),
        }
    }
    for name in [
        "ecs_rollbacks_total",
        "ecs_auth_failures_total",
        "ecs_projection_messages_skipped_total",
        "ecs_projection_rebuilds_failed_total",
    ] {
        metrics::counter!(name).absolute(0);
    }
    metrics::gauge!("ecs_sse_streams").set(0.0);
    for gauge in [
        "ecs_drift_instances_behind",
        "ecs_drift_instances_stale",
        "ecs_drift_max_lag_seconds",
        "ecs_sdk_subscribers",
    ] {
        metrics::gauge!(gauge).set(0.0);
    }
    // The aggregates whose writes must be in effect before they answer.
    for aggregate in [
        aggregate_type::<ecs_domain::Namespace>(),
        aggregate_type::<ecs_domain::Tenant>(),
        aggregate_type::<ecs_domain::Token>(),
    ] {
        metrics::counter!("ecs_writes_not_in_effect_total", "aggregate" => aggregate).absolute(0);
    }
    for projection in ecs_projections::halt::ProjectionName::ALL {
        metrics::gauge!("ecs_projection_stopped", "projection" => projection.as_str()).set(0.0);
    }
}

fn aggregate_type<A: ecs_commands::Addressed>() -> String {
    A::aggregate_type()
}
