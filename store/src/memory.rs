//! The in-memory backend: the same semantics as [`crate::sqlite::SqliteStore`], nothing
//! durable. For benchmarks and tests of the store-independent parts.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use marie_protocol::messages::{JobPage, ListQuery, QueuedJob, RunningJob};
use marie_protocol::{DedupPolicy, JobId, JobState, JobStatus};

use crate::{
    GatewayStore, Inserted, JobStore, JobUpdate, NewJob, Recovered, StoreError, page_limit,
};

/// The job store in a map, lost when dropped.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    jobs: BTreeMap<JobId, Record>,
    /// Jobs by (`ref_type`, `ref_id`), oldest first.
    by_ref: HashMap<(String, String), Vec<JobId>>,
}

/// One stored job.
struct Record {
    job: NewJob,
    state: JobState,
    attempt: u32,
    last_error: Option<String>,
    executor: Option<String>,
    output: Option<Vec<u8>>,
    updated_at_ms: u64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every change is made whole under the lock, so a panic leaves no half-made one.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Record {
    fn status(&self) -> JobStatus {
        let spec = &self.job.spec;
        JobStatus {
            id: self.job.id,
            pool: spec.pool.clone(),
            handler: spec.handler.clone(),
            metadata: spec.metadata.clone(),
            priority: spec.priority,
            state: self.state,
            attempt: self.attempt,
            max_attempts: self.job.max_attempts,
            last_error: self.last_error.clone(),
            executor: self.executor.clone(),
            created_at_ms: self.job.created_at_ms,
            updated_at_ms: self.updated_at_ms,
            output_len: self.output.as_ref().map(|out| out.len() as u64),
            trace_id: spec.trace.trace_id(),
        }
    }

    /// As the queue wants it: the spec's `max_attempts` and `timeout_ms` are the values
    /// resolved at submit, as the SQLite store returns them.
    fn queued(&self) -> QueuedJob {
        let mut spec = self.job.spec.clone();
        spec.max_attempts = Some(self.job.max_attempts);
        spec.timeout_ms = Some(self.job.timeout_ms);
        QueuedJob {
            id: self.job.id,
            spec,
            attempts_done: self.attempt,
            max_attempts: self.job.max_attempts,
            timeout_ms: self.job.timeout_ms,
            created_at_ms: self.job.created_at_ms,
        }
    }
}

impl Inner {
    /// The newest job with this key that has not failed, been cancelled or expired.
    fn existing(&self, key: (&str, &str)) -> Option<JobId> {
        let ids = self.by_ref.get(&(key.0.to_owned(), key.1.to_owned()))?;
        ids.iter().rev().copied().find(|id| {
            self.jobs.get(id).is_some_and(|r| {
                matches!(
                    r.state,
                    JobState::Queued | JobState::Running | JobState::Succeeded
                )
            })
        })
    }

    fn insert(&mut self, job: NewJob) -> Inserted {
        let spec = &job.spec;
        if let Some(key) = spec
            .metadata
            .dedup_key()
            .filter(|_| spec.dedup != DedupPolicy::Off)
        {
            match (self.existing(key), spec.dedup) {
                (Some(id), DedupPolicy::Reject) => return Inserted::Duplicate(id),
                (Some(id), _) => return Inserted::Existing(id),
                (None, _) => {}
            }
        }
        let id = job.id;
        let key = (spec.metadata.ref_type.clone(), spec.metadata.ref_id.clone());
        self.by_ref.entry(key).or_default().push(id);
        let updated_at_ms = job.created_at_ms;
        self.jobs.insert(
            id,
            Record {
                job,
                state: JobState::Queued,
                attempt: 0,
                last_error: None,
                executor: None,
                output: None,
                updated_at_ms,
            },
        );
        Inserted::New(id)
    }

    /// Applies one change; returns the terminal state it set, if it ended the job.
    fn update(&mut self, change: JobUpdate) -> Option<(JobId, JobState)> {
        let id = match &change {
            JobUpdate::Started { run, .. } => run.job,
            JobUpdate::Requeued { id, .. } | JobUpdate::Finished { id, .. } => *id,
        };
        let record = self.jobs.get_mut(&id).filter(|r| !r.state.is_terminal())?;
        match change {
            JobUpdate::Started {
                run,
                executor,
                at_ms,
            } => {
                record.state = JobState::Running;
                record.attempt = run.attempt;
                record.executor = Some(executor);
                record.updated_at_ms = at_ms;
            }
            JobUpdate::Requeued {
                attempts_done,
                error,
                at_ms,
                ..
            } => {
                record.state = JobState::Queued;
                record.attempt = attempts_done;
                record.last_error = Some(error);
                record.updated_at_ms = at_ms;
            }
            JobUpdate::Finished {
                state,
                error,
                output,
                at_ms,
                ..
            } => {
                record.state = state;
                record.last_error = error;
                record.output = output;
                record.updated_at_ms = at_ms;
                return Some((id, state));
            }
        }
        None
    }
}

#[async_trait]
impl GatewayStore for MemoryStore {
    async fn insert(&self, jobs: Vec<NewJob>) -> Result<Vec<Inserted>, StoreError> {
        let mut inner = self.lock();
        Ok(jobs.into_iter().map(|job| inner.insert(job)).collect())
    }

    async fn get(&self, id: JobId) -> Result<Option<JobStatus>, StoreError> {
        Ok(self.lock().jobs.get(&id).map(Record::status))
    }

    async fn output(&self, id: JobId) -> Result<Option<Vec<u8>>, StoreError> {
        let inner = self.lock();
        let record = inner
            .jobs
            .get(&id)
            .filter(|r| r.state == JobState::Succeeded);
        Ok(record.and_then(|r| r.output.clone()))
    }

    async fn list(&self, query: ListQuery) -> Result<JobPage, StoreError> {
        let limit = page_limit(query.limit);
        let inner = self.lock();
        let before = match query.after {
            Some(after) => inner.jobs.range(..after),
            None => inner.jobs.range(..),
        };
        let jobs: Vec<JobStatus> = before
            .rev()
            .map(|(_, record)| record)
            .filter(|r| query.state.is_none_or(|state| r.state == state))
            .filter(|r| {
                query
                    .pool
                    .as_ref()
                    .is_none_or(|pool| &r.job.spec.pool == pool)
            })
            .take(limit)
            .map(Record::status)
            .collect();
        let next = (jobs.len() == limit)
            .then(|| jobs.last().map(|job| job.id))
            .flatten();
        Ok(JobPage { jobs, next })
    }
}

#[async_trait]
impl JobStore for MemoryStore {
    async fn update(&self, updates: Vec<JobUpdate>) -> Result<Vec<(JobId, JobState)>, StoreError> {
        let mut inner = self.lock();
        Ok(updates
            .into_iter()
            .filter_map(|change| inner.update(change))
            .collect())
    }

    async fn recover(&self) -> Result<Recovered, StoreError> {
        let inner = self.lock();
        let mut recovered = Recovered::default();
        for record in inner.jobs.values() {
            match record.state {
                JobState::Queued => recovered.queued.push(record.queued()),
                JobState::Running => recovered.running.push(RunningJob {
                    job: record.queued(),
                    executor: record.executor.clone().unwrap_or_default(),
                }),
                _ => {}
            }
        }
        Ok(recovered)
    }

    async fn queued_ids(&self) -> Result<Vec<JobId>, StoreError> {
        let inner = self.lock();
        let queued = inner.jobs.values().filter(|r| r.state == JobState::Queued);
        Ok(queued.map(|r| r.job.id).collect())
    }

    async fn queued(&self, mut ids: Vec<JobId>) -> Result<Vec<QueuedJob>, StoreError> {
        ids.sort_unstable();
        ids.dedup();
        let inner = self.lock();
        Ok(ids
            .iter()
            .filter_map(|id| inner.jobs.get(id))
            .filter(|r| r.state == JobState::Queued)
            .map(Record::queued)
            .collect())
    }
}
