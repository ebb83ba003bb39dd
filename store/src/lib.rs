//! The job store: the durable truth about every job.
//!
//! Accepted means committed here. The [`JobStore`] trait is what actors use; it says
//! nothing about SQL, so the shared [`postgres::PostgresStore`] sits beside the embedded
//! [`sqlite::SqliteStore`] and the non-durable [`memory::MemoryStore`] (benchmarks and
//! tests of the store-independent parts). `tests/store.rs` is the conformance suite
//! every backend passes.
//!
//! May depend on: `marie-protocol` (jobs, states, pages), `rusqlite`, `tokio-postgres`
//! with its `deadpool-postgres` pool, and tokio's blocking pool and channels to keep
//! SQLite off the async threads. Never on ractor or on the actors: the store service
//! that serves Gateways on other nodes, and the remote store they call, are actors and
//! live in `marie-actors`.

#![warn(missing_docs)]

mod error;
pub mod lock;
pub mod memory;
pub mod postgres;
pub mod sqlite;

use async_trait::async_trait;
use marie_protocol::messages::{JobPage, ListQuery, QueuedJob, RunRef, RunningJob};
use marie_protocol::{DedupPolicy, JobId, JobState, JobStatus};
use tokio::sync::mpsc;

pub use error::{OpenError, StoreError, StoreErrorKind, StoreFailure, Unavailable};
pub use marie_protocol::store::{Inserted, NewJob};

/// Page size of a list: 0 means 100, and never more than 1000.
pub(crate) fn page_limit(limit: u32) -> usize {
    match limit {
        0 => 100,
        n => n.min(1000) as usize,
    }
}

/// A deduplication policy as the SQL backends store it.
pub(crate) fn dedup_name(policy: DedupPolicy) -> &'static str {
    match policy {
        DedupPolicy::Off => "off",
        DedupPolicy::ReturnExisting => "return_existing",
        DedupPolicy::Reject => "reject",
    }
}

/// The policy stored as `name`.
pub(crate) fn dedup_policy(name: &str) -> Option<DedupPolicy> {
    [
        DedupPolicy::Off,
        DedupPolicy::ReturnExisting,
        DedupPolicy::Reject,
    ]
    .into_iter()
    .find(|policy| dedup_name(*policy) == name)
}

/// A state change of a stored job. Changes are applied in the order given; a change to
/// a job that is already terminal is ignored (a job ends exactly once).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobUpdate {
    /// A run started: state `running`, `attempt = run.attempt`.
    Started {
        /// The run.
        run: RunRef,
        /// The executor running it.
        executor: String,
        /// When, Unix milliseconds.
        at_ms: u64,
    },
    /// A run was lost or failed and the job waits for another: state `queued`.
    Requeued {
        /// The job.
        id: JobId,
        /// Runs started so far.
        attempts_done: u32,
        /// Why the last run ended without a result.
        error: String,
        /// When, Unix milliseconds.
        at_ms: u64,
    },
    /// The job ended.
    Finished {
        /// The job.
        id: JobId,
        /// The terminal state.
        state: JobState,
        /// Why it did not succeed.
        error: Option<String>,
        /// The output, when it succeeded.
        output: Option<Vec<u8>>,
        /// When, Unix milliseconds.
        at_ms: u64,
    },
}

/// What a Gateway needs of the store: write new jobs, read jobs back. A Gateway on the
/// node of the store uses the store itself; one on another node uses
/// [`remote::RemoteStore`], which reaches the store through the store service.
#[async_trait]
pub trait GatewayStore: Send + Sync + 'static {
    /// Writes new jobs, applying each spec's deduplication policy. Returns when the
    /// write is durable; calls made at the same time share one commit.
    async fn insert(&self, jobs: Vec<NewJob>) -> Result<Vec<Inserted>, StoreError>;

    /// The status of one job.
    async fn get(&self, id: JobId) -> Result<Option<JobStatus>, StoreError>;

    /// The statuses of those of `ids` that exist, in any order: a store that can reads
    /// them at once (this default reads them one by one, all under way together).
    async fn statuses(&self, ids: Vec<JobId>) -> Result<Vec<JobStatus>, StoreError> {
        let reads = ids.into_iter().map(|id| self.get(id));
        let found = futures::future::try_join_all(reads).await?;
        Ok(found.into_iter().flatten().collect())
    }

    /// The output of a job, if it succeeded.
    async fn output(&self, id: JobId) -> Result<Option<Vec<u8>>, StoreError>;

    /// A page of jobs, newest first.
    async fn list(&self, query: ListQuery) -> Result<JobPage, StoreError>;
}

/// Durable storage of jobs, their payloads, states and outputs: what the
/// CapacityManager needs besides the Gateway's part.
#[async_trait]
pub trait JobStore: GatewayStore {
    /// Applies state changes in order. Returns, once they are durable, the terminal
    /// states that took effect: a `Finished` for a job that had already ended is not
    /// among them, so each job appears in exactly one answer, ever.
    async fn update(&self, updates: Vec<JobUpdate>) -> Result<Vec<(JobId, JobState)>, StoreError>;

    /// Every live job, to rebuild the queues and leases after a start: the queued jobs,
    /// and the running ones with the attempt and executor of their run (which the
    /// CapacityManager adopts when the executor reports it, or re-queues). Changes
    /// nothing; with a fence, it reads only while the fence's epoch is current.
    async fn recover(&self) -> Result<Recovered, StoreError>;

    /// The ids of every queued job, oldest first: what the reconcile sweep compares
    /// with the queues. Changes nothing.
    async fn queued_ids(&self) -> Result<Vec<JobId>, StoreError>;

    /// Those of `ids` that are still queued, oldest first. Changes nothing.
    async fn queued(&self, ids: Vec<JobId>) -> Result<Vec<QueuedJob>, StoreError>;

    /// Announcements of jobs committed by any node, for a store that several nodes
    /// write; `None` for one that only this node writes (its Gateway tells the
    /// CapacityManager itself). Dropping the receiver ends them.
    fn notices(&self) -> Option<mpsc::UnboundedReceiver<Notice>> {
        None
    }
}

/// The live jobs of the store, as a CapacityManager finds them at start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The queued jobs, oldest first.
    pub queued: Vec<QueuedJob>,
    /// The running jobs, oldest first, each with its run's attempt and executor.
    pub running: Vec<RunningJob>,
}

/// What a store that several nodes write announces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// These jobs were committed, queued, by some node.
    Queued(Vec<JobId>),
    /// The connection announcements come over was lost and is back: some may have been
    /// missed meanwhile.
    Resumed,
}
