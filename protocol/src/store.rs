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

/// A store operation's answer: the value, or the store's error in words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreReply<T>(pub Result<T, String>);

impl<T: Serialize + serde::de::DeserializeOwned> ractor::BytesConvertable for StoreReply<T> {
    fn into_bytes(self) -> Vec<u8> {
        crate::codec::encode(&self)
    }
    fn from_bytes(bytes: Vec<u8>) -> Self {
        match crate::codec::decode(&bytes) {
            Ok(value) => value,
            Err(e) => panic!("cannot decode a store reply: {e}"),
        }
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
