//! The CapacityManager actor: one per cluster. It owns the queues, slots and leases (in
//! a [`Scheduler`]), leases jobs to executors, and persists every change through the
//! [`StoreWriter`]. It never answers a Gateway's waiters itself: the store writer tells
//! every Gateway which jobs ended once their end is durable.
//!
//! Jobs come in from the Gateways' casts and, for those it was not told of (a lost
//! cast, a Gateway on another node writing a shared store), from the store: its
//! announcements and a slow reconcile sweep ([`crate::intake`]), with duplicates and
//! jobs that already ended here left out ([`Intake`]).
//!
//! `handle` only routes: each message is one method of [`CapacityState`] that answers
//! the scheduler's actions; then queued jobs are placed, the actions carried out
//! (`carry_out`, one method per action) and their store updates handed to the writer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use marie_decide::autoscale::should_wake;
use marie_decide::scheduling::{Action, Intake, PoolSetup, Scheduler, SchedulerConfig};
use marie_protocol::messages::RunRef;
use marie_protocol::messages::{
    CancelAnswer, CapacityMsg, DrainOrder, ExecutorInfo, ExecutorMsg, ExecutorName, GatewayMsg,
    Heartbeat, HeartbeatAck, JobBatch, LeaseGrant, LoadReport, LoadedJobs, PoolName, PoolStates,
    QueuedIds, Registered, SupervisorMsg, Tick,
};
use marie_protocol::names::CAPACITY_GROUP;
use marie_protocol::names::executor_group;
use marie_protocol::{JobId, JobState, TraceContext};
use marie_store::{JobStore, JobUpdate};
use opentelemetry::{Context, KeyValue};
use ractor::pg::GroupChangeMessage;
use ractor::{
    Actor, ActorProcessingErr, ActorRef, ActorStatus, RpcReplyPort, SupervisionEvent, pg,
};
use tokio::task::JoinHandle;

use crate::clock::{MonotonicClock, unix_ms};
use crate::store_writer::StoreWriter;
use crate::telemetry::job_trace;
use crate::telemetry::metrics::{JobMetrics, PoolSnapshot};
use crate::{intake, lookup};

/// The CapacityManager actor.
pub struct CapacityManager;

/// What the CapacityManager starts with (again, when it is restarted).
#[derive(Clone)]
pub struct CapacityManagerArgs {
    /// The job store it recovers from and writes to.
    pub store: Arc<dyn JobStore>,
    /// Lease, timeout and backoff rules, with the pace of the CapacityManager's tick
    /// (time applied, load published) and of the executors' heartbeats.
    pub scheduler: SchedulerConfig,
    /// The configured pools.
    pub pools: Vec<PoolSetup>,
}

/// The CapacityManager's state.
pub struct CapacityState {
    scheduler: Scheduler,
    writer: Option<StoreWriter>,
    clock: MonotonicClock,
    executors: HashMap<String, ActorRef<ExecutorMsg>>,
    heartbeat_ms: u64,
    metrics: JobMetrics,
    /// The `job.leased` span of every running job.
    runs: HashMap<JobId, Context>,
    /// When the Supervisor was last woken for each pool.
    last_wake_ms: HashMap<String, u64>,
    /// Which jobs from the store to take in, and when to sweep it.
    intake: Intake,
    /// The store, for the sweep and the loads.
    store: Arc<dyn JobStore>,
    /// The task that forwards the store's announcements, if it makes any.
    listener: Option<JoinHandle<()>>,
    /// Itself, for the answers of the store reads.
    myself: ActorRef<CapacityMsg>,
}

impl Actor for CapacityManager {
    type Msg = CapacityMsg;
    type State = CapacityState;
    type Arguments = CapacityManagerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<CapacityMsg>,
        args: CapacityManagerArgs,
    ) -> Result<CapacityState, ActorProcessingErr> {
        let recovered = args.store.recover().await?;
        tracing::info!(
            queued = recovered.queued.len(),
            running = recovered.running.len(),
            "recovered live jobs from the store; running ones wait for their executors to report them"
        );
        let tick = Duration::from_millis(args.scheduler.tick_ms);
        let heartbeat_ms = args.scheduler.heartbeat_ms;
        let clock = MonotonicClock::start();
        // Listening starts before the first write: whatever is committed from now on
        // is announced, and what was committed before is in `recovered` or the sweep.
        let listener = intake::listen(args.store.clone(), myself.clone());
        let mut state = CapacityState {
            intake: Intake::new(args.scheduler.sweep_ms, clock.now_ms()),
            store: args.store.clone(),
            listener,
            myself: myself.clone(),
            scheduler: Scheduler::new(args.scheduler, &args.pools),
            writer: Some(StoreWriter::spawn(args.store, myself.clone())),
            clock,
            executors: HashMap::new(),
            heartbeat_ms,
            metrics: JobMetrics::register(),
            runs: HashMap::new(),
            last_wake_ms: HashMap::new(),
        };
        let now = state.clock.now_ms();
        state.scheduler.recover_running(recovered.running, now);
        let mut actions = Vec::new();
        for job in recovered.queued {
            actions.extend(state.scheduler.enqueue(job, now));
        }
        let updates = state.carry_out(actions);
        state.writer().write(updates);
        pg::join(CAPACITY_GROUP.to_string(), vec![myself.get_cell()]);
        // An executor whose node left the cluster (connection closed, or cut for
        // silence) leaves its pool's group: that is the fastest sign it is lost.
        for pool in &args.pools {
            pg::monitor(executor_group(&pool.name), myself.get_cell());
        }
        myself.send_interval(tick, || CapacityMsg::Tick(Tick));
        Ok(state)
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<CapacityMsg>,
        event: SupervisionEvent,
        _state: &mut CapacityState,
    ) -> Result<(), ActorProcessingErr> {
        // Group changes overtake messages: the executor's last completions (and its own
        // Leave) may still be on their way, over the link or through the mailbox. The
        // loss is handled after a grace period, behind them.
        if let SupervisionEvent::ProcessGroupChanged(GroupChangeMessage::Leave(_, _, cells)) = event
        {
            for name in cells.iter().filter_map(|cell| cell.get_name()) {
                myself.send_after(LOST_GRACE, move || CapacityMsg::Lost(ExecutorName(name)));
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<CapacityMsg>,
        state: &mut CapacityState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(listener) = state.listener.take() {
            listener.abort();
        }
        if let Some(writer) = state.writer.take()
            && let Err(e) = writer.close().await
        {
            tracing::error!(error = %e, "the last state changes of the CapacityManager were not stored");
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<CapacityMsg>,
        msg: CapacityMsg,
        state: &mut CapacityState,
    ) -> Result<(), ActorProcessingErr> {
        state.writer_running().await?;
        let now = state.clock.now_ms();
        let mut touched: Vec<String> = Vec::new();
        let mut actions = match msg {
            CapacityMsg::Enqueue(batch) => {
                let (actions, pools) = state.enqueue(batch, now);
                touched = pools;
                actions
            }
            CapacityMsg::Register(info, reply) => state.register(&info, reply, now),
            CapacityMsg::Heartbeat(hb, reply) => state.heartbeat(&hb, reply, now),
            CapacityMsg::Completed(c) => {
                state.scheduler.complete(&c.executor, c.run, c.outcome, now)
            }
            CapacityMsg::Cancel(id, reply) => state.cancel(id, reply, now),
            CapacityMsg::Drain(name) => state.drain(&name.0),
            CapacityMsg::Lost(name) => state.lost(&name.0, now),
            CapacityMsg::Leave(name) => state.leave(&name.0, now),
            CapacityMsg::PoolStates(_, reply) => {
                let _ = reply.send(PoolStates(state.scheduler.pool_states()));
                Vec::new()
            }
            CapacityMsg::SetTarget(target) => {
                state.scheduler.set_target(&target.pool, target.slots);
                Vec::new()
            }
            CapacityMsg::Capacity(_, reply) => {
                let _ = reply.send(state.scheduler.capacity());
                Vec::new()
            }
            CapacityMsg::Tick(_) => state.tick(now),
            CapacityMsg::StoreQueued(queued) => {
                state.store_queued(queued, now);
                Vec::new()
            }
            CapacityMsg::Loaded(loaded) => {
                let (actions, pools) = state.loaded(loaded, now);
                touched = pools;
                actions
            }
            CapacityMsg::EndsStored(ids) => {
                state.intake.ends_stored(ids.0, now);
                Vec::new()
            }
        };
        actions.extend(state.scheduler.place(now));
        let updates = state.carry_out(actions);
        state.writer().write(updates);
        state.wake_supervisor(&touched, now);
        Ok(())
    }
}

/// How long an executor that left its pool's group without saying so keeps its leases,
/// so that what it sent before leaving is handled first.
const LOST_GRACE: Duration = Duration::from_millis(500);

impl CapacityState {
    /// Queues durable jobs, except those that already ended here (a late cast, or a
    /// read of the store made before their end was written); answers the actions and
    /// the pools that got jobs.
    fn enqueue(&mut self, batch: JobBatch, now: u64) -> (Vec<Action>, Vec<String>) {
        let mut actions = Vec::new();
        let mut pools: Vec<String> = Vec::new();
        for job in batch
            .0
            .into_iter()
            .filter(|job| self.intake.admits(&job.id))
        {
            if !pools.contains(&job.spec.pool) {
                pools.push(job.spec.pool.clone());
            }
            actions.extend(self.scheduler.enqueue(job, now));
        }
        (actions, pools)
    }

    /// An executor (re-)registers: its cached reference is dropped, its slots counted,
    /// and the runs it reports from before this CapacityManager started adopted where
    /// they match (the answer says which; it abandons the others).
    fn register(
        &mut self,
        info: &ExecutorInfo,
        reply: RpcReplyPort<Registered>,
        now: u64,
    ) -> Vec<Action> {
        tracing::info!(executor = %info.name, pool = %info.pool, slots = info.slots, "executor registered");
        self.executors.remove(&info.name);
        let actions = self
            .scheduler
            .register(&info.name, &info.pool, info.slots, now);
        let adopted = self.scheduler.adopt(&info.name, &info.running, now);
        if !info.running.is_empty() {
            tracing::info!(
                executor = %info.name,
                reported = info.running.len(),
                adopted = adopted.len(),
                "executor reported runs from before this CapacityManager started; matching ones keep their leases"
            );
        }
        let _ = reply.send(Registered {
            heartbeat_ms: self.heartbeat_ms,
            adopted,
        });
        actions
    }

    /// An executor's sign of life; the answer tells an unknown executor to register.
    fn heartbeat(
        &mut self,
        hb: &Heartbeat,
        reply: RpcReplyPort<HeartbeatAck>,
        now: u64,
    ) -> Vec<Action> {
        let actions = self.scheduler.heartbeat(&hb.executor, &hb.running, now);
        let _ = reply.send(HeartbeatAck {
            known: actions.is_some(),
        });
        actions.unwrap_or_default()
    }

    /// Cancels a live job and answers once the cancel is durable; a job the scheduler
    /// does not hold is answered `NotLive` at once.
    fn cancel(&mut self, id: JobId, reply: RpcReplyPort<CancelAnswer>, now: u64) -> Vec<Action> {
        match self.scheduler.cancel(id, now) {
            Some(actions) => {
                let updates = self.carry_out(actions);
                let durable = self.writer().write_acked(updates);
                // A cancel that never becomes durable is not answered: the Gateway tells
                // its client to try again.
                tokio::spawn(async move {
                    if durable.await.is_ok() {
                        let _ = reply.send(CancelAnswer::Cancelled);
                    }
                });
            }
            None => {
                let _ = reply.send(CancelAnswer::NotLive);
            }
        }
        Vec::new()
    }

    /// Stops leasing to an executor and tells it to drain.
    fn drain(&mut self, executor: &str) -> Vec<Action> {
        if self.scheduler.drain(executor) {
            tracing::info!(%executor, "draining executor");
            if let Some(target) = self.executor_ref(executor) {
                let _ = target.cast(ExecutorMsg::Drain(DrainOrder));
            }
        }
        Vec::new()
    }

    /// An executor whose node left the cluster: its runs are re-queued. When two sessions
    /// to its node opened at once, ractor_cluster closed one and the executor is in its
    /// group again through the other: then it is not lost.
    fn lost(&mut self, executor: &str, now: u64) -> Vec<Action> {
        self.executors.remove(executor);
        let pool = self.scheduler.executor_pool(executor);
        if pool.is_some_and(|pool| lookup::executor(pool, executor).is_some()) {
            tracing::info!(%executor, "executor still reachable over another connection to its node");
            return Vec::new();
        }
        if pool.is_some() {
            tracing::warn!(%executor, "executor lost: its node left the cluster");
        }
        self.scheduler
            .executor_lost(executor, "its node left the cluster", now)
    }

    /// An executor that stopped: whatever it still holds is re-queued.
    fn leave(&mut self, executor: &str, now: u64) -> Vec<Action> {
        tracing::info!(%executor, "executor left");
        self.executors.remove(executor);
        self.scheduler.executor_lost(executor, "it stopped", now)
    }

    /// Jobs the store holds as queued: loads those neither held nor ended here.
    fn store_queued(&mut self, queued: QueuedIds, now: u64) {
        if queued.swept {
            self.intake.swept(now);
        }
        let missing = self
            .intake
            .missing(queued.ids, |id| self.scheduler.job(id).is_some());
        if missing.is_empty() {
            return;
        }
        if queued.swept {
            tracing::info!(
                jobs = missing.len(),
                "reconcile sweep: queued jobs in the store that the CapacityManager was not told of; loading them"
            );
        }
        intake::load(self.store.clone(), missing, now, self.myself.clone());
    }

    /// Jobs loaded from the store: queued, unless the read is too old to trust.
    fn loaded(&mut self, loaded: LoadedJobs, now: u64) -> (Vec<Action>, Vec<String>) {
        if !self.intake.fresh(loaded.read_at_ms, now) {
            tracing::warn!(
                jobs = loaded.jobs.len(),
                "jobs loaded from the store arrived too late to trust; the next sweep reads them again"
            );
            return (Vec::new(), Vec::new());
        }
        self.enqueue(JobBatch(loaded.jobs), now)
    }

    /// The timer: expire leases and timeouts, publish load to the Gateways and the
    /// metrics, and sweep the store when that is due.
    fn tick(&mut self, now: u64) -> Vec<Action> {
        if self.intake.sweep_due(now) {
            intake::sweep(self.store.clone(), self.myself.clone(), true);
        }
        let actions = self.scheduler.tick(now);
        let loads = self.scheduler.loads();
        for gateway in lookup::gateways() {
            let _ = gateway.cast(GatewayMsg::Load(LoadReport(loads.clone())));
        }
        self.metrics.set_snapshot(PoolSnapshot {
            capacity: self.scheduler.capacity(),
            loads,
        });
        actions
    }
}

impl CapacityState {
    /// Wakes the Supervisor for pools that just got jobs they cannot start at once.
    fn wake_supervisor(&mut self, pools: &[String], now: u64) {
        for pool in pools {
            let since = self
                .last_wake_ms
                .get(pool)
                .map(|at| now.saturating_sub(*at));
            let ready = self.scheduler.has_ready_executor(pool);
            if should_wake(ready, self.scheduler.pending(pool), since) {
                self.last_wake_ms.insert(pool.clone(), now);
                for supervisor in lookup::supervisors() {
                    let _ = supervisor.cast(SupervisorMsg::Wake(PoolName(pool.clone())));
                }
            }
        }
    }

    /// Fails once the store writer stopped on its own (the store refused a write for
    /// good): this CapacityManager's view is then ahead of the store, and the root
    /// starts a new one from the store.
    async fn writer_running(&mut self) -> Result<(), ActorProcessingErr> {
        if let Some(writer) = self.writer.take_if(|writer| writer.stopped()) {
            writer.close().await?;
            return Err("the job store's writer ended before the CapacityManager".into());
        }
        Ok(())
    }

    fn writer(&self) -> &StoreWriter {
        self.writer
            .as_ref()
            .expect("the writer lives until post_stop")
    }

    /// Sends what the scheduler decided and returns the store updates it implies. An
    /// executor that cannot be reached is declared lost, which may decide more.
    fn carry_out(&mut self, mut actions: Vec<Action>) -> Vec<JobUpdate> {
        let mut updates = Vec::new();
        let at_ms = unix_ms();
        while !actions.is_empty() {
            let mut more = Vec::new();
            for action in actions {
                match action {
                    Action::Start {
                        executor,
                        run,
                        waited_ms,
                    } => match self.start_run(executor, run, waited_ms, at_ms) {
                        Ok(started) => updates.push(started),
                        Err(decided) => more.extend(decided),
                    },
                    Action::Stop { executor, run } => self.stop_run(&executor, run),
                    Action::Requeued {
                        id,
                        attempts_done,
                        error,
                    } => {
                        self.record_requeue(id, attempts_done, &error);
                        updates.push(JobUpdate::Requeued {
                            id,
                            attempts_done,
                            error,
                            at_ms,
                        });
                    }
                    Action::Finished {
                        id,
                        pool,
                        ran_ms,
                        trace,
                        state,
                        error,
                        output,
                    } => {
                        self.record_end(id, &pool, ran_ms, &trace, state);
                        self.intake.ended(id);
                        updates.push(JobUpdate::Finished {
                            id,
                            state,
                            error,
                            output,
                            at_ms,
                        });
                    }
                }
            }
            actions = more;
        }
        updates
    }

    /// Leases `run` to `executor`: the `Started` update once the lease is sent, or, when
    /// the executor cannot be reached, what the scheduler decides once it is lost.
    fn start_run(
        &mut self,
        executor: String,
        run: RunRef,
        waited_ms: u64,
        at_ms: u64,
    ) -> Result<JobUpdate, Vec<Action>> {
        let grant = self.lease_grant(&executor, run, waited_ms);
        let sent = match (grant, self.executor_ref(&executor)) {
            (Some(grant), Some(target)) => target.cast(ExecutorMsg::Lease(grant)).is_ok(),
            _ => false,
        };
        if sent {
            return Ok(JobUpdate::Started {
                run,
                executor,
                at_ms,
            });
        }
        tracing::warn!(%executor, "executor unreachable; declaring it lost");
        self.executors.remove(&executor);
        let now = self.clock.now_ms();
        let mut decided = self.scheduler.executor_lost(&executor, "unreachable", now);
        decided.extend(self.scheduler.place(now));
        Err(decided)
    }

    /// Tells the executor to stop a cancelled or timed-out run.
    fn stop_run(&mut self, executor: &str, run: RunRef) {
        if let Some(target) = self.executor_ref(executor) {
            let _ = target.cast(ExecutorMsg::CancelRun(run));
        }
    }

    /// A run that ended without ending its job (the job waits for another attempt):
    /// logged, and its `job.leased` span closed.
    fn record_requeue(&mut self, id: JobId, attempts_done: u32, error: &str) {
        tracing::info!(job = %id, attempts_done, %error, "job re-queued");
        if let Some(leased) = self.runs.remove(&id) {
            job_trace::end(&leased, || format!("requeued: {error}"));
        }
    }

    /// A job that ended: its metrics, its `job.leased` span and its `job.complete` span.
    fn record_end(
        &mut self,
        id: JobId,
        pool: &str,
        ran_ms: Option<u64>,
        trace: &TraceContext,
        state: JobState,
    ) {
        self.metrics.ended(pool, state, ran_ms);
        if let Some(leased) = self.runs.remove(&id) {
            job_trace::end(&leased, || state.to_string());
        }
        let attributes = || {
            vec![
                KeyValue::new("job.id", id.to_string()),
                KeyValue::new("pool", pool.to_owned()),
                KeyValue::new("outcome", state.to_string()),
            ]
        };
        let job_cx = job_trace::context_of(trace);
        job_trace::record_past("job.complete", &job_cx, Duration::ZERO, attributes);
    }

    /// The lease of `run` for `executor`, with its metrics and spans recorded: the wait
    /// in the queue (`job.queued`) and the attempt (`job.leased`, open until the run
    /// ends; its context travels with the lease).
    fn lease_grant(&mut self, executor: &str, run: RunRef, waited_ms: u64) -> Option<LeaseGrant> {
        let job = self.scheduler.job(&run.job)?;
        let (pool, handler) = (&job.spec.pool, &job.spec.handler);
        self.metrics.started(pool, waited_ms);
        let job_cx = job_trace::context_of(&job.spec.trace);
        let waited = Duration::from_millis(waited_ms);
        job_trace::record_past("job.queued", &job_cx, waited, || {
            job_trace::job_attributes(run, pool, handler)
        });
        let leased = job_trace::start("job.leased", &job_cx, || {
            let mut attributes = job_trace::job_attributes(run, pool, handler);
            attributes.push(KeyValue::new("executor", executor.to_owned()));
            attributes
        });
        let grant = LeaseGrant {
            run,
            handler: handler.clone(),
            payload: job.spec.payload.clone(),
            metadata: job.spec.metadata.clone(),
            timeout_ms: job.timeout_ms,
            trace: job_trace::carrier_of(&leased),
        };
        if job_trace::enabled() {
            self.runs.insert(run.job, leased);
        }
        Some(grant)
    }

    /// The executor's actor, looked up in its pool's group and cached while it lives
    /// (a closed session stops the actors it reached its node's executors through).
    fn executor_ref(&mut self, name: &str) -> Option<ActorRef<ExecutorMsg>> {
        if let Some(actor) = self.executors.get(name) {
            if !matches!(
                actor.get_status(),
                ActorStatus::Stopping | ActorStatus::Stopped
            ) {
                return Some(actor.clone());
            }
            self.executors.remove(name);
        }
        let pool = self.scheduler.executor_pool(name)?;
        let actor = lookup::executor(pool, name)?;
        self.executors.insert(name.to_owned(), actor.clone());
        Some(actor)
    }
}
