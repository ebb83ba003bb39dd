//! A platform that keeps a replica count per pool, as a Kubernetes Deployment does, for
//! the Supervisor's declarative pools: when its count goes up it starts real executors
//! (after a start-up delay, under random names it picks), when it goes down it removes
//! the pod it would — a leaving one first, else the newest — and it can change its own
//! count (a second writer) or fail with a given kind.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use marie_actors::supervisor::{ReplicaBackend, ReplicaError, ReplicaFailure};
use marie_protocol::messages::ExecutorMsg;
use ractor::ActorRef;

use super::{POOL, start_executor};

/// How long a pod takes from being asked for to its executor starting.
pub const POD_START: Duration = Duration::from_millis(400);

/// A pod removed because the count went down.
#[derive(Clone, Debug)]
pub struct Removed {
    /// Its executor.
    pub executor: String,
    /// Whether its executor had started.
    pub started: bool,
    /// Whether the Supervisor had named it leaving.
    pub leaving: bool,
}

/// One call the Supervisor made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// `replicas()`.
    Read,
    /// `set_replicas(from, to, leaving)`, answered `ok` or not.
    Write {
        /// The count the Supervisor expected.
        from: u32,
        /// The count it set.
        to: u32,
        /// The executors it named as leaving.
        leaving: Vec<String>,
        /// Whether the write was made.
        ok: bool,
    },
}

struct Pod {
    executor: String,
    actor: Option<ActorRef<ExecutorMsg>>,
    leaving: bool,
}

#[derive(Default)]
struct State {
    replicas: u32,
    pods: Vec<Pod>,
    calls: Vec<Call>,
    removed: Vec<Removed>,
    failing: Option<ReplicaFailure>,
    random: Option<RandomState>,
    started: u64,
}

/// The platform. Clones share it.
#[derive(Clone, Default)]
pub struct Platform {
    state: Arc<Mutex<State>>,
}

impl Platform {
    /// A platform keeping `replicas` pods of [`POOL`], started at once.
    pub fn start(replicas: u32) -> Platform {
        let platform = Platform::default();
        platform.lock().replicas = replicas;
        platform.reconcile();
        platform
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The count it keeps.
    pub fn replicas(&self) -> u32 {
        self.lock().replicas
    }

    /// Pods it runs (started or starting).
    pub fn pods(&self) -> usize {
        self.lock().pods.len()
    }

    /// Every call the Supervisor made, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The writes the Supervisor made that were carried out.
    pub fn writes(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| matches!(c, Call::Write { ok: true, .. }))
            .collect()
    }

    /// The pods it removed when its count went down.
    pub fn removed(&self) -> Vec<Removed> {
        self.lock().removed.clone()
    }

    /// Somebody else sets the count (a person with `kubectl scale`).
    pub fn scale_elsewhere(&self, replicas: u32) {
        self.lock().replicas = replicas;
        self.reconcile();
    }

    /// Every call fails with `kind` from now on; `None` heals it.
    pub fn fail_with(&self, kind: Option<ReplicaFailure>) {
        self.lock().failing = kind;
    }

    /// Starts pods up to the count, removes pods beyond it.
    fn reconcile(&self) {
        let mut state = self.lock();
        while state.pods.len() > state.replicas as usize {
            let at = state
                .pods
                .iter()
                .position(|p| p.leaving)
                .unwrap_or(state.pods.len() - 1);
            let pod = state.pods.remove(at);
            state.removed.push(Removed {
                executor: pod.executor,
                started: pod.actor.is_some(),
                leaving: pod.leaving,
            });
            if let Some(actor) = pod.actor {
                actor.stop(Some("its pod was removed".into()));
            }
        }
        while state.pods.len() < state.replicas as usize {
            state.started += 1;
            let started = state.started;
            let random = state.random.get_or_insert_with(RandomState::new);
            let executor = format!("pod-{:012x}-{POOL}-1", random.hash_one(started) >> 16);
            state.pods.push(Pod {
                executor: executor.clone(),
                actor: None,
                leaving: false,
            });
            let platform = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(POD_START).await;
                platform.run_pod(executor).await;
            });
        }
    }

    /// The pod of `executor`, still wanted, starts its executor.
    async fn run_pod(&self, executor: String) {
        let wanted = self.lock().pods.iter().any(|p| p.executor == executor);
        if !wanted {
            return;
        }
        let (actor, _) = start_executor(&executor, 2, None).await;
        let mut state = self.lock();
        match state.pods.iter_mut().find(|p| p.executor == executor) {
            Some(pod) => pod.actor = Some(actor),
            None => actor.stop(Some("its pod was removed while it started".into())),
        }
    }

    fn failure(&self, kind: ReplicaFailure) -> ReplicaError {
        ReplicaError::Failed {
            object: self.object(POOL),
            kind,
            problem: format!("the test platform fails with {kind:?}"),
            fix: "heal it in the test".into(),
        }
    }
}

#[async_trait]
impl ReplicaBackend for Platform {
    fn name(&self) -> &'static str {
        "test-platform"
    }

    fn object(&self, pool: &str) -> String {
        format!("deployment/marie-executor-{pool}")
    }

    async fn replicas(&self, _pool: &str) -> Result<u32, ReplicaError> {
        let mut state = self.lock();
        state.calls.push(Call::Read);
        match state.failing {
            Some(kind) => {
                drop(state);
                Err(self.failure(kind))
            }
            None => Ok(state.replicas),
        }
    }

    async fn set_replicas(
        &self,
        pool: &str,
        from: u32,
        to: u32,
        leaving: &[String],
    ) -> Result<(), ReplicaError> {
        let mut state = self.lock();
        let found = state.replicas;
        let failing = state.failing;
        let ok = failing.is_none() && found == from;
        state.calls.push(Call::Write {
            from,
            to,
            leaving: leaving.to_vec(),
            ok,
        });
        if let Some(kind) = failing {
            drop(state);
            return Err(self.failure(kind));
        }
        if found != from {
            return Err(ReplicaError::ScaledElsewhere {
                object: self.object(pool),
                expected: from,
                found,
            });
        }
        for pod in state.pods.iter_mut() {
            pod.leaving |= leaving.contains(&pod.executor);
        }
        state.replicas = to;
        drop(state);
        self.reconcile();
        Ok(())
    }
}
