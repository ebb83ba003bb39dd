//! The actors one node runs, by role: the store and CapacityManager (`server`), a
//! Gateway (`server`, `gateway`), the executors of one pool (`executor`), or all of them
//! (`up`, the embedded default; `marie bench` drives it directly). Every actor is
//! linked under the node's [`NodeRoot`], which restarts a failed CapacityManager and
//! ends the node when anything else fails.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::ValueEnum;
use marie_actors::capacity_manager::CapacityManagerArgs;
use marie_actors::executor::{Executor, ExecutorArgs};
use marie_actors::gateway::{Gateway, GatewayArgs};
use marie_actors::lookup;
use marie_actors::remote_store::RemoteStore;
use marie_actors::root::{NodeRoot, NodeRootArgs};
use marie_actors::store_service::StoreService;
use marie_actors::supervisor::{
    ExternalBackend, LocalBackend, LocalPool, PoolBackend, ReplicaBackend, ScaleBackend,
    ScaledPool, Supervisor, SupervisorArgs,
};
use marie_deploy::config::Scaler;
use marie_kubernetes::KubernetesBackend;
use marie_protocol::messages::{CapacityMsg, CapacityQuery, DrainOrder, ExecutorMsg, ExecutorName};
use marie_store::memory::MemoryStore;
use marie_store::postgres::{PostgresOptions, PostgresStore};
use marie_store::sqlite::{SqliteOptions, SqliteStore};
use marie_store::{GatewayStore, JobStore};
use ractor::{Actor, ActorCell, ActorRef, SpawnErr};
use tokio::task::JoinHandle;

use crate::config::{Config, PoolConfig, ScaleBackendKind, StoreBackend};
use crate::process_backend::ProcessBackend;

/// What a node runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RoleKind {
    /// The job store, the CapacityManager (one per cluster) and a Gateway.
    Server,
    /// A Gateway only; it reaches the store through the server node.
    Gateway,
    /// The executors of one pool (`--pool`).
    Executor,
}

/// A node's role, with its pool for executor nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Everything in one process.
    Up,
    /// Store, CapacityManager, Gateway.
    Server,
    /// A Gateway.
    Gateway,
    /// The executors of this pool.
    Executor(String),
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Up => f.write_str("up"),
            Role::Server => f.write_str("server"),
            Role::Gateway => f.write_str("gateway"),
            Role::Executor(pool) => write!(f, "executor ({pool})"),
        }
    }
}

impl Role {
    /// Whether the node holds the store and the CapacityManager.
    pub fn runs_manager(&self) -> bool {
        matches!(self, Role::Up | Role::Server)
    }

    /// Whether the node serves clients (a Gateway, and the HTTP API).
    pub fn runs_gateway(&self) -> bool {
        matches!(self, Role::Up | Role::Server | Role::Gateway)
    }

    /// The pools whose executors the node runs.
    pub fn pools<'a>(&self, config: &'a Config) -> anyhow::Result<Vec<&'a PoolConfig>> {
        let all = &config.executor.pools;
        Ok(match self {
            Role::Up => all.iter().collect(),
            Role::Server | Role::Gateway => Vec::new(),
            Role::Executor(pool) => {
                let known: Vec<&str> = all.iter().map(|p| p.name.as_str()).collect();
                let found = all.iter().find(|p| &p.name == pool);
                vec![found.with_context(|| {
                    format!("no pool {pool:?} in the configuration: pools are {known:?}")
                })?]
            }
        })
    }
}

/// What a node knows beyond its configuration, for backends that start processes.
#[derive(Clone, Debug, Default)]
pub struct NodeContext {
    /// The cluster cookie.
    pub cookie: Option<String>,
    /// The configuration file the node read, passed on to processes it starts.
    pub config_path: Option<PathBuf>,
}

/// A running actor and the handle that resolves when it stops.
type Running = (ActorCell, JoinHandle<()>);

/// The running actors of a node.
pub struct NodeActors {
    /// The root every other actor is linked under; it holds the CapacityManager.
    root: Running,
    runs_manager: bool,
    supervisor: Option<Running>,
    store_service: Option<Running>,
    gateway: Option<Running>,
    executors: Vec<(String, Running)>,
}

/// Opens the configured store.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn JobStore>> {
    Ok(match config.store.backend {
        StoreBackend::Memory => Arc::new(MemoryStore::new()),
        StoreBackend::Sqlite => {
            let path = config.node.data_dir.join("marie.db");
            let options = SqliteOptions {
                synchronous_full: config.store.sync_full,
                max_batch: config.store.max_batch,
            };
            Arc::new(SqliteStore::open(&path, options)?)
        }
        StoreBackend::Postgres => {
            let options = PostgresOptions {
                // The configuration checks refuse a Postgres store without a URL.
                url: config.store.url.clone().unwrap_or_default(),
                pool_size: config.store.pool_size,
                max_batch: config.store.max_batch,
            };
            Arc::new(PostgresStore::open(options).await?)
        }
    })
}

impl NodeActors {
    /// Starts the actors of `role`: the store and CapacityManager first (it recovers
    /// the queues), then the Gateway, then the executors.
    pub async fn start(
        config: &Config,
        role: &Role,
        context: &NodeContext,
    ) -> anyhow::Result<Self> {
        let store = if role.runs_manager() {
            Some(open_store(config).await?)
        } else {
            None
        };
        let root = start_root(config, store.clone()).await?;
        let root_cell = root.0.clone();
        let mut node = NodeActors {
            root,
            runs_manager: role.runs_manager(),
            supervisor: None,
            store_service: None,
            gateway: None,
            executors: Vec::new(),
        };
        if let Some(store) = &store {
            let name = format!("{}-store", config.node.name);
            let service = start_linked(&root_cell, name, StoreService, store.clone())
                .await
                .context("the store service did not start")?;
            node.store_service = Some(service);
        }
        if role.runs_gateway() {
            node.gateway = Some(start_gateway(config, store, &root_cell).await?);
        }
        if role.runs_manager() {
            node.supervisor = start_supervisor(config, context, &root_cell).await?;
        }
        node.executors = start_executors(config, role, &root_cell).await?;
        Ok(node)
    }

    /// The names of the executors this node runs (those the Supervisor starts aside).
    pub fn executor_names(&self) -> Vec<String> {
        self.executors
            .iter()
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The executors this node runs (those the Supervisor starts aside).
    pub fn executor_cells(&self) -> Vec<ActorCell> {
        self.executors
            .iter()
            .map(|(_, (cell, _))| cell.clone())
            .collect()
    }

    /// Resolves when the node's actors have ended on their own: one failed, or the
    /// CapacityManager failed too often (see [`NodeRoot`]). The node must then exit
    /// with an error.
    pub async fn failed(&mut self) {
        let _ = (&mut self.root.1).await;
    }

    /// Drains every executor (running jobs finish, no new ones start) for at most
    /// `drain_timeout`, then stops the Gateway and the CapacityManager, which writes
    /// out every pending state change. Jobs still running at the deadline stay
    /// `running` in the store and re-queue at the next start: nothing is lost.
    pub async fn shutdown(mut self, drain_timeout: Duration) {
        // The Supervisor first: it must not start executors while the node drains.
        if let Some((cell, done)) = self.supervisor.take() {
            cell.stop(Some("shutdown".into()));
            let _ = done.await;
        }
        let manager = lookup::capacity_manager();
        let had_executors = !self.executors.is_empty();
        drain_executors(self.executors, manager.as_ref(), drain_timeout).await;
        // On a node without the CapacityManager, the executors' last completions are
        // still on their way to it: a call answered by it, on the same link and after
        // them, proves they arrived before the node closes its connections.
        if !self.runs_manager
            && had_executors
            && let Some(manager) = &manager
        {
            let barrier = |reply| CapacityMsg::Capacity(CapacityQuery, reply);
            let _ = manager.call(barrier, Some(Duration::from_secs(5))).await;
        }
        // Drain, not stop: completions the executors sent before leaving are still in
        // the CapacityManager's mailbox and must reach the store. The root drains it
        // last.
        for (cell, done) in [
            self.supervisor,
            self.gateway,
            self.store_service,
            Some(self.root),
        ]
        .into_iter()
        .flatten()
        {
            let _ = cell.drain();
            let _ = done.await;
        }
    }
}

/// Drains `executors`, through the CapacityManager and directly, and waits for them
/// to stop for at most `drain_timeout`; those still busy then are stopped.
async fn drain_executors(
    executors: Vec<(String, Running)>,
    manager: Option<&ActorRef<CapacityMsg>>,
    drain_timeout: Duration,
) {
    for (name, (cell, _)) in &executors {
        if let Some(manager) = manager {
            let _ = manager.cast(CapacityMsg::Drain(ExecutorName(name.clone())));
        }
        // Also tell the executor itself, in case the CapacityManager is out of reach.
        let _ = ActorRef::<ExecutorMsg>::from(cell.clone()).cast(ExecutorMsg::Drain(DrainOrder));
    }
    let (cells, done): (Vec<ActorCell>, Vec<JoinHandle<()>>) =
        executors.into_iter().map(|(_, running)| running).unzip();
    let drained = async {
        for handle in done {
            let _ = handle.await;
        }
    };
    if tokio::time::timeout(drain_timeout, drained).await.is_err() {
        tracing::warn!(
            ?drain_timeout,
            "executors still busy at the drain deadline; their jobs re-queue at the next start"
        );
        for cell in cells {
            cell.stop(Some("drain deadline".into()));
        }
    }
}

/// Starts the node's root, with the CapacityManager over `store` on nodes that hold
/// it.
async fn start_root(config: &Config, store: Option<Arc<dyn JobStore>>) -> anyhow::Result<Running> {
    let manager = store.map(|store| CapacityManagerArgs {
        store,
        scheduler: config.scheduler.clone(),
        pools: config.pool_setups(),
    });
    let (root, done) = Actor::spawn(
        Some(format!("{}-root", config.node.name)),
        NodeRoot,
        NodeRootArgs { manager },
    )
    .await
    .context("the CapacityManager did not start")?;
    Ok((root.get_cell(), done))
}

/// Starts `actor` linked under the node's root.
async fn start_linked<A: Actor>(
    root: &ActorCell,
    name: String,
    actor: A,
    args: A::Arguments,
) -> Result<Running, SpawnErr> {
    let (actor, done) = Actor::spawn_linked(Some(name), actor, args, root.clone()).await?;
    Ok((actor.get_cell(), done))
}

/// Starts the Gateway, over the node's own store or, without one, the server's.
async fn start_gateway(
    config: &Config,
    store: Option<Arc<dyn JobStore>>,
    root: &ActorCell,
) -> anyhow::Result<Running> {
    let store: Arc<dyn GatewayStore> = match store {
        Some(store) => store,
        None => Arc::new(RemoteStore),
    };
    let args = GatewayArgs {
        store,
        limits: config.limits(),
    };
    let name = format!("{}-gateway", config.node.name);
    start_linked(root, name, Gateway, args)
        .await
        .context("the Gateway did not start")
}

/// Starts the executors of the role's pools; on a node with the Supervisor, those of
/// autoscaled pools are the Supervisor's to start.
async fn start_executors(
    config: &Config,
    role: &Role,
    root: &ActorCell,
) -> anyhow::Result<Vec<(String, Running)>> {
    let mut executors = Vec::new();
    for pool in role.pools(config)? {
        if role.runs_manager() && pool.autoscale.is_some() {
            continue;
        }
        let registry = crate::pool_handlers::registry(pool).await?;
        for i in 1..=pool.replicas {
            let name = format!("{}-{}-{i}", config.node.name, pool.name);
            let args = ExecutorArgs {
                name: name.clone(),
                pool: pool.name.clone(),
                slots: pool.slots,
                handlers: registry.clone(),
            };
            let executor = start_linked(root, name.clone(), Executor, args)
                .await
                .with_context(|| format!("executor {name} did not start"))?;
            executors.push((name, executor));
        }
    }
    Ok(executors)
}

/// Starts the Supervisor when some pool has an `autoscale` table.
async fn start_supervisor(
    config: &Config,
    context: &NodeContext,
    root: &ActorCell,
) -> anyhow::Result<Option<Running>> {
    let scaled: Vec<&PoolConfig> = config
        .executor
        .pools
        .iter()
        .filter(|p| p.autoscale.is_some())
        .collect();
    if scaled.is_empty() {
        return Ok(None);
    }
    let backends = pool_backends(config, context, &scaled).await?;
    let pools = scaled
        .iter()
        .zip(backends)
        .map(|(p, backend)| ScaledPool {
            name: p.name.clone(),
            slots: p.slots,
            settings: p.autoscale.clone().unwrap_or_default(),
            cold_start_guess_ms: config.supervisor.cold_start_guess_ms,
            backend,
        })
        .collect();
    let args = SupervisorArgs {
        pools,
        tick: Duration::from_millis(config.supervisor.tick_ms),
    };
    let name = format!("{}-supervisor", config.node.name);
    let supervisor = start_linked(root, name, Supervisor, args)
        .await
        .context("the Supervisor did not start")?;
    Ok(Some(supervisor))
}

/// Who carries out the Supervisor's decisions for each of the `scaled` pools, in their
/// order (`supervisor.backend`). With `kubernetes`, the pools whose scaler is the
/// Supervisor get the `kubernetes` backend (their Deployments' replicas); pools a KEDA
/// ScaledObject or an HPA scales get `external`: the Supervisor decides and exports.
async fn pool_backends(
    config: &Config,
    context: &NodeContext,
    scaled: &[&PoolConfig],
) -> anyhow::Result<Vec<PoolBackend>> {
    let backend: Arc<dyn ScaleBackend> = match config.supervisor.backend {
        ScaleBackendKind::External => Arc::new(ExternalBackend),
        ScaleBackendKind::Kubernetes => return kubernetes_backends(config, scaled).await,
        ScaleBackendKind::Local => Arc::new(local_backend(config, scaled).await?),
        ScaleBackendKind::Process => {
            let cookie = context
                .cookie
                .clone()
                .context("the process backend needs the cluster cookie to pass on")?;
            Arc::new(ProcessBackend::new(
                &config.node.name,
                config.cluster.advertised(),
                cookie,
                config.node.data_dir.clone(),
                context.config_path.clone(),
            )?)
        }
    };
    Ok(scaled
        .iter()
        .map(|_| PoolBackend::Executors(backend.clone()))
        .collect())
}

/// `supervisor.backend = "kubernetes"`: one client to the API server for the pools the
/// Supervisor scales there, `external` for the others.
async fn kubernetes_backends(
    config: &Config,
    scaled: &[&PoolConfig],
) -> anyhow::Result<Vec<PoolBackend>> {
    let ours = |p: &PoolConfig| p.kubernetes.scaler_or_default(true) == Scaler::Supervisor;
    let supervised: Vec<&str> = scaled
        .iter()
        .filter(|p| ours(p))
        .map(|p| p.name.as_str())
        .collect();
    let settings = &config.supervisor.kubernetes;
    let replicas: Option<Arc<dyn ReplicaBackend>> = match supervised.is_empty() {
        true => None,
        false => {
            let backend = KubernetesBackend::connect(settings.namespace.as_deref(), supervised)
                .await
                .context("supervisor.backend = \"kubernetes\" cannot reach the Kubernetes API")?;
            tracing::info!(
                namespace = backend.namespace(),
                "the Supervisor scales its pools' Deployments"
            );
            Some(Arc::new(backend))
        }
    };
    let external: Arc<dyn ScaleBackend> = Arc::new(ExternalBackend);
    let resync = Duration::from_millis(settings.resync_ms);
    Ok(scaled
        .iter()
        .map(|p| match (&replicas, ours(p)) {
            (Some(backend), true) => PoolBackend::Replicas {
                backend: backend.clone(),
                resync,
            },
            _ => PoolBackend::Executors(external.clone()),
        })
        .collect())
}

/// Executors started in this process, with each scaled pool's handlers loaded and
/// parked until the pool's first executor starts.
async fn local_backend(config: &Config, scaled: &[&PoolConfig]) -> anyhow::Result<LocalBackend> {
    let mut pools = BTreeMap::new();
    for pool in scaled {
        let handlers = crate::pool_handlers::registry(pool).await?;
        // Loading checked the pool's model; it stays parked until the Supervisor starts
        // the pool's first executor.
        handlers.park().await;
        pools.insert(
            pool.name.clone(),
            LocalPool {
                slots: pool.slots,
                handlers,
            },
        );
    }
    Ok(LocalBackend::new(config.node.name.clone(), pools))
}

/// Resolves once every one of `actors` has stopped.
pub async fn all_stopped(actors: &[ActorCell]) {
    while !actors
        .iter()
        .all(|a| a.get_status() == ractor::ActorStatus::Stopped)
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
