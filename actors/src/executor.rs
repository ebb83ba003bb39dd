//! The Executor actor: serves one pool with a number of slots. It registers with the
//! CapacityManager, heartbeats the runs it holds, runs each leased job's handler in its
//! own task, reports the outcome, honours cancellation, and drains before it stops.
//!
//! It watches the CapacityManager's process group: when a CapacityManager joins (a new
//! leader's, or one restarted), it heartbeats at once rather than at its next period, so
//! that the new manager, which does not know it, has it register, and leases it work,
//! without waiting out a heartbeat period.

use std::collections::HashMap;
use std::time::Duration;

use marie_protocol::messages::{
    CapacityMsg, Completion, ExecutorInfo, ExecutorMsg, ExecutorName, Heartbeat, LeaseGrant,
    RegisterAttempt, RunRef, Tick,
};
use marie_protocol::names::{CAPACITY_GROUP, executor_group};
use marie_protocol::{HandlerError, Outcome};
use ractor::pg::GroupChangeMessage;
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent, pg};
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::Instant;

use crate::lookup;
use crate::telemetry::job_trace;
use marie_handlers::{HandlerRegistry, JobInput};
use opentelemetry::KeyValue;

/// How long the executor waits for the CapacityManager to answer.
const MANAGER_TIMEOUT: Duration = Duration::from_secs(5);

/// First wait before registering again when the CapacityManager cannot be reached; it
/// doubles up to [`REGISTER_RETRY_MAX`].
const REGISTER_RETRY: Duration = Duration::from_millis(20);

/// Longest wait between two registration attempts.
const REGISTER_RETRY_MAX: Duration = Duration::from_secs(2);

/// The Executor actor.
pub struct Executor;

/// What an executor starts with.
pub struct ExecutorArgs {
    /// Cluster-unique name (also the actor's name).
    pub name: String,
    /// The pool it serves.
    pub pool: String,
    /// Jobs it runs at once.
    pub slots: u32,
    /// The pool's handlers.
    pub handlers: HandlerRegistry,
}

/// The executor's state.
pub struct ExecutorState {
    info: ExecutorInfo,
    handlers: HandlerRegistry,
    running: HashMap<RunRef, AbortHandle>,
    draining: bool,
    heartbeat: Option<JoinHandle<()>>,
    /// The heartbeat period the CapacityManager asked for, once registered.
    heartbeat_period: Option<Duration>,
    /// Wait before the next registration attempt while the manager is out of reach.
    register_retry: Duration,
}

impl Actor for Executor {
    type Msg = ExecutorMsg;
    type State = ExecutorState;
    type Arguments = ExecutorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ExecutorMsg>,
        args: ExecutorArgs,
    ) -> Result<ExecutorState, ActorProcessingErr> {
        pg::join(executor_group(&args.pool), vec![myself.get_cell()]);
        pg::monitor(CAPACITY_GROUP.to_string(), myself.get_cell());
        myself.cast(ExecutorMsg::Register(RegisterAttempt))?;
        Ok(ExecutorState {
            info: ExecutorInfo {
                name: args.name,
                pool: args.pool,
                slots: args.slots,
                running: Vec::new(),
            },
            handlers: args.handlers,
            running: HashMap::new(),
            draining: false,
            heartbeat: None,
            heartbeat_period: None,
            register_retry: REGISTER_RETRY,
        })
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<ExecutorMsg>,
        event: SupervisionEvent,
        state: &mut ExecutorState,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ProcessGroupChanged(GroupChangeMessage::Join(_, group, _)) = event
            && group == CAPACITY_GROUP
        {
            state.heartbeat_now(&myself);
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<ExecutorMsg>,
        state: &mut ExecutorState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(timer) = state.heartbeat.take() {
            timer.abort();
        }
        for (_, run) in state.running.drain() {
            run.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<ExecutorMsg>,
        msg: ExecutorMsg,
        state: &mut ExecutorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ExecutorMsg::Register(_) => state.register(&myself).await,
            ExecutorMsg::Lease(grant) => state.start(&myself, grant),
            ExecutorMsg::CancelRun(run) => {
                if let Some(task) = state.running.remove(&run) {
                    tracing::info!(job = %run.job, attempt = run.attempt, "run stopped");
                    task.abort();
                }
                state.stop_if_drained(&myself);
            }
            ExecutorMsg::RunEnded(completion) => {
                if state.running.remove(&completion.run).is_some()
                    && let Some(manager) = lookup::capacity_manager()
                {
                    let _ = manager.cast(CapacityMsg::Completed(completion));
                }
                state.stop_if_drained(&myself);
            }
            ExecutorMsg::Drain(_) => {
                tracing::info!(executor = %state.info.name, running = state.running.len(), "draining");
                state.draining = true;
                state.stop_if_drained(&myself);
            }
            ExecutorMsg::HeartbeatTick(_) => state.heartbeat(&myself),
        }
        Ok(())
    }
}

impl ExecutorState {
    /// Registers with the CapacityManager, reporting the runs it holds: those the
    /// manager adopts go on, the others (re-queued by it) are abandoned.
    async fn register(&mut self, myself: &ActorRef<ExecutorMsg>) {
        let info = ExecutorInfo {
            running: self.running.keys().copied().collect(),
            ..self.info.clone()
        };
        let registered = match lookup::capacity_manager() {
            Some(manager) => manager
                .call(
                    |reply| CapacityMsg::Register(info, reply),
                    Some(MANAGER_TIMEOUT),
                )
                .await
                .ok()
                .and_then(|r| r.success_or(()).ok()),
            None => None,
        };
        match registered {
            Some(ack) => {
                self.register_retry = REGISTER_RETRY;
                self.running.retain(|run, task| {
                    let adopted = ack.adopted.contains(run);
                    if !adopted {
                        task.abort();
                    }
                    adopted
                });
                self.heartbeat_period = Some(Duration::from_millis(ack.heartbeat_ms));
                self.restart_heartbeats(myself);
            }
            None => {
                if self.register_retry == REGISTER_RETRY_MAX {
                    tracing::warn!(executor = %self.info.name, "CapacityManager not reachable; registering again soon");
                }
                myself.send_after(self.register_retry, || {
                    ExecutorMsg::Register(RegisterAttempt)
                });
                self.register_retry = (self.register_retry * 2).min(REGISTER_RETRY_MAX);
            }
        }
    }

    fn start(&mut self, myself: &ActorRef<ExecutorMsg>, grant: LeaseGrant) {
        let run = grant.run;
        let handler = self.handlers.get(&grant.handler);
        let over_slots = self.running.len() >= self.info.slots as usize;
        let executor = self.info.name.clone();
        let reply_to = myself.clone();
        let span = job_trace::start("job.execute", &job_trace::context_of(&grant.trace), || {
            let mut attributes = job_trace::job_attributes(run, &self.info.pool, &grant.handler);
            attributes.push(KeyValue::new("executor", executor.clone()));
            attributes
        });
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let outcome = match (handler, over_slots) {
                (_, true) => {
                    Outcome::Failed(HandlerError::transient("the executor had no free slot"))
                }
                (None, false) => Outcome::Failed(HandlerError::invalid_input(format!(
                    "this executor has no handler {:?}",
                    grant.handler
                ))),
                (Some(handler), false) => {
                    let input = JobInput {
                        payload: grant.payload,
                        metadata: grant.metadata,
                    };
                    let limit = Duration::from_millis(grant.timeout_ms);
                    match tokio::time::timeout(limit, handler.run(input)).await {
                        Ok(Ok(output)) => Outcome::Succeeded(output),
                        Ok(Err(e)) => Outcome::Failed(e),
                        Err(_) => Outcome::Failed(HandlerError::transient(format!(
                            "timed out after {} ms",
                            grant.timeout_ms
                        ))),
                    }
                }
            };
            let took_ms = started.elapsed().as_millis() as u64;
            job_trace::end(&span, || match &outcome {
                Outcome::Succeeded(_) => "succeeded".to_owned(),
                Outcome::Failed(e) => format!("failed: {e}"),
            });
            let completion = Completion {
                run,
                executor,
                outcome,
                took_ms,
            };
            let _ = reply_to.cast(ExecutorMsg::RunEnded(completion));
        });
        self.running.insert(run, task.abort_handle());
    }

    /// (Re)starts the periodic heartbeats, the first a period from now; none before the
    /// first registration.
    fn restart_heartbeats(&mut self, myself: &ActorRef<ExecutorMsg>) {
        if let Some(timer) = self.heartbeat.take() {
            timer.abort();
        }
        if let Some(period) = self.heartbeat_period {
            self.heartbeat =
                Some(myself.send_interval(period, || ExecutorMsg::HeartbeatTick(Tick)));
        }
    }

    /// A CapacityManager joined: heartbeat now (a manager that does not know this
    /// executor answers so, and it registers), and the next a full period later, so that
    /// no periodic heartbeat races the registration. Before the first registration the
    /// registration attempts go on by themselves.
    fn heartbeat_now(&mut self, myself: &ActorRef<ExecutorMsg>) {
        if self.heartbeat_period.is_some() {
            self.restart_heartbeats(myself);
            self.heartbeat(myself);
        }
    }

    fn heartbeat(&self, myself: &ActorRef<ExecutorMsg>) {
        let Some(manager) = lookup::capacity_manager() else {
            return;
        };
        let beat = Heartbeat {
            executor: self.info.name.clone(),
            running: self.running.keys().copied().collect(),
        };
        let myself = myself.clone();
        tokio::spawn(async move {
            let ack = manager
                .call(
                    |reply| CapacityMsg::Heartbeat(beat, reply),
                    Some(MANAGER_TIMEOUT),
                )
                .await;
            if let Ok(ractor::rpc::CallResult::Success(ack)) = ack
                && !ack.known
            {
                let _ = myself.cast(ExecutorMsg::Register(RegisterAttempt));
            }
        });
    }

    fn stop_if_drained(&self, myself: &ActorRef<ExecutorMsg>) {
        if self.draining && self.running.is_empty() {
            if let Some(manager) = lookup::capacity_manager() {
                let _ = manager.cast(CapacityMsg::Leave(ExecutorName(self.info.name.clone())));
            }
            tracing::info!(executor = %self.info.name, "drained; stopping");
            myself.stop(Some("drained".into()));
        }
    }
}
