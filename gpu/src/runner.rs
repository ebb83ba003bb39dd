//! The model runner of one executor: loads the model on its own thread, sends inputs to
//! it, and parks (drops the model and its device memory) and unparks (loads it again,
//! measuring the cold start) on the executor's behalf.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use marie_protocol::HandlerError;
use tokio::sync::oneshot;

use crate::batcher::{BatchStats, ModelThread, Request, ThreadSetup};
use crate::error::ModelError;
use crate::forward::{ForwardError, Loader};
use crate::gather::BatchPolicy;
use crate::metrics::InferenceMetrics;

/// One executor's model: loaded or parked.
pub struct ModelRunner {
    setup: ThreadSetup,
    loader: Loader,
    /// The running thread; `None` while parked. Held across a load or an unload, so
    /// park and unpark never overlap.
    thread: tokio::sync::Mutex<Option<ModelThread>>,
    /// Where inputs go; `None` while parked.
    sender: Mutex<Option<std::sync::mpsc::Sender<Request>>>,
}

impl std::fmt::Debug for ModelRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelRunner")
            .field("pool", &self.setup.pool)
            .field("loaded", &self.is_loaded())
            .finish()
    }
}

impl ModelRunner {
    /// A parked runner for `pool`'s model, built by `loader` on the model thread.
    pub fn new(pool: &str, loader: Loader, policy: BatchPolicy, metrics: InferenceMetrics) -> Self {
        ModelRunner {
            setup: ThreadSetup {
                pool: pool.to_owned(),
                policy,
                metrics,
                stats: Arc::new(BatchStats::default()),
            },
            loader,
            thread: tokio::sync::Mutex::new(None),
            sender: Mutex::new(None),
        }
    }

    /// The pool.
    pub fn pool(&self) -> &str {
        &self.setup.pool
    }

    /// Counts of batches, forward passes and answered inputs.
    pub fn stats(&self) -> &BatchStats {
        &self.setup.stats
    }

    /// Whether the model is loaded.
    pub fn is_loaded(&self) -> bool {
        self.sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Loads the model unless it is loaded. Returns the cold start (the time to load,
    /// including the trial forward pass), also recorded as
    /// `marie_executor_cold_start_seconds` and logged; `None` if it was loaded already.
    pub async fn load(&self) -> Result<Option<Duration>, ModelError> {
        let mut thread = self.thread.lock().await;
        if thread.is_some() {
            return Ok(None);
        }
        let started = Instant::now();
        let (setup, loader) = (self.setup.clone(), self.loader.clone());
        let (running, took) =
            tokio::task::spawn_blocking(move || ModelThread::start(setup, loader))
                .await
                .map_err(|e| ModelError::Thread {
                    pool: self.setup.pool.clone(),
                    reason: format!("the loading task did not finish: {e}"),
                })??;
        let cold_start = started.elapsed();
        *self.sender.lock().unwrap_or_else(PoisonError::into_inner) = Some(running.sender());
        *thread = Some(running);
        self.setup.metrics.cold_start(cold_start);
        tracing::info!(
            pool = %self.setup.pool,
            cold_start_seconds = cold_start.as_secs_f64(),
            load_seconds = took.as_secs_f64(),
            "model loaded"
        );
        Ok(Some(cold_start))
    }

    /// [`ModelRunner::load`] for a handler's `unpark`: the model is loaded when this
    /// returns, and a failure is the job-level error a handler reports.
    pub async fn unpark(&self) -> Result<(), HandlerError> {
        self.load()
            .await
            .map(|_| ())
            .map_err(|e| HandlerError::transient(e.to_string()))
    }

    /// Drops the model and its device memory: waiting inputs are answered first, and
    /// this returns once the model thread has ended. Parking a parked runner does
    /// nothing.
    pub async fn park(&self) {
        let mut thread = self.thread.lock().await;
        self.sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(running) = thread.take() {
            let _ = tokio::task::spawn_blocking(move || running.stop()).await;
            tracing::info!(pool = %self.setup.pool, "model parked; its memory is released");
        }
    }

    /// Runs one input (of the model's input shape) and returns its output row. The
    /// input joins the next batch.
    pub async fn infer(&self, input: Vec<f32>) -> Result<Vec<f32>, HandlerError> {
        let pool = &self.setup.pool;
        let sender = self
            .sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| {
                HandlerError::transient(format!(
                    "pool {pool:?}: the model is parked; the job is retried once the pool is unparked"
                ))
            })?;
        let (reply, answer) = oneshot::channel();
        let request = Request {
            input,
            enqueued: Instant::now(),
            reply,
        };
        let gone =
            || HandlerError::transient(format!("pool {pool:?}: the model thread stopped; retry"));
        sender.send(request).map_err(|_| gone())?;
        drop(sender);
        match answer.await.map_err(|_| gone())? {
            Ok(output) => Ok(output),
            Err(ForwardError::OutOfMemory(reason)) => Err(HandlerError::transient(format!(
                "pool {pool:?}: out of device memory even for this input alone ({reason}); \
                 lower max_batch_size or free the device, then retry"
            ))),
            Err(ForwardError::Failed(reason)) => Err(HandlerError::transient(format!(
                "pool {pool:?}: the forward pass failed: {reason}"
            ))),
        }
    }
}
