//! A cancel is answered only once the cancellation is in the store: a client told
//! "cancelled" never sees the job run on after a restart.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{ask, scheduler, sleep_job, start_node, submit, wait_for, wait_until};
use marie_protocol::messages::{GatewayMsg, JobPage, ListQuery, QueuedJob};
use marie_protocol::{JobId, JobState, JobStatus};
use marie_store::memory::MemoryStore;
use marie_store::{GatewayStore, Inserted, JobStore, JobUpdate, NewJob, StoreError};
use tokio::sync::watch;

/// The memory store, with a gate in front of its writes that the test opens.
struct GatedStore {
    inner: MemoryStore,
    open: watch::Sender<bool>,
    /// Updates handed to the store, written or waiting at the gate.
    seen: Mutex<Vec<JobUpdate>>,
}

impl GatedStore {
    fn saw_cancel_of(&self, id: JobId) -> bool {
        self.seen.lock().unwrap().iter().any(|update| {
            matches!(update, JobUpdate::Finished { id: i, state: JobState::Cancelled, .. } if *i == id)
        })
    }
}

#[async_trait]
impl GatewayStore for GatedStore {
    async fn insert(&self, jobs: Vec<NewJob>) -> Result<Vec<Inserted>, StoreError> {
        self.inner.insert(jobs).await
    }
    async fn get(&self, id: JobId) -> Result<Option<JobStatus>, StoreError> {
        self.inner.get(id).await
    }
    async fn output(&self, id: JobId) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.output(id).await
    }
    async fn list(&self, query: ListQuery) -> Result<JobPage, StoreError> {
        self.inner.list(query).await
    }
}

#[async_trait]
impl JobStore for GatedStore {
    async fn update(&self, updates: Vec<JobUpdate>) -> Result<Vec<(JobId, JobState)>, StoreError> {
        self.seen.lock().unwrap().extend(updates.iter().cloned());
        let mut open = self.open.subscribe();
        let _ = open.wait_for(|open| *open).await;
        self.inner.update(updates).await
    }
    async fn recover(&self, now_ms: u64) -> Result<Vec<QueuedJob>, StoreError> {
        self.inner.recover(now_ms).await
    }
}

#[tokio::test(start_paused = true)]
async fn cancel_is_answered_only_once_the_cancellation_is_durable() {
    let store = Arc::new(GatedStore {
        inner: MemoryStore::new(),
        open: watch::Sender::new(true),
        seen: Mutex::default(),
    });
    let node = start_node(store.clone(), scheduler()).await;
    // No executor: the job stays queued.
    let id = submit(&node.gateway, sleep_job(1000)).await;

    store.open.send_replace(false);
    let gateway = node.gateway.clone();
    let cancel =
        tokio::spawn(async move { ask(&gateway, |reply| GatewayMsg::Cancel(id, reply)).await });
    wait_until("the cancellation reaches the store", || {
        store.saw_cancel_of(id)
    })
    .await;
    // Paused time moves only when every task waits: after this, all that could run has
    // run, and the held write is all the answer can be waiting for.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !cancel.is_finished(),
        "the cancel was answered before the cancellation was stored: {:?}",
        cancel.await
    );
    let stored = store.get(id).await.unwrap().unwrap();
    assert_eq!(stored.state, JobState::Queued, "the write is still held");

    store.open.send_replace(true);
    let answer = cancel.await.unwrap();
    assert_eq!(answer, Ok(JobState::Cancelled));
    wait_for(&*store, id, "was cancelled", |s| {
        s.state == JobState::Cancelled
    })
    .await;
}
