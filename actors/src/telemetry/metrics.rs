//! The metrics of the scaling guide, labelled `executor=<pool name>`:
//!
//! | name | kind | meaning |
//! |---|---|---|
//! | `marie_jobs_pending` | gauge | jobs waiting for a slot |
//! | `marie_jobs_active` | gauge | jobs running |
//! | `marie_executor_slots_used` | gauge | slots running a job |
//! | `marie_executor_slots_available` | gauge | free slots of executors that take work |
//! | `marie_executor_slots_capacity` | gauge | slots of live executors |
//! | `marie_jobs_total{state}` | counter | jobs that ended, by terminal state |
//! | `marie_jobs_failed_total` | counter | jobs that ended failed |
//! | `marie_job_duration_seconds` | histogram | run time of the last run of ended jobs |
//! | `marie_job_queue_seconds` | histogram | time a job waited for a slot, per run |
//!
//! Gauges are read at scrape time from a snapshot the CapacityManager refreshes every
//! tick. OpenTelemetry keeps a gauge's callback for the life of the process: once the
//! instruments are dropped (their CapacityManager stopped, a leader stepped down) the
//! snapshot is emptied, so that only a running CapacityManager exports queue gauges.

use std::sync::{Arc, Mutex, PoisonError};

use marie_protocol::{CapacityReport, JobState, PoolLoad};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter, ObservableGauge};

/// Bucket bounds of the time histograms, in seconds.
const SECONDS_BUCKETS: [f64; 16] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// What the gauges read: the latest capacity report and queue loads.
#[derive(Clone, Debug, Default)]
pub struct PoolSnapshot {
    /// Slots per pool.
    pub capacity: CapacityReport,
    /// Pending and running jobs per pool.
    pub loads: Vec<PoolLoad>,
}

/// The instruments the CapacityManager records into.
pub struct JobMetrics {
    snapshot: Arc<Mutex<PoolSnapshot>>,
    ended: Counter<u64>,
    failed: Counter<u64>,
    duration: Histogram<f64>,
    queue: Histogram<f64>,
    _gauges: Vec<ObservableGauge<u64>>,
}

impl Drop for JobMetrics {
    fn drop(&mut self) {
        *self.snapshot.lock().unwrap_or_else(PoisonError::into_inner) = PoolSnapshot::default();
    }
}

impl JobMetrics {
    /// Registers the instruments with the global meter provider.
    pub fn register() -> Self {
        Self::with_meter(&opentelemetry::global::meter("marie"))
    }

    /// Registers the instruments with `meter`.
    pub fn with_meter(meter: &Meter) -> Self {
        let snapshot = Arc::new(Mutex::new(PoolSnapshot::default()));
        let gauge = |name: &'static str,
                     description: &'static str,
                     read: fn(&PoolSnapshot) -> Vec<(String, u64)>| {
            let snapshot = snapshot.clone();
            meter
                .u64_observable_gauge(name)
                .with_description(description)
                .with_callback(move |observer| {
                    let snapshot = snapshot.lock().unwrap_or_else(PoisonError::into_inner);
                    for (pool, value) in read(&snapshot) {
                        observer.observe(value, &[KeyValue::new("executor", pool)]);
                    }
                })
                .build()
        };
        let gauges = vec![
            gauge("marie_jobs_pending", "Jobs waiting for a slot", |s| {
                s.loads
                    .iter()
                    .map(|l| (l.name.clone(), l.pending))
                    .collect()
            }),
            gauge("marie_jobs_active", "Jobs running", |s| {
                s.loads
                    .iter()
                    .map(|l| (l.name.clone(), l.running))
                    .collect()
            }),
            gauge("marie_executor_slots_used", "Slots running a job", |s| {
                s.capacity
                    .slots
                    .iter()
                    .map(|p| (p.name.clone(), p.used))
                    .collect()
            }),
            gauge(
                "marie_executor_slots_available",
                "Free slots of executors that take work",
                |s| {
                    s.capacity
                        .slots
                        .iter()
                        .map(|p| (p.name.clone(), p.available))
                        .collect()
                },
            ),
            gauge(
                "marie_executor_slots_capacity",
                "Slots of live executors",
                |s| {
                    s.capacity
                        .slots
                        .iter()
                        .map(|p| (p.name.clone(), p.capacity))
                        .collect()
                },
            ),
        ];
        let seconds = |name: &'static str, description: &'static str| {
            meter
                .f64_histogram(name)
                .with_description(description)
                .with_boundaries(SECONDS_BUCKETS.to_vec())
                .build()
        };
        JobMetrics {
            snapshot,
            ended: meter
                .u64_counter("marie_jobs_total")
                .with_description("Jobs that ended, by terminal state")
                .build(),
            failed: meter
                .u64_counter("marie_jobs_failed_total")
                .with_description("Jobs that ended failed")
                .build(),
            duration: seconds(
                "marie_job_duration_seconds",
                "Run time of the last run of ended jobs",
            ),
            queue: seconds(
                "marie_job_queue_seconds",
                "Time a job waited for a slot before a run",
            ),
            _gauges: gauges,
        }
    }

    /// Replaces what the gauges report.
    pub fn set_snapshot(&self, snapshot: PoolSnapshot) {
        *self.snapshot.lock().unwrap_or_else(PoisonError::into_inner) = snapshot;
    }

    /// A run started after the job waited `waited_ms`.
    pub fn started(&self, pool: &str, waited_ms: u64) {
        self.queue.record(
            waited_ms as f64 / 1000.0,
            &[KeyValue::new("executor", pool.to_owned())],
        );
    }

    /// A job ended in `state`; its last run took `ran_ms`.
    pub fn ended(&self, pool: &str, state: JobState, ran_ms: Option<u64>) {
        let executor = KeyValue::new("executor", pool.to_owned());
        self.ended.add(
            1,
            &[executor.clone(), KeyValue::new("state", state.as_str())],
        );
        if state == JobState::Failed {
            self.failed.add(1, std::slice::from_ref(&executor));
        }
        if let Some(ms) = ran_ms {
            self.duration.record(ms as f64 / 1000.0, &[executor]);
        }
    }
}
