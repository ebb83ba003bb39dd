//! The node's telemetry exporters: Prometheus text for `GET /metrics`, and OTLP traces
//! when an endpoint is configured (`telemetry.otlp_endpoint` or the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT`; off when neither is set).
//!
//! Marie's code records through the global OpenTelemetry providers installed here
//! (`marie_actors::telemetry`); nothing is recorded twice.

use anyhow::Context;
use opentelemetry::global;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use prometheus::{Encoder, Registry, TextEncoder};

use crate::config::TelemetryConfig;

/// The installed exporters. Keep it alive while the node runs; [`Telemetry::shutdown`]
/// flushes the spans not yet sent.
pub struct Telemetry {
    registry: Registry,
    meters: SdkMeterProvider,
    tracer: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Installs the global meter provider (Prometheus) and, when an endpoint is set, the
    /// global tracer provider (OTLP over HTTP). Call it outside the async runtime: the
    /// OTLP exporter runs its own thread with a blocking HTTP client.
    pub fn install(config: &TelemetryConfig) -> anyhow::Result<Telemetry> {
        let registry = Registry::new();
        // Names are written exactly as given: the scaling guide's PromQL, HPA and KEDA
        // examples use them, so no unit or `_total` suffix may be appended.
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .without_units()
            .without_counter_suffixes()
            .without_target_info()
            .scope_info_enabled(false)
            .build()
            .context("cannot set up the Prometheus exporter")?;
        let meters = SdkMeterProvider::builder().with_reader(exporter).build();
        global::set_meter_provider(meters.clone());

        let endpoint = config
            .otlp_endpoint
            .clone()
            .or_else(|| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok())
            .filter(|e| !e.is_empty());
        let tracer = match endpoint {
            Some(endpoint) => Some(tracer_provider(&endpoint, &config.service_name)?),
            None => None,
        };
        Ok(Telemetry {
            registry,
            meters,
            tracer,
        })
    }

    /// The metrics in the Prometheus text format.
    pub fn metrics_text(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "cannot encode the metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// Sends the spans still buffered and stops the exporters.
    pub fn shutdown(self) {
        if let Some(tracer) = self.tracer
            && let Err(e) = tracer.shutdown()
        {
            tracing::warn!(error = %e, "traces not fully flushed");
        }
        let _ = self.meters.shutdown();
    }
}

fn tracer_provider(endpoint: &str, service_name: &str) -> anyhow::Result<SdkTracerProvider> {
    let traces = if endpoint.ends_with("/v1/traces") {
        endpoint.to_owned()
    } else {
        format!("{}/v1/traces", endpoint.trim_end_matches('/'))
    };
    let exporter = SpanExporter::builder()
        .with_http()
        .with_endpoint(&traces)
        .build()
        .with_context(|| format!("cannot set up the OTLP exporter to {traces}"))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(service_name.to_owned())
                .build(),
        )
        .build();
    global::set_tracer_provider(provider.clone());
    marie_actors::telemetry::job_trace::enable();
    tracing::info!(endpoint = %traces, "exporting job traces over OTLP");
    Ok(provider)
}
