//! What the renderer reads: the parts of a node's configuration that shape the
//! manifests, plus the `cluster.toml` text itself (shipped verbatim in a ConfigMap).
//! `marie-node` builds it from its `Config`.

use crate::config::{KubernetesConfig, PoolKubernetes};

/// One cluster to render.
#[derive(Clone, Debug, PartialEq)]
pub struct Cluster {
    /// The user's `cluster.toml`, verbatim (empty when the node runs on defaults).
    pub cluster_toml: String,
    /// `[kubernetes]`.
    pub kubernetes: KubernetesConfig,
    /// `cluster.port`.
    pub cluster_port: u16,
    /// `http.port`.
    pub http_port: u16,
    /// `node.drain_timeout_secs`: the server's and gateways' drain, and the pools'
    /// unless they say otherwise.
    pub drain_timeout_secs: u64,
    /// `node.shutdown_delay_secs`: how long the server and the gateways keep serving
    /// after SIGTERM with `/readyz` at 503 (0 takes 5 s).
    pub shutdown_delay_secs: u64,
    /// `gateway.max_payload_bytes`: sizes the Ingress's body limit.
    pub max_payload_bytes: u64,
    /// Longest wait of `GET /api/jobs/{id}?wait=`, in seconds: sizes the Ingress's
    /// read timeout.
    pub long_poll_secs: u64,
    /// `store.backend`.
    pub store: Store,
    /// Whether `cluster_toml` itself sets `store.url`: the render ships that text in a
    /// ConfigMap, which is no place for a password, so it refuses.
    pub store_url_in_file: bool,
    /// `supervisor.backend`.
    pub supervisor_backend: SupervisorBackend,
    /// `[[executor.pools]]`.
    pub pools: Vec<Pool>,
}

/// Which store the server runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    /// A SQLite file: one process owns it, on a ReadWriteOnce volume.
    Sqlite,
    /// Memory only.
    Memory,
    /// A Postgres database outside the cluster's pods: no volume; the server pods
    /// share it, so there may be several.
    Postgres,
}

impl Store {
    /// The name as written in `cluster.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Store::Sqlite => "sqlite",
            Store::Memory => "memory",
            Store::Postgres => "postgres",
        }
    }
}

/// Who carries out the Supervisor's decisions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SupervisorBackend {
    /// Executor actors inside the server's process.
    Local,
    /// Executor processes on the server's machine.
    Process,
    /// Nobody: the Supervisor decides and exports.
    External,
    /// The Supervisor sets the replicas of the `scaler = "supervisor"` pools'
    /// Deployments through the Kubernetes API, and decides and exports for the rest.
    Kubernetes,
}

impl SupervisorBackend {
    /// The name as written in `cluster.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            SupervisorBackend::Local => "local",
            SupervisorBackend::Process => "process",
            SupervisorBackend::External => "external",
            SupervisorBackend::Kubernetes => "kubernetes",
        }
    }
}

/// One executor pool.
#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    /// The pool's name.
    pub name: String,
    /// Executors when nobody scales the pool.
    pub replicas: u32,
    /// Jobs each executor runs at once.
    pub slots: u32,
    /// Whether the pool needs a GPU.
    pub gpu: bool,
    /// Whether the pool runs a model (needs the libtorch image).
    pub model: bool,
    /// The `[executor.pools.autoscale]` bounds, when the pool has the table.
    pub autoscale: Option<Bounds>,
    /// `[executor.pools.kubernetes]`.
    pub kubernetes: PoolKubernetes,
}

/// An autoscaled pool's bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Fewest executors while the pool has work.
    pub min: u32,
    /// Most executors.
    pub max: u32,
    /// Whether an idle pool goes to zero.
    pub scale_to_zero: bool,
    /// Idle this long: the last executor goes (KEDA's `cooldownPeriod`).
    pub last_executor_delay_secs: u64,
}
