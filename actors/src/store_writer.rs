//! The one task that writes the CapacityManager's state changes to the store, in order,
//! many per commit, and tells every Gateway which jobs ended once that is durable, and
//! the CapacityManager which ends it wrote (so that it stops guarding against their
//! jobs coming back from an earlier read of the store).
//!
//! A write that fails retryably (the database busy, the disk full for a while) is tried
//! again with backoff until it passes: the updates are the truth about runs that
//! already ended. A write the store refuses for good (a corrupt file, a schema from
//! another release) stops the writer: nothing of that batch or of what was queued
//! behind it is reported as durable, and the CapacityManager fails at its next message
//! ([`StoreWriter::stopped`]), so that the node's root starts it again from the store.

use std::sync::Arc;
use std::time::Duration;

use marie_protocol::messages::{CapacityMsg, FinishedJobs, GatewayMsg, JobIds, Tick};
use marie_protocol::{JobId, JobState};
use marie_store::{JobStore, JobUpdate, StoreError, StoreErrorKind};
use ractor::ActorRef;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinError, JoinHandle};

use crate::lookup;

/// One request to the writer: updates, and who to tell once they are durable.
struct Write {
    updates: Vec<JobUpdate>,
    done: Option<oneshot::Sender<()>>,
}

/// Why the writer stopped before it was closed.
#[derive(Debug, thiserror::Error)]
pub enum WriterStopped {
    /// The store refused a write for good; what was queued behind it was not written.
    #[error(
        "the job store refused a write and retrying cannot help; the state changes not yet written are dropped and the CapacityManager starts again from the store"
    )]
    Refused(#[source] StoreError),
    /// The writer's task panicked.
    #[error("the job store's writer panicked")]
    Panicked(#[source] JoinError),
}

/// Handle to the writer task. Dropping every handle lets the task finish what is queued
/// and end; [`StoreWriter::close`] waits for that.
pub struct StoreWriter {
    tx: mpsc::UnboundedSender<Write>,
    task: JoinHandle<Result<(), StoreError>>,
}

/// Most updates folded into one store call.
const MAX_BATCH: usize = 4096;

/// First pause after a failed write; it doubles up to [`MAX_RETRY_DELAY`].
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(50);

/// Longest pause between two tries of a failing write.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

impl StoreWriter {
    /// Starts the writer over `store`. Should the store refuse a write for good, the
    /// writer stops and casts a [`Tick`] to `manager`, so that it sees
    /// [`StoreWriter::stopped`] at once.
    pub fn spawn(store: Arc<dyn JobStore>, manager: ActorRef<CapacityMsg>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let ended = run(store, rx, &manager).await;
            if ended.is_err() {
                let _ = manager.cast(CapacityMsg::Tick(Tick));
            }
            ended
        });
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

    /// Queues updates and returns a receiver that resolves once they are durable; it
    /// fails (its sender dropped) if they never become durable.
    pub fn write_acked(&self, updates: Vec<JobUpdate>) -> oneshot::Receiver<()> {
        let (done, rx) = oneshot::channel();
        self.send(Write {
            updates,
            done: Some(done),
        });
        rx
    }

    /// Whether the writer stopped on its own (the store refused a write for good); then
    /// [`StoreWriter::close`] says why.
    pub fn stopped(&self) -> bool {
        self.task.is_finished()
    }

    /// Writes everything queued, then ends the task; fails if the writer stopped first.
    pub async fn close(self) -> Result<(), WriterStopped> {
        drop(self.tx);
        match self.task.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(refused)) => Err(WriterStopped::Refused(refused)),
            Err(panicked) => Err(WriterStopped::Panicked(panicked)),
        }
    }

    fn send(&self, write: Write) {
        if self.tx.send(write).is_err() {
            tracing::error!("store writer is gone; a state change was not persisted");
        }
    }
}

/// Writes batches until every handle is dropped, or until the store refuses a write for
/// good: then the batch's waiters and everything still queued are dropped unanswered.
async fn run(
    store: Arc<dyn JobStore>,
    mut rx: mpsc::UnboundedReceiver<Write>,
    manager: &ActorRef<CapacityMsg>,
) -> Result<(), StoreError> {
    while let Some(first) = rx.recv().await {
        let mut updates = first.updates;
        let mut acks: Vec<oneshot::Sender<()>> = first.done.into_iter().collect();
        while updates.len() < MAX_BATCH {
            let Ok(next) = rx.try_recv() else { break };
            updates.extend(next.updates);
            acks.extend(next.done);
        }
        let ends: Vec<JobId> = updates
            .iter()
            .filter_map(|update| match update {
                JobUpdate::Finished { id, .. } => Some(*id),
                _ => None,
            })
            .collect();
        let ended = write_until_stored(&*store, updates).await?;
        if !ends.is_empty() {
            // A CapacityManager that stopped does not mind.
            let _ = manager.cast(CapacityMsg::EndsStored(JobIds(ends)));
        }
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
    Ok(())
}

/// Says once per streak of failures that a write is being retried, and why.
fn log_retrying(e: &StoreError) {
    if e.kind() == StoreErrorKind::Full {
        tracing::error!(
            error = %e.failure(),
            "job store write failed: its disk is full; the write is kept and tried again with backoff until there is room (jobs do not end meanwhile)"
        );
    } else {
        tracing::warn!(
            error = %e.failure(),
            max_retry_delay_ms = MAX_RETRY_DELAY.as_millis() as u64,
            "job store write failed; retrying with backoff until it passes (jobs do not end meanwhile)"
        );
    }
}

/// Tries the write until it passes, with backoff while the store fails retryably
/// (logged once per streak of failures); answers the store's error once it refuses the
/// write for good.
async fn write_until_stored(
    store: &dyn JobStore,
    updates: Vec<JobUpdate>,
) -> Result<Vec<(JobId, JobState)>, StoreError> {
    let mut delay = FIRST_RETRY_DELAY;
    let mut failures: u32 = 0;
    loop {
        match store.update(updates.clone()).await {
            Ok(ended) => {
                if failures > 0 {
                    tracing::info!(failures, "job store writes pass again");
                }
                return Ok(ended);
            }
            Err(e) if e.kind() != StoreErrorKind::Permanent => {
                if failures == 0 {
                    log_retrying(&e);
                }
                failures += 1;
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RETRY_DELAY);
            }
            Err(e) => {
                tracing::error!(
                    error = %e.failure(),
                    updates = updates.len(),
                    "job store refused a write for good: the CapacityManager stops and starts again from the store, and the node exits if that keeps failing; fix what the error names (or restore the data dir's database from a backup) before the node is started again"
                );
                return Err(e);
            }
        }
    }
}
