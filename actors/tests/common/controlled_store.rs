//! The memory store with the test's hand on its writes: it can hold them at a gate, or
//! fail them as SQLite does, retryably (the database locked) or for good (a corrupt
//! file).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use marie_protocol::messages::{JobPage, ListQuery, QueuedJob};
use marie_protocol::{JobId, JobState, JobStatus};
use marie_store::memory::MemoryStore;
use marie_store::{
    GatewayStore, Inserted, JobStore, JobUpdate, NewJob, Recovered, StoreError, StoreErrorKind,
};
use rusqlite::ffi;
use tokio::sync::watch;

/// The memory store, with a gate and a fault in front of its writes.
pub struct ControlledStore {
    inner: MemoryStore,
    open: watch::Sender<bool>,
    fault: Mutex<Option<StoreErrorKind>>,
    /// Updates handed to the store, written, failed or waiting at the gate.
    seen: Mutex<Vec<JobUpdate>>,
    failed: AtomicUsize,
}

impl ControlledStore {
    /// A store that writes everything at once.
    pub fn new() -> Self {
        ControlledStore {
            inner: MemoryStore::new(),
            open: watch::Sender::new(true),
            fault: Mutex::default(),
            seen: Mutex::default(),
            failed: AtomicUsize::new(0),
        }
    }

    /// Holds writes at the gate (`false`) or lets them through (`true`).
    pub fn set_open(&self, open: bool) {
        self.open.send_replace(open);
    }

    /// Fails every write from now on with an error of `kind`, or, with `None`, writes
    /// again.
    pub fn fail_writes(&self, kind: Option<StoreErrorKind>) {
        *self.fault.lock().unwrap() = kind;
    }

    /// How many writes failed.
    pub fn failed_writes(&self) -> usize {
        self.failed.load(Ordering::SeqCst)
    }

    /// Whether the cancellation of `id` was handed to the store.
    pub fn saw_cancel_of(&self, id: JobId) -> bool {
        self.seen.lock().unwrap().iter().any(|update| {
            matches!(update, JobUpdate::Finished { id: i, state: JobState::Cancelled, .. } if *i == id)
        })
    }
}

/// The error SQLite answers for a locked database or a corrupt file.
fn sqlite_error(kind: StoreErrorKind) -> StoreError {
    let code = match kind {
        StoreErrorKind::Retryable => ffi::SQLITE_BUSY,
        StoreErrorKind::Permanent => ffi::SQLITE_CORRUPT,
        StoreErrorKind::Full => ffi::SQLITE_FULL,
    };
    rusqlite::Error::SqliteFailure(ffi::Error::new(code), None).into()
}

#[async_trait]
impl GatewayStore for ControlledStore {
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
impl JobStore for ControlledStore {
    async fn update(&self, updates: Vec<JobUpdate>) -> Result<Vec<(JobId, JobState)>, StoreError> {
        self.seen.lock().unwrap().extend(updates.iter().cloned());
        let mut open = self.open.subscribe();
        let _ = open.wait_for(|open| *open).await;
        let fault = *self.fault.lock().unwrap();
        if let Some(kind) = fault {
            self.failed.fetch_add(1, Ordering::SeqCst);
            return Err(sqlite_error(kind));
        }
        self.inner.update(updates).await
    }
    async fn recover(&self) -> Result<Recovered, StoreError> {
        self.inner.recover().await
    }
    async fn queued_ids(&self) -> Result<Vec<JobId>, StoreError> {
        self.inner.queued_ids().await
    }
    async fn queued(&self, ids: Vec<JobId>) -> Result<Vec<QueuedJob>, StoreError> {
        self.inner.queued(ids).await
    }
}
