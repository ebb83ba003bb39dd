//! What the in-process tests share: a node's actors (the root with its CapacityManager,
//! and a Gateway) over the memory store, fake executors that speak the executor
//! protocol, and waits bounded in tokio time.
//!
//! The tests run on paused time (`#[tokio::test(start_paused = true)]`): the clock only
//! moves when every task waits, straight to the next timer, so leases, heartbeats and
//! backoff are checked to the millisecond, however busy the machine is.
//!
//! Actors find each other in `ractor::pg`, which is global to the process, and the
//! CapacityManager's actor name is fixed: each test file is its own binary, and holds
//! one test that starts a CapacityManager.

// Each test binary uses a part of what is here.
#![allow(dead_code)]

pub mod controlled_store;
pub mod fake_executor;
pub mod platform;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use marie_actors::capacity_manager::CapacityManagerArgs;
use marie_actors::executor::{Executor, ExecutorArgs};
use marie_actors::gateway::{Gateway, GatewayArgs};
use marie_actors::lookup;
use marie_actors::root::{NodeRoot, NodeRootArgs, RootMsg};
use marie_actors::supervisor::{PoolBackend, ScaledPool, Supervisor, SupervisorArgs};
use marie_decide::admission::{Limits, PoolRules};
use marie_decide::autoscale::{AutoscaleSettings, ScaleToZero};
use marie_decide::scheduling::{PoolSetup, SchedulerConfig};
use marie_protocol::messages::{
    CapacityMsg, CapacityQuery, ExecutorMsg, GatewayMsg, Reply, SupervisorMsg,
};
use marie_protocol::{JobId, JobSpec, JobState, JobStatus};
use marie_store::{GatewayStore, JobStore};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef};
use tokio::task::JoinHandle;

/// The pool every test uses.
pub const POOL: &str = "extract";

/// Longest any wait of a test lasts, in tokio time.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// Timing rules small enough to read in a test.
pub fn scheduler() -> SchedulerConfig {
    SchedulerConfig {
        tick_ms: 100,
        heartbeat_ms: 200,
        lease_ttl_ms: 2_000,
        executor_timeout_ms: 5_000,
        backoff_base_ms: 500,
        backoff_max_ms: 4_000,
        sweep_ms: 5_000,
    }
}

/// A node's actors: the root (holding the CapacityManager) and a Gateway linked to it.
pub struct Node {
    /// The root.
    pub root: ActorRef<RootMsg>,
    /// Resolves when the root has stopped.
    pub root_done: JoinHandle<()>,
    /// The Gateway.
    pub gateway: ActorRef<GatewayMsg>,
}

/// Starts the root with a CapacityManager over `store`, and a Gateway.
pub async fn start_node(store: Arc<dyn JobStore>, scheduler: SchedulerConfig) -> Node {
    let manager = CapacityManagerArgs {
        store: store.clone(),
        pools: vec![PoolSetup {
            name: POOL.into(),
            target_slots: 0,
        }],
        scheduler,
    };
    let args = NodeRootArgs {
        manager: Some(manager),
    };
    let (root, root_done) = Actor::spawn(Some("test-root".into()), NodeRoot, args)
        .await
        .expect("the root starts");
    let gateway_store: Arc<dyn GatewayStore> = store;
    let gateway_args = GatewayArgs {
        store: gateway_store,
        limits: limits(),
    };
    let (gateway, _) = Actor::spawn_linked(
        Some("test-gateway".into()),
        Gateway,
        gateway_args,
        root.get_cell(),
    )
    .await
    .expect("the Gateway starts");
    Node {
        root,
        root_done,
        gateway,
    }
}

/// Starts a real executor of [`POOL`] with the built-in `sleep` and `echo` handlers,
/// linked to `root` as a node's executors are.
pub async fn start_executor(
    name: &str,
    slots: u32,
    root: Option<&ActorRef<RootMsg>>,
) -> (ActorRef<ExecutorMsg>, JoinHandle<()>) {
    let handlers = marie_handlers::registry(&["sleep".into(), "echo".into()])
        .expect("the handlers are built in");
    let args = ExecutorArgs {
        name: name.to_owned(),
        pool: POOL.to_owned(),
        slots,
        handlers,
    };
    match root {
        Some(root) => {
            Actor::spawn_linked(Some(name.to_owned()), Executor, args, root.get_cell()).await
        }
        None => Actor::spawn(Some(name.to_owned()), Executor, args).await,
    }
    .expect("the executor starts")
}

/// The slots of registered executors in [`POOL`], as the CapacityManager counts them;
/// 0 while none answers.
pub async fn registered_slots() -> u64 {
    let Some(manager) = lookup::capacity_manager() else {
        return 0;
    };
    match manager
        .call(|reply| CapacityMsg::Capacity(CapacityQuery, reply), None)
        .await
    {
        Ok(CallResult::Success(report)) => report
            .slots
            .iter()
            .filter(|p| p.name == POOL)
            .map(|p| p.capacity)
            .sum(),
        _ => 0,
    }
}

/// Waits until the CapacityManager counts `slots` registered slots in [`POOL`], for at
/// most [`PATIENCE`].
pub async fn wait_for_slots(slots: u64) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let now = registered_slots().await;
        if now == slots {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the pool never had {slots} registered slots (it has {now})"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What the Gateway admits: the `sleep` and `echo` handlers in [`POOL`].
pub fn limits() -> Limits {
    let rules = PoolRules {
        handlers: vec!["sleep".into(), "echo".into()],
        max_queued: 10_000,
    };
    Limits {
        pools: BTreeMap::from([(POOL.to_owned(), rules)]),
        max_payload_bytes: 1 << 20,
        default_max_attempts: 3,
        max_attempts_cap: 10,
        default_timeout_ms: 60_000,
    }
}

/// A `sleep` job of `ms` milliseconds in [`POOL`].
pub fn sleep_job(ms: u64) -> JobSpec {
    JobSpec::new(POOL, "sleep", ms.to_string().into_bytes())
}

/// Calls the Gateway and unwraps its answer.
pub async fn ask<T>(
    gateway: &ActorRef<GatewayMsg>,
    msg: impl FnOnce(ractor::RpcReplyPort<Reply<T>>) -> GatewayMsg,
) -> Result<T, marie_protocol::GatewayError>
where
    T: std::fmt::Debug + Send + 'static,
{
    match gateway
        .call(msg, Some(PATIENCE))
        .await
        .expect("the Gateway is running")
    {
        CallResult::Success(Reply(result)) => result,
        other => panic!("the Gateway did not answer: {other:?}"),
    }
}

/// Submits `spec` and returns the job's id.
pub async fn submit(gateway: &ActorRef<GatewayMsg>, spec: JobSpec) -> JobId {
    ask(gateway, |reply| GatewayMsg::Submit(spec, reply))
        .await
        .expect("the job is accepted")
        .id
}

/// Polls the store until the job's status satisfies `done`, for at most [`PATIENCE`].
pub async fn wait_for(
    store: &dyn GatewayStore,
    id: JobId,
    what: &str,
    done: impl Fn(&JobStatus) -> bool,
) -> JobStatus {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let status = store.get(id).await.expect("the store answers");
        match status {
            Some(status) if done(&status) => return status,
            _ if tokio::time::Instant::now() > deadline => {
                panic!("job {id} never {what}; last status: {status:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// Waits until every job of `ids` runs; answers the executor of each.
pub async fn running_on(store: &dyn GatewayStore, ids: &[JobId]) -> HashMap<JobId, String> {
    let mut executors = HashMap::new();
    for id in ids {
        let status = wait_for(store, *id, "ran", |s| s.state == JobState::Running).await;
        executors.insert(*id, status.executor.expect("a running job has an executor"));
    }
    executors
}

/// Kills the CapacityManager and waits for the node's root to start a new one.
pub async fn restart_capacity_manager() {
    let killed = lookup::capacity_manager().expect("the CapacityManager runs");
    killed.kill();
    wait_until("a new CapacityManager joins its group", || {
        lookup::capacity_manager().is_some_and(|m| m.get_id() != killed.get_id())
    })
    .await;
}

/// Waits for `check` to hold, polling every 10 ms for at most [`PATIENCE`].
pub async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Autoscale settings that move within seconds: from `min` to `max` executors, no
/// scale-down window beyond the runs, and — with `min` 0 — idle to one executor after
/// 1 s and to zero after 2 s.
pub fn autoscale(min: u32, max: u32) -> AutoscaleSettings {
    AutoscaleSettings {
        min,
        max,
        scale_down_window_secs: 0,
        scale_to_zero: ScaleToZero {
            enabled: min == 0,
            idle_delay_secs: 1,
            last_executor_delay_secs: 2,
        },
        ..AutoscaleSettings::default()
    }
}

/// Starts a Supervisor scaling [`POOL`] (executors of 2 slots) through `platform`'s
/// replica count, deciding every 100 ms and reading the count again every `resync`.
pub async fn start_supervisor(
    platform: &platform::Platform,
    settings: AutoscaleSettings,
    resync: Duration,
) -> ActorRef<SupervisorMsg> {
    let pool = ScaledPool {
        name: POOL.into(),
        slots: 2,
        settings,
        cold_start_guess_ms: 500,
        backend: PoolBackend::Replicas {
            backend: Arc::new(platform.clone()),
            resync,
        },
    };
    let args = SupervisorArgs {
        pools: vec![pool],
        tick: Duration::from_millis(100),
    };
    Actor::spawn(Some("test-supervisor".into()), Supervisor, args)
        .await
        .expect("the Supervisor starts")
        .0
}
