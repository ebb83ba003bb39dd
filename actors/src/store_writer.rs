//! The one task that writes the CapacityManager's state changes to the store, in order,
//! many per commit, and tells every Gateway which jobs ended once that is durable.

use std::sync::Arc;
use std::time::Duration;

use marie_protocol::messages::{FinishedJobs, GatewayMsg};
use marie_protocol::{JobId, JobState};
use marie_store::{JobStore, JobUpdate};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::lookup;

/// One request to the writer: updates, and who to tell once they are durable.
struct Write {
    updates: Vec<JobUpdate>,
    done: Option<oneshot::Sender<()>>,
}

/// Handle to the writer task. Dropping every handle lets the task finish what is queued
/// and end; [`StoreWriter::close`] waits for that.
pub struct StoreWriter {
    tx: mpsc::UnboundedSender<Write>,
    task: JoinHandle<()>,
}

/// Most updates folded into one store call.
const MAX_BATCH: usize = 4096;

impl StoreWriter {
    /// Starts the writer over `store`.
    pub fn spawn(store: Arc<dyn JobStore>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(store, rx));
        StoreWriter { tx, task }
    }

    /// Queues updates; they are written after every update queued before them.
    pub fn write(&self, updates: Vec<JobUpdate>) {
        if !updates.is_empty() {
            self.send(Write {
                updates,
                done: None,
            });
        }
    }

    /// Queues updates and returns a receiver that resolves once they are durable.
    pub fn write_acked(&self, updates: Vec<JobUpdate>) -> oneshot::Receiver<()> {
        let (done, rx) = oneshot::channel();
        self.send(Write {
            updates,
            done: Some(done),
        });
        rx
    }

    /// Writes everything queued, then ends the task.
    pub async fn close(self) {
        drop(self.tx);
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "store writer ended abnormally");
        }
    }

    fn send(&self, write: Write) {
        if self.tx.send(write).is_err() {
            tracing::error!("store writer is gone; a state change was not persisted");
        }
    }
}

async fn run(store: Arc<dyn JobStore>, mut rx: mpsc::UnboundedReceiver<Write>) {
    while let Some(first) = rx.recv().await {
        let mut updates = first.updates;
        let mut acks: Vec<oneshot::Sender<()>> = first.done.into_iter().collect();
        while updates.len() < MAX_BATCH {
            let Ok(next) = rx.try_recv() else { break };
            updates.extend(next.updates);
            acks.extend(next.done);
        }
        let ended = write_until_stored(&*store, updates).await;
        for ack in acks {
            let _ = ack.send(());
        }
        for (id, state) in &ended {
            tracing::info!(job = %id, %state, "job ended");
        }
        if !ended.is_empty() {
            for gateway in lookup::gateways() {
                let msg = GatewayMsg::JobsFinished(FinishedJobs(ended.clone()));
                if let Err(e) = gateway.cast(msg) {
                    tracing::warn!(error = %e, "could not tell a gateway that jobs ended");
                }
            }
        }
    }
}

/// Retries a failing store: the updates are the truth about runs that already ended, so
/// they are never dropped while the process lives.
async fn write_until_stored(
    store: &dyn JobStore,
    updates: Vec<JobUpdate>,
) -> Vec<(JobId, JobState)> {
    let mut delay = Duration::from_millis(50);
    loop {
        match store.update(updates.clone()).await {
            Ok(ended) => return ended,
            Err(e) => {
                tracing::error!(error = %e, retry_in_ms = delay.as_millis() as u64, "job store write failed");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}
