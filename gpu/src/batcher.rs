//! The model thread: owns one loaded model, gathers the requests sent to it into
//! batches ([`crate::gather`]), runs each batch as one forward pass and answers every
//! request with its own output row. libtorch runs only here, never on the async
//! runtime. Closing the request channel ends the thread after the waiting requests,
//! and dropping the model there frees its device memory.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::error::ModelError;
use crate::forward::{Forward, ForwardError, Loader, forward_splitting};
use crate::gather::{BatchPolicy, Gatherer, Next};
use crate::metrics::InferenceMetrics;

/// One input for the model and where its output goes.
#[derive(Debug)]
pub struct Request {
    /// The input's values, of the model's input shape.
    pub input: Vec<f32>,
    /// When it was sent: the batching delay counts from here.
    pub enqueued: Instant,
    /// Receives the output row, or why there is none.
    pub reply: oneshot::Sender<Result<Vec<f32>, ForwardError>>,
}

/// Counts of what the model thread did, for tests and benchmarks.
#[derive(Debug, Default)]
pub struct BatchStats {
    /// Batches gathered.
    pub batches: AtomicU64,
    /// Forward passes run (more than batches after out-of-memory splits).
    pub forward_passes: AtomicU64,
    /// Inputs that got an output.
    pub inferences: AtomicU64,
    /// Time spent in forward passes (with copying inputs in and outputs out), in ns.
    pub compute_nanos: AtomicU64,
}

impl BatchStats {
    /// Forward passes so far.
    pub fn forward_passes(&self) -> u64 {
        self.forward_passes.load(Ordering::Relaxed)
    }

    /// Inputs answered so far.
    pub fn inferences(&self) -> u64 {
        self.inferences.load(Ordering::Relaxed)
    }

    /// Time spent in forward passes so far.
    pub fn compute(&self) -> Duration {
        Duration::from_nanos(self.compute_nanos.load(Ordering::Relaxed))
    }
}

/// What the model thread needs besides its model.
#[derive(Clone, Debug)]
pub struct ThreadSetup {
    /// The pool, for the thread's name and logs.
    pub pool: String,
    /// When batches run.
    pub policy: BatchPolicy,
    /// Where batches are recorded.
    pub metrics: InferenceMetrics,
    /// Counts shared with the runner.
    pub stats: Arc<BatchStats>,
}

/// A running model thread.
#[derive(Debug)]
pub struct ModelThread {
    sender: mpsc::Sender<Request>,
    handle: JoinHandle<()>,
}

impl ModelThread {
    /// Starts the thread, which builds the model with `loader`. Blocks until the model
    /// is loaded and returns how long loading took (the cold start). Call it from a
    /// blocking context.
    pub fn start(
        setup: ThreadSetup,
        loader: Loader,
    ) -> Result<(ModelThread, Duration), ModelError> {
        let pool = setup.pool.clone();
        let (loaded_tx, loaded_rx) = mpsc::sync_channel(1);
        let (sender, requests) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name(format!("model-{pool}"))
            .spawn(move || {
                let started = Instant::now();
                let model = match catch_unwind(AssertUnwindSafe(|| loader())) {
                    Ok(Ok(model)) => model,
                    Ok(Err(error)) => {
                        let _ = loaded_tx.send(Err(error));
                        return;
                    }
                    Err(_) => {
                        let _ = loaded_tx.send(Err(ModelError::Thread {
                            pool: setup.pool.clone(),
                            reason: "loading the model panicked".into(),
                        }));
                        return;
                    }
                };
                let _ = loaded_tx.send(Ok(started.elapsed()));
                serve(requests, model, &setup);
            })
            .map_err(|e| ModelError::Thread {
                pool: pool.clone(),
                reason: format!("cannot start a thread: {e}"),
            })?;
        match loaded_rx.recv() {
            Ok(Ok(took)) => Ok((ModelThread { sender, handle }, took)),
            Ok(Err(error)) => {
                let _ = handle.join();
                Err(error)
            }
            Err(_) => {
                let _ = handle.join();
                Err(ModelError::Thread {
                    pool,
                    reason: "it ended while loading the model".into(),
                })
            }
        }
    }

    /// A handle to send requests with.
    pub fn sender(&self) -> mpsc::Sender<Request> {
        self.sender.clone()
    }

    /// Closes this handle's side of the queue and waits until the thread has answered
    /// what waits, dropped the model and ended (other senders still alive keep it
    /// running until they are dropped). Blocking.
    pub fn stop(self) {
        drop(self.sender);
        let _ = self.handle.join();
    }
}

/// The thread's loop: gather, run, answer; ends when every sender is gone and nothing
/// waits.
fn serve(requests: mpsc::Receiver<Request>, mut model: Box<dyn Forward>, setup: &ThreadSetup) {
    let mut gatherer = Gatherer::new(setup.policy);
    let mut open = true;
    loop {
        while open {
            match requests.try_recv() {
                Ok(request) => push(&mut gatherer, request),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => open = false,
            }
        }
        let now = Instant::now();
        let next = match (open, gatherer.is_empty()) {
            (true, _) => gatherer.next(now),
            (false, true) => break,
            (false, false) => Next::Run,
        };
        match next {
            Next::Run => run_batch(model.as_mut(), gatherer.take_batch(), now, setup),
            Next::WaitUntil(deadline) => {
                match requests.recv_timeout(deadline.saturating_duration_since(now)) {
                    Ok(request) => push(&mut gatherer, request),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => open = false,
                }
            }
            Next::Idle => match requests.recv() {
                Ok(request) => push(&mut gatherer, request),
                Err(_) => open = false,
            },
        }
    }
    drop(model);
    tracing::debug!(pool = %setup.pool, "model thread ended; the model is released");
}

fn push(gatherer: &mut Gatherer<Request>, request: Request) {
    let enqueued = request.enqueued;
    gatherer.push(request, enqueued);
}

/// Runs one gathered batch and answers each request with its own result.
fn run_batch(
    model: &mut dyn Forward,
    batch: Vec<(Instant, Request)>,
    now: Instant,
    setup: &ThreadSetup,
) {
    // A job cancelled while it waited needs no answer.
    let batch: Vec<Request> = batch
        .into_iter()
        .map(|(_, request)| request)
        .filter(|request| !request.reply.is_closed())
        .collect();
    let Some(oldest) = batch.first().map(|r| r.enqueued) else {
        return;
    };
    let started = Instant::now();
    let mut passes = Vec::new();
    let results = {
        let inputs: Vec<&[f32]> = batch.iter().map(|r| r.input.as_slice()).collect();
        catch_unwind(AssertUnwindSafe(|| {
            forward_splitting(model, &inputs, &mut passes)
        }))
        .unwrap_or_else(|_| {
            let error = ForwardError::Failed("the forward pass panicked".into());
            vec![Err(error); inputs.len()]
        })
    };
    let compute = started.elapsed();
    let succeeded = results.iter().filter(|r| r.is_ok()).count();
    setup.metrics.batch(
        now.saturating_duration_since(oldest),
        &passes,
        compute,
        succeeded,
    );
    let stats = &setup.stats;
    stats.batches.fetch_add(1, Ordering::Relaxed);
    stats
        .forward_passes
        .fetch_add(passes.len() as u64, Ordering::Relaxed);
    stats
        .inferences
        .fetch_add(succeeded as u64, Ordering::Relaxed);
    let nanos = u64::try_from(compute.as_nanos()).unwrap_or(u64::MAX);
    stats.compute_nanos.fetch_add(nanos, Ordering::Relaxed);
    for (request, result) in batch.into_iter().zip(results) {
        let _ = request.reply.send(result);
    }
}
