//! An executor the test drives: it joins its pool's process group, registers and
//! heartbeats like the real one, but runs nothing. Each lease it gets is handed to the
//! test, which decides when (and whether) the run ends, and whether heartbeats renew
//! its leases.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use marie_actors::lookup;
use marie_protocol::Outcome;
use marie_protocol::messages::{
    CapacityMsg, Completion, ExecutorInfo, ExecutorMsg, Heartbeat, LeaseGrant, RegisterAttempt,
    RunRef, Tick,
};
use marie_protocol::names::executor_group;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef, pg};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{PATIENCE, POOL};

/// A lease the fake executor received, and when.
#[derive(Debug)]
pub struct Leased {
    /// The lease.
    pub grant: LeaseGrant,
    /// When it arrived.
    pub at: Instant,
}

/// The test's side of a fake executor.
pub struct FakeExecutor {
    /// Its name.
    pub name: String,
    /// The actor.
    pub actor: ActorRef<ExecutorMsg>,
    leases: mpsc::UnboundedReceiver<Leased>,
    renew: Arc<AtomicBool>,
}

impl FakeExecutor {
    /// Starts an executor of [`POOL`] with `slots`, renewing its leases.
    pub async fn start(name: &str, slots: u32) -> Self {
        let (tx, leases) = mpsc::unbounded_channel();
        let renew = Arc::new(AtomicBool::new(true));
        let args = FakeArgs {
            info: ExecutorInfo {
                name: name.to_owned(),
                pool: POOL.to_owned(),
                slots,
                running: Vec::new(),
            },
            leases: tx,
            renew: renew.clone(),
        };
        let (actor, _) = Actor::spawn(Some(name.to_owned()), Fake, args)
            .await
            .expect("the fake executor starts");
        FakeExecutor {
            name: name.to_owned(),
            actor,
            leases,
            renew,
        }
    }

    /// The next lease it gets, within [`PATIENCE`].
    pub async fn next_lease(&mut self) -> Leased {
        tokio::time::timeout(PATIENCE, self.leases.recv())
            .await
            .unwrap_or_else(|_| panic!("{} got no lease", self.name))
            .expect("the fake executor is running")
    }

    /// The next lease if one comes within `wait`, else `None`.
    pub async fn lease_within(&mut self, wait: Duration) -> Option<Leased> {
        tokio::time::timeout(wait, self.leases.recv())
            .await
            .ok()
            .map(|lease| lease.expect("the fake executor is running"))
    }

    /// Whether its heartbeats list the runs it holds (and so renew their leases).
    pub fn set_renewing(&self, renew: bool) {
        self.renew.store(renew, Ordering::SeqCst);
    }

    /// Ends `run` with `outcome`, reported as the real executor does.
    pub fn finish(&self, run: RunRef, outcome: Outcome) {
        let completion = Completion {
            run,
            executor: self.name.clone(),
            outcome,
            took_ms: 0,
        };
        self.actor
            .cast(ExecutorMsg::RunEnded(completion))
            .expect("the fake executor is running");
    }
}

struct Fake;

struct FakeArgs {
    info: ExecutorInfo,
    leases: mpsc::UnboundedSender<Leased>,
    renew: Arc<AtomicBool>,
}

struct FakeState {
    args: FakeArgs,
    runs: Vec<RunRef>,
    heartbeating: bool,
}

impl Actor for Fake {
    type Msg = ExecutorMsg;
    type State = FakeState;
    type Arguments = FakeArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ExecutorMsg>,
        args: FakeArgs,
    ) -> Result<FakeState, ActorProcessingErr> {
        pg::join(executor_group(&args.info.pool), vec![myself.get_cell()]);
        myself.cast(ExecutorMsg::Register(RegisterAttempt))?;
        Ok(FakeState {
            args,
            runs: Vec::new(),
            heartbeating: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<ExecutorMsg>,
        msg: ExecutorMsg,
        state: &mut FakeState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ExecutorMsg::Register(_) => {
                let info = ExecutorInfo {
                    running: state.runs.clone(),
                    ..state.args.info.clone()
                };
                let registered = match lookup::capacity_manager() {
                    Some(manager) => manager
                        .call(|reply| CapacityMsg::Register(info, reply), None)
                        .await
                        .ok(),
                    None => None,
                };
                match registered {
                    Some(CallResult::Success(ack)) => {
                        state.runs.retain(|run| ack.adopted.contains(run));
                        if !state.heartbeating {
                            state.heartbeating = true;
                            let period = Duration::from_millis(ack.heartbeat_ms);
                            myself.send_interval(period, || ExecutorMsg::HeartbeatTick(Tick));
                        }
                    }
                    _ => {
                        myself.send_after(Duration::from_millis(20), || {
                            ExecutorMsg::Register(RegisterAttempt)
                        });
                    }
                }
            }
            ExecutorMsg::Lease(grant) => {
                state.runs.push(grant.run);
                let _ = state.args.leases.send(Leased {
                    grant,
                    at: Instant::now(),
                });
            }
            ExecutorMsg::CancelRun(run) => state.runs.retain(|r| *r != run),
            ExecutorMsg::RunEnded(completion) => {
                state.runs.retain(|r| *r != completion.run);
                if let Some(manager) = lookup::capacity_manager() {
                    manager.cast(CapacityMsg::Completed(completion))?;
                }
            }
            ExecutorMsg::HeartbeatTick(_) => {
                let running = if state.args.renew.load(Ordering::SeqCst) {
                    state.runs.clone()
                } else {
                    Vec::new()
                };
                let beat = Heartbeat {
                    executor: state.args.info.name.clone(),
                    running,
                };
                if let Some(manager) = lookup::capacity_manager() {
                    let ack = manager
                        .call(|reply| CapacityMsg::Heartbeat(beat, reply), None)
                        .await;
                    if let Ok(CallResult::Success(ack)) = ack
                        && !ack.known
                    {
                        myself.cast(ExecutorMsg::Register(RegisterAttempt))?;
                    }
                }
            }
            ExecutorMsg::Drain(_) => myself.stop(Some("drained".into())),
        }
        Ok(())
    }
}
