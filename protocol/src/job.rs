//! The job model: what a client submits, the states a job goes through, and what a run
//! produces.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Identity of one job, unique across the cluster. A UUIDv7, so ids sort by creation time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct JobId(pub uuid::Uuid);

impl JobId {
    /// A fresh id, ordered after every id made earlier on this node.
    pub fn generate() -> Self {
        JobId(uuid::Uuid::now_v7())
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for JobId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(JobId)
    }
}

/// Who a job belongs to and what document it is about.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMetadata {
    /// The tenant or project the job is billed to.
    pub project_id: String,
    /// Kind of the referenced document (e.g. `invoice`); with `ref_id`, the
    /// deduplication key.
    pub ref_type: String,
    /// Id of the referenced document in the caller's system.
    pub ref_id: String,
}

impl JobMetadata {
    /// The deduplication key, when both parts are set.
    pub fn dedup_key(&self) -> Option<(&str, &str)> {
        (!self.ref_type.is_empty() && !self.ref_id.is_empty())
            .then_some((self.ref_type.as_str(), self.ref_id.as_str()))
    }
}

/// What to do when a job with the same (`ref_type`, `ref_id`) already exists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DedupPolicy {
    /// Always create a new job.
    Off,
    /// Answer with the existing job's id if that job has not failed, been cancelled or
    /// expired; otherwise create a new one.
    #[default]
    ReturnExisting,
    /// Refuse the submission if a job with the key exists and has not failed, been
    /// cancelled or expired.
    Reject,
}

/// W3C trace context (`traceparent`, `tracestate`) carried with a job so its spans join
/// one trace across nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceContext(pub BTreeMap<String, String>);

impl TraceContext {
    /// The trace id of its `traceparent` (`00-<trace id>-<span id>-<flags>`, 32 lowercase
    /// hex digits), when it holds a valid one: the job's trace in the tracing backend.
    pub fn trace_id(&self) -> Option<String> {
        let mut parts = self.0.get("traceparent")?.split('-');
        let (_version, trace_id) = (parts.next()?, parts.next()?);
        let valid = trace_id.len() == 32
            && trace_id
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            && trace_id.bytes().any(|b| b != b'0');
        valid.then(|| trace_id.to_owned())
    }
}

/// Everything a client says about a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The executor pool that runs it.
    pub pool: String,
    /// The handler within the pool (e.g. `pdf-text`).
    pub handler: String,
    /// The document or input bytes.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// Ownership and deduplication key.
    pub metadata: JobMetadata,
    /// Higher runs first; equal priorities run oldest first.
    pub priority: i32,
    /// Runs allowed before the job fails; `None` takes the cluster default.
    pub max_attempts: Option<u32>,
    /// Longest one run may take, in milliseconds; `None` takes the cluster default.
    pub timeout_ms: Option<u64>,
    /// Longest the job may wait in the queue before its first run, in milliseconds;
    /// past it the job ends `expired`. `None` waits for ever.
    pub expire_after_ms: Option<u64>,
    /// What to do with a duplicate (`ref_type`, `ref_id`).
    pub dedup: DedupPolicy,
    /// Trace context of the submitter.
    pub trace: TraceContext,
}

impl JobSpec {
    /// A spec with defaults for everything but pool, handler and payload.
    pub fn new(pool: impl Into<String>, handler: impl Into<String>, payload: Vec<u8>) -> Self {
        JobSpec {
            pool: pool.into(),
            handler: handler.into(),
            payload,
            metadata: JobMetadata::default(),
            priority: 0,
            max_attempts: None,
            timeout_ms: None,
            expire_after_ms: None,
            dedup: DedupPolicy::default(),
            trace: TraceContext::default(),
        }
    }
}

/// The states of a job. `Queued` and `Running` are live; the rest are terminal and final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Accepted and waiting for a slot (also between attempts).
    Queued,
    /// Leased to an executor.
    Running,
    /// The handler returned an output.
    Succeeded,
    /// Every attempt failed, or the input can never succeed.
    Failed,
    /// Cancelled by a client.
    Cancelled,
    /// Waited longer than its `expire_after_ms` before it could start.
    Expired,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 6] = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
        JobState::Expired,
    ];

    /// True for the states a job never leaves.
    pub fn is_terminal(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }

    /// The lowercase name used in the CLI, the store and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::Expired => "expired",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                format!("unknown state {s:?}: use one of queued, running, succeeded, failed, cancelled, expired")
            })
    }
}

/// What a client sees of a job (without its payload or output bytes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStatus {
    /// The job.
    pub id: JobId,
    /// Its pool.
    pub pool: String,
    /// Its handler.
    pub handler: String,
    /// Its metadata.
    pub metadata: JobMetadata,
    /// Its priority.
    pub priority: i32,
    /// Where it is now.
    pub state: JobState,
    /// Runs started so far (the current run's number while running).
    pub attempt: u32,
    /// Runs allowed.
    pub max_attempts: u32,
    /// Why the last run failed, or why the job ended, if it did not succeed.
    pub last_error: Option<String>,
    /// Executor of the current or last run.
    pub executor: Option<String>,
    /// Accepted at, Unix milliseconds.
    pub created_at_ms: u64,
    /// Last state change, Unix milliseconds.
    pub updated_at_ms: u64,
    /// Size of the output in bytes, once succeeded.
    pub output_len: Option<u64>,
    /// The W3C trace id of the job's trace, when it was submitted with traces on.
    pub trace_id: Option<String>,
}

/// What one run of a handler produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The handler's output.
    Succeeded(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The handler failed.
    Failed(crate::HandlerError),
}

#[cfg(test)]
mod tests {
    use super::TraceContext;

    fn context(traceparent: &str) -> TraceContext {
        TraceContext([("traceparent".to_owned(), traceparent.to_owned())].into())
    }

    #[test]
    fn the_trace_id_is_read_from_a_valid_traceparent_only() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(
            context(&format!("00-{id}-00f067aa0ba902b7-01")).trace_id(),
            Some(id.to_owned())
        );
        assert_eq!(TraceContext::default().trace_id(), None);
        assert_eq!(
            context("00-00000000000000000000000000000000-00f067aa0ba902b7-01").trace_id(),
            None
        );
        assert_eq!(context("00-4BF92F35-00f067aa0ba902b7-01").trace_id(), None);
        assert_eq!(context("garbage").trace_id(), None);
    }
}
