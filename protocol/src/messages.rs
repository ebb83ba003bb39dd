//! The messages Marie's actors exchange, across nodes or within one.
//!
//! Three actors are remotable: the Gateway (clients talk to it), the CapacityManager
//! (gateways and executors talk to it) and the Executor (the CapacityManager leases jobs
//! to it). Every field is a wire type from this crate, so any message may cross a node
//! boundary. Variants are matched by name on the wire: add variants, never rename them.

use ractor::RpcReplyPort;
use ractor_cluster::RactorClusterMessage;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{
    CapacityReport, GatewayError, JobId, JobMetadata, JobSpec, JobState, JobStatus, Outcome,
    PoolLoad, PoolState, TraceContext, wire_type,
};

/// An answer from the Gateway: the value, or why there is none.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reply<T>(pub Result<T, GatewayError>);

impl<T: Serialize + DeserializeOwned> ractor::BytesConvertable for Reply<T> {
    fn into_bytes(self) -> Vec<u8> {
        crate::codec::encode(&self)
    }
    /// An answer that does not decode becomes an error answer, so the caller learns why
    /// (ractor would drop the message on a panic, and the caller see a dropped request).
    fn from_bytes(bytes: Vec<u8>) -> Self {
        crate::codec::decode(&bytes)
            .unwrap_or_else(|e| Reply(Err(GatewayError::Undecodable(e.to_string()))))
    }
}

/// The Gateway's answer to a submit: the job is durable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitted {
    /// The job's id (the existing job's id when deduplicated).
    pub id: JobId,
    /// True when an existing job with the same (`ref_type`, `ref_id`) was returned.
    pub deduplicated: bool,
}

/// Wait until a job ends, or until the timeout, then answer its status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitFor {
    /// The job.
    pub id: JobId,
    /// Longest wait in milliseconds; the status is answered then, ended or not.
    pub timeout_ms: u64,
}

/// The output bytes of a succeeded job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobOutput(#[serde(with = "serde_bytes")] pub Vec<u8>);

/// A page of the job list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListQuery {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs of this pool.
    pub pool: Option<String>,
    /// Page size (the Gateway caps it at 1000).
    pub limit: u32,
    /// Resume after this job (the `next` of the previous page).
    pub after: Option<JobId>,
}

/// One page of jobs, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobPage {
    /// The jobs.
    pub jobs: Vec<JobStatus>,
    /// Cursor for the next page, if there is one.
    pub next: Option<JobId>,
}

/// Ask for the capacity report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapacityQuery;

/// Jobs that reached a terminal state, told to every Gateway so waiters are answered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishedJobs(pub Vec<(JobId, JobState)>);

/// Queue pressure of every pool, broadcast by the CapacityManager for admission.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadReport(pub Vec<PoolLoad>);

/// A timer of the Gateway: a waiter's time is up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitTicket {
    /// The job waited for.
    pub id: JobId,
    /// Which waiter of that job.
    pub ticket: u64,
}

/// Messages of the Gateway, the front door of the cluster.
#[derive(RactorClusterMessage)]
pub enum GatewayMsg {
    /// Validate, deduplicate, store, then answer: accepted means durable.
    #[rpc]
    Submit(JobSpec, RpcReplyPort<Reply<Submitted>>),
    /// The job's status now.
    #[rpc]
    Status(JobId, RpcReplyPort<Reply<JobStatus>>),
    /// The job's status once it ends or the wait times out.
    #[rpc]
    Wait(WaitFor, RpcReplyPort<Reply<JobStatus>>),
    /// The output of a succeeded job.
    #[rpc]
    Output(JobId, RpcReplyPort<Reply<JobOutput>>),
    /// Cancel a queued or running job; answers the job's final state.
    #[rpc]
    Cancel(JobId, RpcReplyPort<Reply<JobState>>),
    /// A page of jobs.
    #[rpc]
    List(ListQuery, RpcReplyPort<Reply<JobPage>>),
    /// The capacity report.
    #[rpc]
    Capacity(CapacityQuery, RpcReplyPort<Reply<CapacityReport>>),
    /// Answers at once: a liveness check, and the baseline of remote-call cost.
    #[rpc]
    Ping(Ping, RpcReplyPort<Pong>),
    /// From the CapacityManager: these jobs ended.
    JobsFinished(FinishedJobs),
    /// From the CapacityManager: queue pressure per pool.
    Load(LoadReport),
    /// Timer: a waiter's time is up.
    WaitExpired(WaitTicket),
}

/// A job handed to the CapacityManager's queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedJob {
    /// The job.
    pub id: JobId,
    /// What it is.
    pub spec: JobSpec,
    /// Runs already started (0 for a new job).
    pub attempts_done: u32,
    /// Runs allowed.
    pub max_attempts: u32,
    /// Longest one run may take, in milliseconds.
    pub timeout_ms: u64,
    /// Accepted at, Unix milliseconds.
    pub created_at_ms: u64,
}

/// A job the store holds as running when a CapacityManager starts: its run
/// (`job.attempts_done` is its attempt) is unconfirmed until `executor` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningJob {
    /// The job, with the attempt of its run as `attempts_done`.
    pub job: QueuedJob,
    /// The executor its run was leased to.
    pub executor: String,
}

/// Jobs for the queue, in one message.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobBatch(pub Vec<QueuedJob>);

/// Ids of jobs the store holds as queued: announced by the store (committed by some
/// node) or found by the CapacityManager's reconcile sweep.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedIds {
    /// The jobs.
    pub ids: Vec<JobId>,
    /// Whether this is the answer of a sweep (empty when the sweep's read failed).
    pub swept: bool,
}

/// Queued jobs loaded from the store by the CapacityManager.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadedJobs {
    /// When the read started, on the CapacityManager's clock.
    pub read_at_ms: u64,
    /// The jobs still queued when read.
    pub jobs: Vec<QueuedJob>,
}

/// Jobs, by id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobIds(pub Vec<JobId>);

/// An executor introducing itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutorInfo {
    /// Cluster-unique name; also its actor name, found in the pool's process group.
    pub name: String,
    /// The pool it serves.
    pub pool: String,
    /// Jobs it runs at once.
    pub slots: u32,
    /// The runs it holds when it registers (leased by a CapacityManager that has
    /// since been replaced), which it asks to keep.
    pub running: Vec<RunRef>,
}

/// The CapacityManager's answer to a registration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registered {
    /// How often to heartbeat, in milliseconds.
    pub heartbeat_ms: u64,
    /// Those of the reported runs it keeps: their leases go on. The executor abandons
    /// the others.
    pub adopted: Vec<RunRef>,
}

/// One run of one job: the fencing token of a lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RunRef {
    /// The job.
    pub job: JobId,
    /// The attempt number of this run (1 for the first).
    pub attempt: u32,
}

/// An executor's periodic sign of life, with the runs it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The executor.
    pub executor: String,
    /// The runs it is executing now.
    pub running: Vec<RunRef>,
}

/// The CapacityManager's answer to a heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatAck {
    /// False when the executor is unknown (declared lost, or the manager restarted):
    /// it must register again.
    pub known: bool,
}

/// The end of one run, reported by the executor that ran it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    /// The run.
    pub run: RunRef,
    /// The executor that ran it.
    pub executor: String,
    /// What it produced.
    pub outcome: Outcome,
    /// How long the handler ran, in milliseconds.
    pub took_ms: u64,
}

/// Which executor a drain or leave is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutorName(pub String);

/// What the CapacityManager did with a cancel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CancelAnswer {
    /// The job was live and is now cancelled.
    Cancelled,
    /// The CapacityManager holds no such live job (ended, or never accepted).
    NotLive,
}

/// The autoscaler's view of every pool.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PoolStates(pub Vec<PoolState>);

/// The slots a pool should have.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolTarget {
    /// The pool.
    pub pool: String,
    /// Its target, in slots.
    pub slots: u64,
}

/// A pool named in a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolName(pub String);

/// Messages of the Supervisor, which scales executor pools.
#[derive(RactorClusterMessage)]
pub enum SupervisorMsg {
    /// From the CapacityManager: a job was queued for a pool with no executor taking
    /// work, or left waiting for a slot; decide now rather than at the next tick.
    Wake(PoolName),
    /// Timer: read the pools, decide, carry the decisions out.
    Tick(Tick),
    /// From an operator: the pool, paused because somebody else set its replica count,
    /// is the Supervisor's again: read the count, adopt it, write again.
    Resume(PoolName),
}

/// The beat of a timer: the payload of the messages an actor sends itself periodically.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tick;

/// A liveness check of the Gateway.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping;

/// The Gateway's answer to a [`Ping`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong;

/// Ask the CapacityManager for every pool's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStatesQuery;

/// Tell an executor to drain: finish its runs, take no new job, then stop.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainOrder;

/// An executor's own reminder to register (again) with the CapacityManager.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterAttempt;

/// Messages of the CapacityManager: queues, slots and leases of the whole cluster.
#[derive(RactorClusterMessage)]
pub enum CapacityMsg {
    /// From a Gateway: durable jobs to queue.
    Enqueue(JobBatch),
    /// From an executor: it serves a pool with slots.
    #[rpc]
    Register(ExecutorInfo, RpcReplyPort<Registered>),
    /// From an executor: alive, running these. The answer says whether the executor
    /// is still known; an executor that was declared lost registers again.
    #[rpc]
    Heartbeat(Heartbeat, RpcReplyPort<HeartbeatAck>),
    /// From an executor: a run ended.
    Completed(Completion),
    /// From a Gateway: cancel a job.
    #[rpc]
    Cancel(JobId, RpcReplyPort<CancelAnswer>),
    /// Stop leasing to this executor; its running jobs finish.
    Drain(ExecutorName),
    /// The executor stops: re-queue whatever it still holds.
    Leave(ExecutorName),
    /// The executor left its pool's group without saying so (its node is gone):
    /// handled like `Leave`, after whatever it sent before.
    Lost(ExecutorName),
    /// The capacity report.
    #[rpc]
    Capacity(CapacityQuery, RpcReplyPort<CapacityReport>),
    /// Timer: expire leases and timeouts, place queued jobs, publish load.
    Tick(Tick),
    /// What the autoscaler reads about every pool.
    #[rpc]
    PoolStates(PoolStatesQuery, RpcReplyPort<PoolStates>),
    /// The slots a pool should have, shown as its `target`.
    SetTarget(PoolTarget),
    /// Jobs the store holds as queued: those neither held nor ended here are loaded.
    StoreQueued(QueuedIds),
    /// Jobs loaded from the store: queued unless held or ended here meanwhile.
    Loaded(LoadedJobs),
    /// From the store writer: the ends of these jobs are durable.
    EndsStored(JobIds),
}

/// A job leased to an executor for one run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseGrant {
    /// The run (job and attempt).
    pub run: RunRef,
    /// The handler to call.
    pub handler: String,
    /// The input.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// The job's metadata.
    pub metadata: JobMetadata,
    /// Longest the run may take, in milliseconds.
    pub timeout_ms: u64,
    /// Trace context of the job.
    pub trace: TraceContext,
}

/// Messages of an Executor.
#[derive(RactorClusterMessage)]
pub enum ExecutorMsg {
    /// Run this job in a free slot.
    Lease(LeaseGrant),
    /// Stop this run: it was cancelled or timed out.
    CancelRun(RunRef),
    /// Finish running jobs, take no new ones, then stop.
    Drain(DrainOrder),
    /// From the executor's own run task: the run ended.
    RunEnded(Completion),
    /// Timer: send a heartbeat.
    HeartbeatTick(Tick),
    /// Register (again) with the CapacityManager.
    Register(RegisterAttempt),
}

wire_type!(
    JobId,
    JobSpec,
    JobState,
    Submitted,
    WaitFor,
    JobOutput,
    ListQuery,
    JobPage,
    CapacityQuery,
    CapacityReport,
    FinishedJobs,
    LoadReport,
    WaitTicket,
    JobBatch,
    QueuedIds,
    LoadedJobs,
    JobIds,
    ExecutorInfo,
    Registered,
    RunRef,
    Heartbeat,
    HeartbeatAck,
    Completion,
    ExecutorName,
    CancelAnswer,
    Tick,
    Ping,
    Pong,
    PoolStatesQuery,
    DrainOrder,
    RegisterAttempt,
    LeaseGrant,
    PoolStates,
    PoolTarget,
    PoolName,
);

#[cfg(test)]
mod tests {
    use super::*;
    use ractor::BytesConvertable;

    #[test]
    fn a_lease_crosses_the_wire_intact() {
        let grant = LeaseGrant {
            run: RunRef {
                job: JobId::generate(),
                attempt: 2,
            },
            handler: "pdf-text".into(),
            payload: vec![7; 1000],
            metadata: JobMetadata {
                project_id: "p".into(),
                ref_type: "invoice".into(),
                ref_id: "42".into(),
            },
            timeout_ms: 5000,
            trace: TraceContext::default(),
        };
        let back = LeaseGrant::from_bytes(grant.clone().into_bytes());
        assert_eq!(back, grant);
    }

    #[test]
    fn an_error_reply_crosses_the_wire_intact() {
        let reply: Reply<Submitted> = Reply(Err(GatewayError::QueueFull {
            pool: "extract".into(),
            pending: 10,
            retry_after_secs: 3,
        }));
        let back = Reply::<Submitted>::from_bytes(reply.clone().into_bytes());
        assert_eq!(back, reply);
    }

    #[test]
    fn a_reply_from_another_release_is_an_error_answer_naming_the_fix() {
        let mut bytes = Reply::<Submitted>(Ok(Submitted {
            id: JobId::generate(),
            deduplicated: false,
        }))
        .into_bytes();
        bytes[0] = crate::codec::WIRE_VERSION + 1;
        let Reply(answer) = Reply::<Submitted>::from_bytes(bytes);
        let Err(GatewayError::Undecodable(why)) = answer else {
            panic!("expected an undecodable answer, got {answer:?}");
        };
        assert!(
            why.contains("upgrade every node to the same Marie release"),
            "{why}"
        );
    }

    #[test]
    fn a_truncated_reply_is_an_error_answer() {
        let bytes = Reply::<JobOutput>(Ok(JobOutput(vec![1; 64]))).into_bytes();
        let Reply(answer) = Reply::<JobOutput>::from_bytes(bytes[..8].to_vec());
        assert!(
            matches!(answer, Err(GatewayError::Undecodable(ref why)) if why.contains("malformed")),
            "{answer:?}"
        );
    }
}
