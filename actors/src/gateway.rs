//! The Gateway actor: the cluster's front door. It validates and admits jobs, makes them
//! durable before answering, answers status, result, list and cancel, and holds the
//! clients that wait for a job to end.
//!
//! Anything that waits on the store runs in its own task, so one slow request never
//! holds up the others, and concurrent submits share the store's group commits.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use marie_decide::admission::{Limits, admit};
use marie_protocol::messages::{
    CancelAnswer, CapacityMsg, CapacityQuery, FinishedJobs, GatewayMsg, JobBatch, JobOutput, Pong,
    QueuedJob, Reply, Submitted, WaitFor, WaitTicket,
};
use marie_protocol::names::GATEWAY_GROUP;
use marie_protocol::{GatewayError, JobId, JobSpec, JobState, JobStatus, PoolLoad};
use marie_store::{GatewayStore, Inserted, NewJob, StoreError, StoreErrorKind, StoreFailure};
use opentelemetry::KeyValue;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, pg};

use crate::clock::unix_ms;
use crate::lookup;
use crate::telemetry::job_trace;
use crate::wait_check::WaitCheck;

/// How long the Gateway waits for the CapacityManager to answer.
const MANAGER_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest wait a client may ask for.
const MAX_WAIT_MS: u64 = 10 * 60 * 1000;

/// The Gateway actor.
pub struct Gateway;

/// A client waiting for a job to end: its ticket and where to answer.
type Waiter = (u64, RpcReplyPort<Reply<JobStatus>>);

/// What a Gateway starts with.
pub struct GatewayArgs {
    /// The job store.
    pub store: Arc<dyn GatewayStore>,
    /// Pools, payload and attempt limits.
    pub limits: Limits,
}

/// The Gateway's state.
pub struct GatewayState {
    store: Arc<dyn GatewayStore>,
    limits: Arc<Limits>,
    waiters: HashMap<JobId, Vec<Waiter>>,
    next_ticket: u64,
    loads: HashMap<String, PoolLoad>,
    /// Jobs this Gateway admitted since the last load report, per pool.
    admitted_since_load: HashMap<String, u64>,
    /// Looks, for each new waiter, whether its job ended already.
    wait_check: WaitCheck,
}

impl Actor for Gateway {
    type Msg = GatewayMsg;
    type State = GatewayState;
    type Arguments = GatewayArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<GatewayMsg>,
        args: GatewayArgs,
    ) -> Result<GatewayState, ActorProcessingErr> {
        pg::join(GATEWAY_GROUP.to_string(), vec![myself.get_cell()]);
        Ok(GatewayState {
            wait_check: WaitCheck::spawn(args.store.clone(), myself.clone()),
            store: args.store,
            limits: Arc::new(args.limits),
            waiters: HashMap::new(),
            next_ticket: 0,
            loads: HashMap::new(),
            admitted_since_load: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<GatewayMsg>,
        msg: GatewayMsg,
        state: &mut GatewayState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            GatewayMsg::Submit(spec, reply) => state.submit(spec, reply),
            GatewayMsg::Status(id, reply) => {
                let store = state.store.clone();
                tokio::spawn(async move {
                    let _ = reply.send(Reply(status(&*store, id).await));
                });
            }
            GatewayMsg::Wait(wait, reply) => state.wait(&myself, wait, reply),
            GatewayMsg::Output(id, reply) => {
                let store = state.store.clone();
                tokio::spawn(async move {
                    let _ = reply.send(Reply(output(&*store, id).await));
                });
            }
            GatewayMsg::Cancel(id, reply) => {
                let store = state.store.clone();
                tokio::spawn(async move {
                    let _ = reply.send(Reply(cancel(&*store, id).await));
                });
            }
            GatewayMsg::List(query, reply) => {
                let store = state.store.clone();
                tokio::spawn(async move {
                    let page = store.list(query).await.map_err(store_error);
                    let _ = reply.send(Reply(page));
                });
            }
            GatewayMsg::Capacity(query, reply) => {
                tokio::spawn(async move {
                    let _ = reply.send(Reply(capacity(query).await));
                });
            }
            GatewayMsg::Ping(_, reply) => {
                let _ = reply.send(Pong);
            }
            GatewayMsg::JobsFinished(FinishedJobs(jobs)) => {
                let waiting: Vec<(JobId, Vec<Waiter>)> = jobs
                    .into_iter()
                    .filter_map(|(id, _)| state.waiters.remove(&id).map(|w| (id, w)))
                    .collect();
                if !waiting.is_empty() {
                    answer_waiters(state.store.clone(), waiting);
                }
            }
            GatewayMsg::Load(report) => {
                state.admitted_since_load.clear();
                state.loads = report.0.into_iter().map(|l| (l.name.clone(), l)).collect();
            }
            GatewayMsg::WaitExpired(WaitTicket { id, ticket }) => {
                if let Some(waiters) = state.waiters.get_mut(&id)
                    && let Some(pos) = waiters.iter().position(|(t, _)| *t == ticket)
                {
                    let waiter = waiters.swap_remove(pos);
                    if waiters.is_empty() {
                        state.waiters.remove(&id);
                    }
                    answer_waiters(state.store.clone(), vec![(id, vec![waiter])]);
                }
            }
        }
        Ok(())
    }
}

impl GatewayState {
    fn submit(&mut self, spec: JobSpec, reply: RpcReplyPort<Reply<Submitted>>) {
        let load = self.loads.get(&spec.pool);
        let admitted = self
            .admitted_since_load
            .get(&spec.pool)
            .copied()
            .unwrap_or(0);
        let pending = load.map_or(0, |l| l.pending) + admitted;
        let rate = load.map_or(0.0, |l| l.finish_rate);
        let (max_attempts, timeout_ms) = match admit(&spec, &self.limits, pending, rate) {
            Ok(effective) => effective,
            Err(e) => {
                let _ = reply.send(Reply(Err(e)));
                return;
            }
        };
        *self
            .admitted_since_load
            .entry(spec.pool.clone())
            .or_default() += 1;
        let store = self.store.clone();
        tokio::spawn(async move {
            let job = NewJob {
                id: JobId::generate(),
                spec,
                max_attempts,
                timeout_ms,
                created_at_ms: unix_ms(),
            };
            let _ = reply.send(Reply(accept(&*store, job).await));
        });
    }

    fn wait(
        &mut self,
        myself: &ActorRef<GatewayMsg>,
        wait: WaitFor,
        reply: RpcReplyPort<Reply<JobStatus>>,
    ) {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.waiters
            .entry(wait.id)
            .or_default()
            .push((ticket, reply));
        let id = wait.id;
        let timeout = Duration::from_millis(wait.timeout_ms.min(MAX_WAIT_MS));
        myself.send_after(timeout, move || {
            GatewayMsg::WaitExpired(WaitTicket { id, ticket })
        });
        // The job may have ended before the waiter was registered: look once, and if so
        // answer through the same path as a finish notice.
        self.wait_check.look(id);
    }
}

/// Writes the job, and once it is durable, hands it to the CapacityManager.
async fn accept(store: &dyn GatewayStore, mut job: NewJob) -> Result<Submitted, GatewayError> {
    let attributes = || {
        vec![
            KeyValue::new("job.id", job.id.to_string()),
            KeyValue::new("pool", job.spec.pool.clone()),
            KeyValue::new("handler", job.spec.handler.clone()),
        ]
    };
    let submit = job_trace::start(
        "job.submit",
        &job_trace::context_of(&job.spec.trace),
        attributes,
    );
    job.spec.trace = job_trace::carrier_of(&submit);
    let accepted = store_and_queue(store, job).await;
    job_trace::end(&submit, || match &accepted {
        Ok(s) if s.deduplicated => "deduplicated".to_owned(),
        Ok(_) => "accepted".to_owned(),
        Err(e) => format!("refused: {e}"),
    });
    accepted
}

/// Writes the job; once it is durable, casts it to the CapacityManager. Should the cast
/// be lost, or no CapacityManager run now, the job waits in the store: the
/// CapacityManager's reconcile sweep (and, on a shared store, the store's announcement)
/// queues it, as its recovery at start does.
async fn store_and_queue(store: &dyn GatewayStore, job: NewJob) -> Result<Submitted, GatewayError> {
    let (id, ref_type, ref_id) = (
        job.id,
        job.spec.metadata.ref_type.clone(),
        job.spec.metadata.ref_id.clone(),
    );
    let queued = QueuedJob {
        id: job.id,
        spec: job.spec.clone(),
        attempts_done: 0,
        max_attempts: job.max_attempts,
        timeout_ms: job.timeout_ms,
        created_at_ms: job.created_at_ms,
    };
    let inserted = store.insert(vec![job]).await.map_err(store_error)?;
    match inserted.first() {
        Some(Inserted::New(_)) => {
            if let Some(manager) = lookup::capacity_manager() {
                let _ = manager.cast(CapacityMsg::Enqueue(JobBatch(vec![queued])));
            }
            Ok(Submitted {
                id,
                deduplicated: false,
            })
        }
        Some(Inserted::Existing(existing)) => Ok(Submitted {
            id: *existing,
            deduplicated: true,
        }),
        Some(Inserted::Duplicate(existing)) => Err(GatewayError::Duplicate {
            ref_type,
            ref_id,
            existing: *existing,
        }),
        None => Err(GatewayError::Store(StoreFailure {
            kind: StoreErrorKind::Permanent,
            message: "the store returned no outcome for the job".into(),
        })),
    }
}

async fn status(store: &dyn GatewayStore, id: JobId) -> Result<JobStatus, GatewayError> {
    store
        .get(id)
        .await
        .map_err(store_error)?
        .ok_or(GatewayError::NotFound(id))
}

async fn output(store: &dyn GatewayStore, id: JobId) -> Result<JobOutput, GatewayError> {
    if let Some(bytes) = store.output(id).await.map_err(store_error)? {
        return Ok(JobOutput(bytes));
    }
    let st = status(store, id).await?;
    Err(GatewayError::NoResult {
        id,
        state: st.state,
    })
}

async fn cancel(store: &dyn GatewayStore, id: JobId) -> Result<JobState, GatewayError> {
    let manager = lookup::capacity_manager()
        .ok_or_else(|| GatewayError::Unavailable("no CapacityManager is running".into()))?;
    let answer = manager
        .call(
            |reply| CapacityMsg::Cancel(id, reply),
            Some(MANAGER_TIMEOUT),
        )
        .await
        .map_err(|e| {
            GatewayError::Unavailable(format!("the CapacityManager did not answer: {e}"))
        })?;
    match answer {
        CallResult::Success(CancelAnswer::Cancelled) => Ok(JobState::Cancelled),
        CallResult::Success(CancelAnswer::NotLive) => {
            let st = status(store, id).await?;
            if st.state.is_terminal() {
                Err(GatewayError::AlreadyFinished {
                    id,
                    state: st.state,
                })
            } else {
                Err(GatewayError::BeingQueued(id))
            }
        }
        CallResult::Timeout => Err(GatewayError::Unavailable(
            "the CapacityManager did not answer in time".into(),
        )),
        CallResult::SenderError => Err(GatewayError::Unavailable(
            "the CapacityManager stopped before the cancel was stored".into(),
        )),
    }
}

async fn capacity(query: CapacityQuery) -> Result<marie_protocol::CapacityReport, GatewayError> {
    let manager = lookup::capacity_manager()
        .ok_or_else(|| GatewayError::Unavailable("no CapacityManager is running".into()))?;
    manager
        .call(
            |reply| CapacityMsg::Capacity(query, reply),
            Some(MANAGER_TIMEOUT),
        )
        .await
        .map_err(|e| GatewayError::Unavailable(format!("the CapacityManager did not answer: {e}")))?
        .success_or(())
        .map_err(|()| {
            GatewayError::Unavailable("the CapacityManager did not answer in time".into())
        })
}

/// Answers the waiters of `waiting` with their jobs' statuses, read from the store in
/// one go (the ends of a whole commit come together).
fn answer_waiters(store: Arc<dyn GatewayStore>, waiting: Vec<(JobId, Vec<Waiter>)>) {
    tokio::spawn(async move {
        let ids = waiting.iter().map(|(id, _)| *id).collect();
        let read: Result<HashMap<JobId, JobStatus>, GatewayError> = store
            .statuses(ids)
            .await
            .map(|found| found.into_iter().map(|s| (s.id, s)).collect())
            .map_err(store_error);
        for (id, waiters) in waiting {
            let result = match &read {
                Ok(found) => found.get(&id).cloned().ok_or(GatewayError::NotFound(id)),
                Err(e) => Err(e.clone()),
            };
            for (_, reply) in waiters {
                let _ = reply.send(Reply(result.clone()));
            }
        }
    });
}

/// The store's error as the Gateway answers it: its kind and causes in words. A
/// permanent one is logged too: the client cannot fix it, whoever runs the node must.
fn store_error(e: StoreError) -> GatewayError {
    let failure = e.failure();
    if failure.kind == StoreErrorKind::Permanent {
        tracing::error!(error = %failure, "the job store refused a request and retrying cannot help: fix what the error names");
    }
    GatewayError::Store(failure)
}
