//! From a configuration to the decisions the manifests carry out: every default
//! resolved, every derived number computed (grace periods, QoS), and contradictory
//! configurations refused with what to do. Both the Kubernetes and the Compose
//! renderers read the plan, so they cannot disagree.

mod pool;

use std::collections::BTreeMap;

pub use pool::PoolPlan;

use crate::config::{Amount, POSTGRES_SERVER_REPLICAS, Scaler};
use crate::dns;
use crate::input::{Cluster, Store, SupervisorBackend};

/// Seconds the node takes to close its HTTP listener on shutdown.
pub const HTTP_CLOSE_SECS: u64 = 5;
/// Seconds left for the store's flush and the exit after the drain.
pub const EXIT_SECS: u64 = 15;
/// The cluster-autoscaler's default `--max-graceful-termination-sec`.
pub const AUTOSCALER_GRACE_CAP_SECS: u64 = 600;
/// Seconds the server and the gateways keep serving after SIGTERM, `/readyz` at 503,
/// while Services and load balancers stop sending to them (unless
/// `node.shutdown_delay_secs` says otherwise). Executors, which no Service fronts, stop
/// at once.
pub const FRONT_SHUTDOWN_DELAY_SECS: u64 = 5;
/// The GPU resource of NVIDIA's device plugin.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";

/// A configuration the renderer will not turn into manifests, and what to change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// More than one server on a store only one process can own.
    #[error(
        "kubernetes.server.replicas = {replicas} with store.backend = {store:?}: each server pod would own a store of its own and run its own CapacityManager, two clusters in one; keep it at 1, or set store.backend = \"postgres\" (a database the servers share, its URL in the Secret kubernetes.store_secret) to run a leader and standbys. The front door scales with kubernetes.gateway.autoscaling either way"
    )]
    ServerReplicas {
        /// The configured replicas.
        replicas: u32,
        /// `store.backend`.
        store: &'static str,
    },
    /// The store's URL, password included, in the file the render ships in a ConfigMap.
    #[error(
        "store.url is set in the configuration file, which the render ships verbatim in a ConfigMap that anyone who may read ConfigMaps sees: remove it from the file and put the URL in the Secret {secret:?} under the key `url` (kubectl create secret generic {secret} --from-literal=url='postgres://USER:PASSWORD@HOST:5432/marie'); the server and gateway pods read it as MARIE_STORE__URL"
    )]
    StoreUrlInFile {
        /// `kubernetes.store_secret`.
        secret: String,
    },
    /// A scaler that needs bounds the pool does not have.
    #[error(
        "pool {pool:?}: scaler = {scaler:?} takes its min and max from [executor.pools.autoscale]; add that table, or set scaler = \"none\" for a fixed pool"
    )]
    ScalerWithoutBounds {
        /// The pool.
        pool: String,
        /// Its scaler.
        scaler: &'static str,
    },
    /// An autoscaled pool nobody is to scale.
    #[error(
        "pool {pool:?} has an [executor.pools.autoscale] table but scaler = \"none\": remove the table for a fixed pool, or pick supervisor, keda or hpa"
    )]
    BoundsWithoutScaler {
        /// The pool.
        pool: String,
    },
    /// The Supervisor would start executors inside the server pod.
    #[error(
        "pool {pool:?} is autoscaled and supervisor.backend = {backend:?}, which starts its executors inside the server pod beside the pool's Deployment: set supervisor.backend = \"external\" (the Supervisor decides and exports, the pool's scaler acts) or \"kubernetes\" (the same, and it sets the replicas of the scaler = \"supervisor\" pools)"
    )]
    SupervisorStartsExecutors {
        /// The pool.
        pool: String,
        /// The configured backend.
        backend: &'static str,
    },
    /// A pool the Supervisor is to scale without the backend that reaches its
    /// Deployment.
    #[error(
        "pool {pool:?} has scaler = \"supervisor\" but supervisor.backend = {backend:?}, which cannot set the replicas of its Deployment: set supervisor.backend = \"kubernetes\" (MARIE_SUPERVISOR__BACKEND), or give the pool scaler = \"keda\" with keda.signal = \"desired\" to have KEDA carry out the Supervisor's decisions"
    )]
    SupervisorWithoutKubernetes {
        /// The pool.
        pool: String,
        /// The configured backend.
        backend: &'static str,
    },
    /// An HPA cannot reach zero.
    #[error(
        "pool {pool:?}: scaler = \"hpa\" with autoscale.scale_to_zero.enabled: an HPA never goes below one pod; use scaler = \"keda\" (or \"supervisor\") for a pool that scales to zero"
    )]
    HpaToZero {
        /// The pool.
        pool: String,
    },
    /// A GPU pool that would not be Guaranteed.
    #[error(
        "pool {pool:?} needs a GPU and runs Guaranteed (requests = limits): {problem}; set resources.limits (cpu, memory, \"nvidia.com/gpu\") and leave requests out or equal to them"
    )]
    GpuNotGuaranteed {
        /// The pool.
        pool: String,
        /// What is off.
        problem: String,
    },
    /// A name the API server would refuse.
    #[error("{what} {name:?} {reason}: {fix}")]
    BadName {
        /// Whose name.
        what: &'static str,
        /// The name.
        name: String,
        /// Why.
        reason: String,
        /// What to do.
        fix: &'static str,
    },
    /// A root user.
    #[error(
        "kubernetes.security.run_as_user = 0: pods run as a non-root user; keep 65532 (the image's user) or pick another non-zero id"
    )]
    RootUser,
    /// Bounds upside down.
    #[error("{what}: min ({min}) is above max ({max}); lower min or raise max")]
    MinAboveMax {
        /// Which bounds.
        what: String,
        /// The min.
        min: u32,
        /// The max.
        max: u32,
    },
    /// A value that must not be zero.
    #[error("{what} is 0: {fix}")]
    Zero {
        /// Which value.
        what: String,
        /// What to do.
        fix: &'static str,
    },
}

/// Roles of Marie's pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    /// The StatefulSet that owns the store.
    Server,
    /// The front door.
    Gateway,
    /// A pool's executors.
    Executor,
}

impl Component {
    /// The `app.kubernetes.io/component` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Server => "server",
            Component::Gateway => "gateway",
            Component::Executor => "executor",
        }
    }
}

/// The whole cluster, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan<'a> {
    /// The input.
    pub cluster: &'a Cluster,
    /// `marie-config-<hash>`.
    pub config_map: String,
    /// Server pods: the configured count, else 1, or a leader and a standby with
    /// Postgres.
    pub server_replicas: u32,
    /// The server's and gateways' shutdown delay.
    pub front_shutdown_delay_secs: u64,
    /// The server's and gateways' grace period.
    pub front_grace_secs: u64,
    /// The pools.
    pub pools: Vec<PoolPlan>,
    /// Things that render but deserve a look.
    pub warnings: Vec<String>,
}

/// `terminationGracePeriodSeconds` of a node: `/readyz` turns 503 and the node keeps
/// serving for the delay, closes HTTP, drains, flushes and exits.
pub fn grace_period_secs(shutdown_delay_secs: u64, drain_timeout_secs: u64) -> u64 {
    shutdown_delay_secs + HTTP_CLOSE_SECS + drain_timeout_secs + EXIT_SECS
}

/// The stable cluster address of the server pod `pod` (`marie-server-0`, or
/// `$(MARIE_NODE__NAME)` for a pod's own): its name under the headless Service.
pub fn server_address(cluster: &Cluster, pod: &str) -> String {
    let k = &cluster.kubernetes;
    format!(
        "{pod}.marie-server.{}.svc.{}:{}",
        k.namespace, k.cluster_domain, cluster.cluster_port
    )
}

/// Server pods when `[kubernetes.server] replicas` is not set.
fn default_server_replicas(store: Store) -> u32 {
    match store {
        Store::Postgres => POSTGRES_SERVER_REPLICAS,
        Store::Sqlite | Store::Memory => 1,
    }
}

/// Name of the ConfigMap: its content's hash in it, so a changed `cluster.toml` rolls
/// every pod.
fn config_map_name(cluster_toml: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(cluster_toml.as_bytes());
    let hex: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    format!("marie-config-{hex}")
}

impl<'a> Plan<'a> {
    /// Resolves `cluster`, or says why it cannot render.
    pub fn new(cluster: &'a Cluster) -> Result<Plan<'a>, Refusal> {
        let k = &cluster.kubernetes;
        check_name("kubernetes.namespace", &k.namespace, dns::label_error)?;
        let server_replicas = server_replicas(cluster)?;
        if k.security.run_as_user == 0 {
            return Err(Refusal::RootUser);
        }
        let autoscaling = &k.gateway.autoscaling;
        if autoscaling.enabled {
            if autoscaling.min_replicas == 0 {
                return Err(zero(
                    "kubernetes.gateway.autoscaling.min_replicas",
                    "an HPA keeps at least one pod; set 1 or more",
                ));
            }
            if autoscaling.min_replicas > autoscaling.max_replicas {
                return Err(Refusal::MinAboveMax {
                    what: "kubernetes.gateway.autoscaling".into(),
                    min: autoscaling.min_replicas,
                    max: autoscaling.max_replicas,
                });
            }
        } else if k.gateway.replicas == 0 {
            return Err(zero(
                "kubernetes.gateway.replicas",
                "clients reach the cluster through the gateways; run at least one",
            ));
        }
        let mut warnings = Vec::new();
        let pools = cluster
            .pools
            .iter()
            .map(|pool| pool::plan_pool(cluster, pool, &mut warnings))
            .collect::<Result<Vec<_>, _>>()?;
        let front_shutdown_delay_secs = match cluster.shutdown_delay_secs {
            0 => FRONT_SHUTDOWN_DELAY_SECS,
            delay => delay,
        };
        Ok(Plan {
            cluster,
            server_replicas,
            front_shutdown_delay_secs,
            config_map: config_map_name(&cluster.cluster_toml),
            front_grace_secs: grace_period_secs(
                front_shutdown_delay_secs,
                cluster.drain_timeout_secs,
            ),
            pools,
            warnings,
        })
    }

    /// The pools whose Deployments the Supervisor scales through the Kubernetes API
    /// (`scaler = "supervisor"` with `supervisor.backend = "kubernetes"`).
    pub fn supervisor_pools(&self) -> impl Iterator<Item = &PoolPlan> {
        let kubernetes = self.cluster.supervisor_backend == SupervisorBackend::Kubernetes;
        self.pools
            .iter()
            .filter(move |p| kubernetes && p.scaler == Scaler::Supervisor)
    }

    /// Whether the server calls the Kubernetes API (to scale a pool), and so mounts a
    /// service account token bound to the `marie-supervisor` Role.
    pub fn server_calls_api(&self) -> bool {
        self.supervisor_pools().next().is_some()
    }

    /// Whether the server's data lives on a volume claim.
    pub fn persistent_store(&self) -> bool {
        self.cluster.store == Store::Sqlite
    }

    /// Whether the server pods share a Postgres store, whose URL they and the
    /// gateways read from the store Secret.
    pub fn shared_store(&self) -> bool {
        self.cluster.store == Store::Postgres
    }

    /// The stable cluster address of every server pod, in ordinal order: the seeds
    /// of every node, so any server is a way in.
    pub fn server_addresses(&self) -> Vec<String> {
        (0..self.server_replicas)
            .map(|i| server_address(self.cluster, &format!("marie-server-{i}")))
            .collect()
    }
}

/// The server pods `cluster` asks for, or why it cannot have them: at least one, and
/// one alone unless the servers share a Postgres store; never the store's URL in the
/// file the ConfigMap ships.
fn server_replicas(cluster: &Cluster) -> Result<u32, Refusal> {
    let k = &cluster.kubernetes;
    if cluster.store_url_in_file {
        return Err(Refusal::StoreUrlInFile {
            secret: k.store_secret.clone(),
        });
    }
    if cluster.store == Store::Postgres {
        check_name(
            "kubernetes.store_secret",
            &k.store_secret,
            dns::subdomain_error,
        )?;
    }
    let replicas = k
        .server
        .replicas
        .unwrap_or_else(|| default_server_replicas(cluster.store));
    if replicas == 0 {
        return Err(zero(
            "kubernetes.server.replicas",
            "the server runs the CapacityManager; run at least one",
        ));
    }
    if replicas > 1 && cluster.store != Store::Postgres {
        return Err(Refusal::ServerReplicas {
            replicas,
            store: cluster.store.as_str(),
        });
    }
    Ok(replicas)
}

fn zero(what: &str, fix: &'static str) -> Refusal {
    Refusal::Zero {
        what: what.into(),
        fix,
    }
}

fn check_name(
    what: &'static str,
    name: &str,
    rule: fn(&str) -> Option<String>,
) -> Result<(), Refusal> {
    match rule(name) {
        None => Ok(()),
        Some(reason) => Err(Refusal::BadName {
            what,
            name: name.into(),
            reason,
            fix: "Kubernetes names hold lowercase letters, digits and '-'; rename it",
        }),
    }
}

/// Resource names and their quantities.
pub type Quantities = BTreeMap<String, String>;

/// Configured amounts as quantity strings.
pub fn quantities(map: &BTreeMap<String, Amount>) -> Quantities {
    map.iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect()
}
