//! W3C trace context carried in NATS message headers, so one trace follows a
//! change from the HTTP request through the events stream to its readers.
//!
//! The context is that of the current `tracing` span (through
//! `tracing-opentelemetry`); with no OpenTelemetry layer installed there is
//! none and nothing is written or read.

use async_nats::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C header naming the trace and parent span.
pub const TRACEPARENT: &str = "traceparent";

struct NatsInjector<'a>(&'a mut HeaderMap);

impl Injector for NatsInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

struct NatsExtractor<'a>(&'a HeaderMap);

impl Extractor for NatsExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_ref()).collect()
    }
}

/// Writes the current span's trace context into a message's headers.
pub fn inject(headers: &mut HeaderMap) {
    let context = tracing::Span::current().context();
    if context.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&context, &mut NatsInjector(headers));
    }
}

/// The current span's `traceparent`, when it is part of a trace.
pub fn current_traceparent() -> Option<String> {
    let mut headers = HeaderMap::new();
    inject(&mut headers);
    headers.get(TRACEPARENT).map(|v| v.as_str().to_owned())
}

/// The remote span context a message's headers name, when valid.
pub fn remote_context(headers: Option<&HeaderMap>) -> Option<opentelemetry::Context> {
    let context = TraceContextPropagator::new().extract(&NatsExtractor(headers?));
    context.span().span_context().is_valid().then_some(context)
}

/// Makes `span` continue the traces of `messages`' headers: the first one
/// becomes its parent, the others (a batch applied together) links.
pub fn continue_traces<'a>(
    span: &tracing::Span,
    messages: impl IntoIterator<Item = Option<&'a HeaderMap>>,
) {
    let mut parent_set = false;
    for context in messages.into_iter().filter_map(remote_context) {
        if parent_set {
            span.add_link(context.span().span_context().clone());
        } else {
            // Only fails when the span is disabled: nothing to continue.
            let _ = span.set_parent(context);
            parent_set = true;
        }
    }
}
