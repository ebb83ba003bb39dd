//! Inference metrics in the manner of Triton's, labelled `executor=<pool name>`:
//!
//! | name | kind | meaning |
//! |---|---|---|
//! | `marie_inference_batch_size` | histogram | inputs per forward pass |
//! | `marie_inference_queue_seconds` | histogram | per batch: how long its oldest input waited |
//! | `marie_inference_compute_seconds` | histogram | per batch: time in forward passes (with any split retries) |
//! | `marie_inference_count_total` | counter | inputs that got an output |
//! | `marie_inference_exec_count_total` | counter | forward passes run |
//! | `marie_executor_cold_start_seconds` | histogram | model load time, at start and at every unpark |
//!
//! Instruments come from `opentelemetry::global::meter("marie")`, which the node points
//! at its Prometheus exporter before any pool starts.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter};

/// Bucket bounds of the time histograms, in seconds (queue and compute times are short;
/// a cold start can take minutes).
const SECONDS_BUCKETS: [f64; 17] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0,
];

/// Bucket bounds of the batch size histogram.
const BATCH_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// The instruments one pool's model records into.
#[derive(Clone, Debug)]
pub struct InferenceMetrics {
    labels: [KeyValue; 1],
    batch_size: Histogram<u64>,
    queue: Histogram<f64>,
    compute: Histogram<f64>,
    count: Counter<u64>,
    exec_count: Counter<u64>,
    cold_start: Histogram<f64>,
}

impl InferenceMetrics {
    /// The instruments of `pool`, from the global meter provider.
    pub fn register(pool: &str) -> Self {
        Self::with_meter(&opentelemetry::global::meter("marie"), pool)
    }

    /// The instruments of `pool`, from `meter`.
    pub fn with_meter(meter: &Meter, pool: &str) -> Self {
        let seconds = |name: &'static str, description: &'static str| {
            meter
                .f64_histogram(name)
                .with_description(description)
                .with_boundaries(SECONDS_BUCKETS.to_vec())
                .build()
        };
        InferenceMetrics {
            labels: [KeyValue::new("executor", pool.to_owned())],
            batch_size: meter
                .u64_histogram("marie_inference_batch_size")
                .with_description("Inputs per forward pass")
                .with_boundaries(BATCH_BUCKETS.to_vec())
                .build(),
            queue: seconds(
                "marie_inference_queue_seconds",
                "Per batch, how long its oldest input waited for the model",
            ),
            compute: seconds(
                "marie_inference_compute_seconds",
                "Per batch, time spent in forward passes",
            ),
            count: meter
                .u64_counter("marie_inference_count_total")
                .with_description("Inputs that got an output from the model")
                .build(),
            exec_count: meter
                .u64_counter("marie_inference_exec_count_total")
                .with_description("Forward passes run")
                .build(),
            cold_start: seconds(
                "marie_executor_cold_start_seconds",
                "Time to load the model, at start and at every unpark",
            ),
        }
    }

    /// A batch ran: its oldest input waited `queued`; `passes` are the sizes of the
    /// forward passes it took (more than one after an out-of-memory split), `compute`
    /// their time; `succeeded` inputs got an output.
    pub fn batch(&self, queued: Duration, passes: &[usize], compute: Duration, succeeded: usize) {
        self.queue.record(queued.as_secs_f64(), &self.labels);
        self.compute.record(compute.as_secs_f64(), &self.labels);
        for &size in passes {
            self.batch_size.record(size as u64, &self.labels);
        }
        self.exec_count.add(passes.len() as u64, &self.labels);
        self.count.add(succeeded as u64, &self.labels);
    }

    /// The model loaded in `took`.
    pub fn cold_start(&self, took: Duration) {
        self.cold_start.record(took.as_secs_f64(), &self.labels);
    }
}
