//! What Marie reports about itself: metrics and job traces, recorded through the
//! OpenTelemetry API. The node installs the providers (a Prometheus exporter, an OTLP
//! exporter); without them every call here is a cheap no-op.

pub mod job_trace;
pub mod metrics;
