//! One trace per job: `job.submit` (Gateway) is the root, or a child of the caller's
//! span; `job.queued` (the wait for a slot), `job.leased` (one attempt, on the
//! CapacityManager) with its child `job.execute` (the handler run, on the executor),
//! and `job.complete` (the end) hang below it. The W3C trace context travels inside the
//! job's messages (`TraceContext`), so the spans join across nodes.
//!
//! Spans are made with the OpenTelemetry API rather than `tracing` spans because
//! `job.queued` is only known when the job leaves the queue: its start time is set
//! after the fact.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use marie_protocol::TraceContext;
use marie_protocol::messages::RunRef;
use opentelemetry::global::{self, BoxedTracer};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{Span, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;

/// Whether job spans are recorded: off until the node installs a trace exporter, so a
/// node without one builds no span, attribute or carrier on its hot path.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns job spans on (the node calls this once it has installed a trace exporter).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether job spans are recorded.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The attributes every span of a run carries.
pub fn job_attributes(run: RunRef, pool: &str, handler: &str) -> Vec<KeyValue> {
    vec![
        KeyValue::new("job.id", run.job.to_string()),
        KeyValue::new("pool", pool.to_owned()),
        KeyValue::new("handler", handler.to_owned()),
        KeyValue::new("attempt", i64::from(run.attempt)),
    ]
}

/// The tracer of Marie's job spans.
pub fn tracer() -> BoxedTracer {
    global::tracer("marie")
}

/// The context carried in a job's messages (empty: a new root).
pub fn context_of(trace: &TraceContext) -> Context {
    if !enabled() {
        return Context::new();
    }
    TraceContextPropagator::new().extract(&Carrier(&trace.0))
}

/// The carrier of `cx`, to put in a job's messages.
pub fn carrier_of(cx: &Context) -> TraceContext {
    let mut carrier = TraceContext::default();
    if !enabled() {
        return carrier;
    }
    TraceContextPropagator::new().inject_context(cx, &mut CarrierMut(&mut carrier.0));
    carrier
}

/// Reads trace headers from a job's carrier.
struct Carrier<'a>(&'a BTreeMap<String, String>);

impl Extractor for Carrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// Writes trace headers into a job's carrier.
struct CarrierMut<'a>(&'a mut BTreeMap<String, String>);

impl Injector for CarrierMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

/// Starts span `name` below `parent` with `attributes`; returns the context holding it
/// (`parent` itself when spans are off).
pub fn start(
    name: &'static str,
    parent: &Context,
    attributes: impl FnOnce() -> Vec<KeyValue>,
) -> Context {
    if !enabled() {
        return parent.clone();
    }
    let attributes = attributes();
    let tracer = tracer();
    let span = tracer
        .span_builder(name)
        .with_attributes(attributes)
        .start_with_context(&tracer, parent);
    parent.with_span(span)
}

/// Records span `name` below `parent` that started `ago` and ends now.
pub fn record_past(
    name: &'static str,
    parent: &Context,
    ago: Duration,
    attributes: impl FnOnce() -> Vec<KeyValue>,
) {
    if !enabled() {
        return;
    }
    let attributes = attributes();
    let tracer = tracer();
    let start = SystemTime::now()
        .checked_sub(ago)
        .unwrap_or_else(SystemTime::now);
    tracer
        .span_builder(name)
        .with_start_time(start)
        .with_attributes(attributes)
        .start_with_context(&tracer, parent)
        .end();
}

/// Ends the span held by `cx`, recording its `outcome`.
pub fn end(cx: &Context, outcome: impl FnOnce() -> String) {
    if !enabled() {
        return;
    }
    let span = cx.span();
    span.set_attribute(KeyValue::new("outcome", outcome()));
    span.end();
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    #[test]
    fn the_context_survives_the_carrier() {
        enable();
        let span_context = SpanContext::new(
            TraceId::from(0x0af7651916cd43dd8448eb211c80319c),
            SpanId::from(0xb7ad6b7169203331),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let cx = Context::new().with_remote_span_context(span_context.clone());
        let carrier = carrier_of(&cx);
        assert_eq!(
            carrier.0.get("traceparent").map(String::as_str),
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        );
        let back = context_of(&carrier);
        assert_eq!(
            back.span().span_context().trace_id(),
            span_context.trace_id()
        );
        assert_eq!(back.span().span_context().span_id(), span_context.span_id());
    }

    #[test]
    fn an_empty_carrier_starts_a_new_trace() {
        assert!(
            !context_of(&TraceContext::default())
                .span()
                .span_context()
                .is_valid()
        );
    }
}
