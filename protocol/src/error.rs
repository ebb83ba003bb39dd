//! Errors that cross the wire: what a handler reports and what the Gateway answers.

use serde::{Deserialize, Serialize};

use crate::store::StoreFailure;
use crate::{JobId, JobState};

/// How a handler failed, which decides whether another attempt can help.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HandlerErrorKind {
    /// The input can never succeed (an undecodable document): fail the job now.
    InvalidInput,
    /// Something that may pass on another attempt.
    Transient,
}

/// A handler's failure, with a message for the user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct HandlerError {
    /// Whether a retry may help.
    pub kind: HandlerErrorKind,
    /// What went wrong, in words.
    pub message: String,
}

impl HandlerError {
    /// An input that can never succeed.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        HandlerError {
            kind: HandlerErrorKind::InvalidInput,
            message: message.into(),
        }
    }

    /// A failure another attempt may not repeat.
    pub fn transient(message: impl Into<String>) -> Self {
        HandlerError {
            kind: HandlerErrorKind::Transient,
            message: message.into(),
        }
    }
}

/// Why the Gateway refused or could not answer a request. Every message says what was
/// wrong and what to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum GatewayError {
    /// No pool of that name is configured.
    #[error("unknown pool {pool:?}: configured pools are {known:?}")]
    UnknownPool {
        /// The pool asked for.
        pool: String,
        /// The pools that exist.
        known: Vec<String>,
    },
    /// The pool has no handler of that name.
    #[error("pool {pool:?} has no handler {handler:?}: it offers {known:?}")]
    UnknownHandler {
        /// The pool.
        pool: String,
        /// The handler asked for.
        handler: String,
        /// The handlers the pool offers.
        known: Vec<String>,
    },
    /// The payload is over the configured limit.
    #[error(
        "payload of {size} bytes is over the limit of {limit} bytes: split the document or raise gateway.max_payload_bytes"
    )]
    PayloadTooLarge {
        /// Bytes sent.
        size: u64,
        /// Bytes allowed.
        limit: u64,
    },
    /// A field of the spec is not acceptable.
    #[error("invalid field {field}: {reason}")]
    InvalidField {
        /// The field's name.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The pool's queue is at its admission limit.
    #[error(
        "queue of pool {pool:?} is full ({pending} jobs waiting): retry after {retry_after_secs} s"
    )]
    QueueFull {
        /// The pool.
        pool: String,
        /// Jobs waiting in it.
        pending: u64,
        /// A fair time to wait before retrying.
        retry_after_secs: u32,
    },
    /// A job with the same (`ref_type`, `ref_id`) exists and the policy is `Reject`.
    #[error(
        "a job for {ref_type}/{ref_id} already exists ({existing}): use its id, or submit with dedup Off"
    )]
    Duplicate {
        /// The key's type.
        ref_type: String,
        /// The key's id.
        ref_id: String,
        /// The existing job.
        existing: JobId,
    },
    /// No job has that id.
    #[error("no job {0}: check the id (marie jobs lists them)")]
    NotFound(JobId),
    /// The job has no output because it did not succeed.
    #[error("job {id} has no result: it is {state}")]
    NoResult {
        /// The job.
        id: JobId,
        /// Its state.
        state: JobState,
    },
    /// The job already ended; it cannot be cancelled.
    #[error("job {id} already ended as {state}; nothing to cancel")]
    AlreadyFinished {
        /// The job.
        id: JobId,
        /// Its final state.
        state: JobState,
    },
    /// The node is starting or stopping and takes no jobs now.
    #[error("the cluster is not ready ({0}): retry in a moment")]
    Unavailable(String),
    /// The job is durable but the CapacityManager has not queued it yet (a cancel that
    /// raced its submit): it will be queued within moments.
    #[error("job {0} is being queued: retry the cancel in a moment")]
    BeingQueued(JobId),
    /// The job store failed; its kind says whether a retry can help.
    #[error("job store error: {0}")]
    Store(StoreFailure),
    /// The Gateway's answer could not be read: the codec's message says why (another
    /// Marie release on the other side, most often).
    #[error("cannot read the Gateway's answer: {0}")]
    Undecodable(String),
}
