//! The job store's wire types: what a Gateway writes at submit, and the messages of the
//! store service through which Gateways on other nodes reach the one store.

use ractor::RpcReplyPort;
use ractor_cluster::RactorClusterMessage;
use serde::{Deserialize, Serialize};

use crate::messages::{JobOutput, JobPage, ListQuery};
use crate::{JobId, JobSpec, JobStatus, wire_type};

/// A job to write at submit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewJob {
    /// Its id.
    pub id: JobId,
    /// What it is (the payload is stored with it).
    pub spec: JobSpec,
    /// Runs allowed.
    pub max_attempts: u32,
    /// Longest one run may take, in milliseconds.
    pub timeout_ms: u64,
    /// Accepted at, Unix milliseconds.
    pub created_at_ms: u64,
}

/// What became of one [`NewJob`] on insert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Inserted {
    /// Written as a new job.
    New(JobId),
    /// Not written: a live or succeeded job has the same (`ref_type`, `ref_id`) and the
    /// spec's policy is `ReturnExisting`.
    Existing(JobId),
    /// Not written: same key exists and the policy is `Reject`.
    Duplicate(JobId),
}

/// Jobs to insert in one call.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewJobs(pub Vec<NewJob>);

/// Whether another try of a failed store operation can succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreErrorKind {
    /// The store is busy, closing or out of reach: the same operation may pass later.
    Retryable,
    /// The operation or the store itself is at fault (a corrupt file, a schema from
    /// another release): retrying repeats the failure until someone fixes it.
    Permanent,
    /// The disk under the store is full: writes fail until space is freed, then pass.
    /// New jobs are refused meanwhile; the ends of accepted jobs wait to be written.
    Full,
}

/// A store failure as it crosses the wire: its kind, and its causes in words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct StoreFailure {
    /// Whether a retry can help.
    pub kind: StoreErrorKind,
    /// The error and its causes, outermost first.
    pub message: String,
}

/// A store operation's answer: the value, or the store's failure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreReply<T>(pub Result<T, StoreFailure>);

impl<T: Serialize + serde::de::DeserializeOwned> ractor::BytesConvertable for StoreReply<T> {
    fn into_bytes(self) -> Vec<u8> {
        crate::codec::encode(&self)
    }
    /// An answer that does not decode becomes a permanent failure carrying the codec's
    /// message, instead of a panic that drops the answer.
    fn from_bytes(bytes: Vec<u8>) -> Self {
        crate::codec::decode(&bytes).unwrap_or_else(|e| {
            StoreReply(Err(StoreFailure {
                kind: StoreErrorKind::Permanent,
                message: format!("cannot read the job store's answer: {e}"),
            }))
        })
    }
}

/// Messages of the store service, which runs beside the one job store (on the server
/// node) and serves Gateways running on other nodes.
#[derive(RactorClusterMessage)]
pub enum StoreMsg {
    /// Insert jobs (durable when answered).
    #[rpc]
    Insert(NewJobs, RpcReplyPort<StoreReply<Vec<Inserted>>>),
    /// One job's status.
    #[rpc]
    Get(JobId, RpcReplyPort<StoreReply<Option<JobStatus>>>),
    /// A succeeded job's output.
    #[rpc]
    Output(JobId, RpcReplyPort<StoreReply<Option<JobOutput>>>),
    /// A page of jobs.
    #[rpc]
    List(ListQuery, RpcReplyPort<StoreReply<JobPage>>),
}

wire_type!(NewJobs);

#[cfg(test)]
mod tests {
    use ractor::BytesConvertable;

    use super::*;

    #[test]
    fn a_store_reply_from_another_release_is_a_permanent_failure_naming_the_fix() {
        let mut bytes = StoreReply::<Option<JobStatus>>(Ok(None)).into_bytes();
        bytes[0] = crate::codec::WIRE_VERSION + 1;
        let StoreReply(answer) = StoreReply::<Option<JobStatus>>::from_bytes(bytes);
        let failure = answer.expect_err("an undecodable answer is an error");
        assert_eq!(failure.kind, StoreErrorKind::Permanent);
        assert!(
            failure
                .message
                .contains("upgrade every node to the same Marie release"),
            "{failure}"
        );
    }

    #[test]
    fn a_store_failure_crosses_the_wire_with_its_kind() {
        let reply: StoreReply<Vec<Inserted>> = StoreReply(Err(StoreFailure {
            kind: StoreErrorKind::Retryable,
            message: "database is locked".into(),
        }));
        let back = StoreReply::<Vec<Inserted>>::from_bytes(reply.clone().into_bytes());
        assert_eq!(back, reply);
    }
}
