//! Continues the trace of a change when the client applies it: the feed
//! message carries the W3C `traceparent` of the request that made the
//! change, so the apply span joins that trace in whatever OpenTelemetry
//! pipeline the application installed (none: the span stays local).

use std::collections::HashMap;

use ecs_domain::feed::FeedMessage;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The span of applying one feed message, a child of the change's trace.
pub(crate) fn apply_span(message: &FeedMessage) -> tracing::Span {
    let span = tracing::info_span!(
        "apply",
        position = message.position,
        key = %message.item.key()
    );
    if let Some(traceparent) = &message.traceparent {
        let carrier = HashMap::from([("traceparent".to_owned(), traceparent.clone())]);
        let context = TraceContextPropagator::new().extract(&carrier);
        if context.span().span_context().is_valid() {
            // Only fails when the span is disabled: nothing to continue.
            let _ = span.set_parent(context);
        }
    }
    span
}
