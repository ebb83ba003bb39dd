//! The `[kubernetes]` section of `cluster.toml` and the per-pool
//! `[executor.pools.kubernetes]` table: what a laptop never reads and a cluster needs
//! (namespace, images, resources, who scales a pool). They mirror the scaling guide's
//! Helm values; every key has a default, so the default `cluster.toml` renders.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `[kubernetes]`: settings of the rendered manifests.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KubernetesConfig {
    /// Namespace of every object.
    pub namespace: String,
    /// Render the Namespace itself (with the `restricted` Pod Security labels).
    pub create_namespace: bool,
    /// Image of the server, the gateways and the pools without a model.
    pub image: String,
    /// Image of the pools with a model or a GPU (built with libtorch).
    pub image_gpu: String,
    /// Secret holding the cluster cookie under the key `cookie`.
    pub cookie_secret: String,
    /// Secret holding the Postgres store's URL (with its password) under the key
    /// `url`, read by the server and gateway pods as `MARIE_STORE__URL` when
    /// `store.backend = "postgres"`. Created apart, like the cookie's.
    pub store_secret: String,
    /// Suffix of the cluster's DNS names (`<svc>.<ns>.svc.<cluster_domain>`).
    pub cluster_domain: String,
    /// Prometheus: the KEDA trigger's address, the PodMonitor, the adapter's rules.
    pub prometheus: PrometheusConfig,
    /// A NetworkPolicy that admits only Marie's pods, the ingress controller and
    /// Prometheus.
    pub network_policy: NetworkPolicyConfig,
    /// User and group the pods run as.
    pub security: SecurityConfig,
    /// The server StatefulSet.
    pub server: ServerConfig,
    /// The gateway Deployment, its Service, HPA, PDB and Ingress (the guide's
    /// `server.*` values).
    pub gateway: GatewayConfig,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            namespace: "marie".into(),
            create_namespace: true,
            image: "marieai/marie-rs:0.1.0".into(),
            image_gpu: "marieai/marie-rs:0.1.0-cuda".into(),
            cookie_secret: "marie-cookie".into(),
            store_secret: "marie-store".into(),
            cluster_domain: "cluster.local".into(),
            prometheus: PrometheusConfig::default(),
            network_policy: NetworkPolicyConfig::default(),
            security: SecurityConfig::default(),
            server: ServerConfig::default(),
            gateway: GatewayConfig::default(),
        }
    }
}

/// `[kubernetes.prometheus]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrometheusConfig {
    /// Where KEDA's prometheus trigger sends its queries.
    pub url: String,
    /// Render a PodMonitor (prometheus-operator) that scrapes every Marie pod's
    /// `/metrics`.
    pub pod_monitor: bool,
    /// Labels of the PodMonitor, for the Prometheus that selects it (e.g.
    /// `release = "kube-prometheus-stack"`).
    pub pod_monitor_labels: BTreeMap<String, String>,
    /// The target label that holds a pod's namespace in Prometheus (`namespace` with
    /// prometheus-operator, often `kubernetes_namespace` with plain service discovery).
    pub namespace_label: String,
    /// Write `prometheus-adapter-rules.yaml`, the adapter chart's values that serve
    /// the External metrics of `scaler = "hpa"` pools.
    pub adapter_rules: bool,
}

impl Default for PrometheusConfig {
    fn default() -> Self {
        PrometheusConfig {
            url: "http://prometheus-operated.monitoring.svc:9090".into(),
            pod_monitor: false,
            pod_monitor_labels: BTreeMap::new(),
            namespace_label: "namespace".into(),
            adapter_rules: false,
        }
    }
}

/// `[kubernetes.network_policy]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkPolicyConfig {
    /// Render the NetworkPolicy.
    pub enabled: bool,
    /// Namespaces whose pods may reach the HTTP port (the ingress controller,
    /// Prometheus).
    pub http_from_namespaces: Vec<String>,
}

impl Default for NetworkPolicyConfig {
    fn default() -> Self {
        NetworkPolicyConfig {
            enabled: false,
            http_from_namespaces: vec!["ingress-nginx".into(), "monitoring".into()],
        }
    }
}

/// `[kubernetes.security]`: every pod runs as this non-root user, with a read-only
/// root filesystem, no capabilities and the runtime's seccomp profile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// User id (not 0).
    pub run_as_user: i64,
    /// Group id, also the owner of mounted volumes.
    pub run_as_group: i64,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            run_as_user: 65532,
            run_as_group: 65532,
        }
    }
}

/// `[kubernetes.server]`: the StatefulSet of the server nodes (the store's owner with
/// SQLite; with Postgres, one leader and hot standbys).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Server pods [default: 1 with SQLite or memory, which one process owns, and
    /// [`POSTGRES_SERVER_REPLICAS`] with Postgres: a leader and a hot standby].
    pub replicas: Option<u32>,
    /// Size of the store's volume.
    pub storage: String,
    /// StorageClass of the volume; empty takes the cluster's default.
    pub storage_class: String,
    /// CPU and memory.
    pub resources: Resources,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            replicas: None,
            storage: "10Gi".into(),
            storage_class: String::new(),
            resources: Resources::new(&[("cpu", "1"), ("memory", "2Gi")], &[("memory", "4Gi")]),
        }
    }
}

/// Server pods with the Postgres store unless `[kubernetes.server] replicas` says
/// otherwise: the leader and one hot standby that takes over within the lease's TTL.
/// A third adds no safety (leadership is a lease row in Postgres, whose own
/// replication keeps the data), only another front door.
pub const POSTGRES_SERVER_REPLICAS: u32 = 2;

/// `[kubernetes.gateway]`: the clients' front door (the guide's `server.*` values).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Pods when no HPA scales them.
    pub replicas: u32,
    /// CPU and memory.
    pub resources: Resources,
    /// An HPA on CPU and memory.
    pub autoscaling: GatewayAutoscaling,
    /// Pods that must stay up during voluntary disruptions.
    pub pdb_min_available: u32,
    /// Port of the `http` port of the `marie-gateway` Service.
    pub http_port: u16,
    /// An Ingress in front of the Service.
    pub ingress: IngressConfig,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            replicas: 2,
            resources: Resources::new(
                &[("cpu", "2"), ("memory", "4Gi")],
                &[("cpu", "4"), ("memory", "8Gi")],
            ),
            autoscaling: GatewayAutoscaling::default(),
            pdb_min_available: 1,
            http_port: 8080,
            ingress: IngressConfig::default(),
        }
    }
}

/// `[kubernetes.gateway.autoscaling]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayAutoscaling {
    /// Render the HPA (and no `replicas` on the Deployment).
    pub enabled: bool,
    /// Fewest gateways.
    pub min_replicas: u32,
    /// Most gateways.
    pub max_replicas: u32,
    /// Average CPU use, in percent of the request, the HPA keeps.
    pub target_cpu_utilization_percentage: u32,
    /// Average memory use, in percent of the request, the HPA keeps.
    pub target_memory_utilization_percentage: u32,
}

impl Default for GatewayAutoscaling {
    fn default() -> Self {
        GatewayAutoscaling {
            enabled: true,
            min_replicas: 2,
            max_replicas: 5,
            target_cpu_utilization_percentage: 80,
            target_memory_utilization_percentage: 80,
        }
    }
}

/// `[kubernetes.gateway.ingress]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngressConfig {
    /// Render the Ingress.
    pub enabled: bool,
    /// The IngressClass (the annotations are ingress-nginx's).
    pub class_name: String,
    /// Host name the Ingress answers.
    pub host: String,
    /// A `kubernetes.io/tls` Secret for the host; empty serves plain HTTP.
    pub tls_secret: String,
    /// More annotations; they win over the derived ones.
    pub annotations: BTreeMap<String, String>,
}

impl Default for IngressConfig {
    fn default() -> Self {
        IngressConfig {
            enabled: false,
            class_name: "nginx".into(),
            host: "marie.example.com".into(),
            tls_secret: String::new(),
            annotations: BTreeMap::new(),
        }
    }
}

/// Requests and limits of a container, as Kubernetes quantities.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Resources {
    /// What the scheduler reserves (`cpu = "2"`, `memory = "4Gi"`, `"nvidia.com/gpu" = 1`).
    pub requests: BTreeMap<String, Amount>,
    /// The most the container may use.
    pub limits: BTreeMap<String, Amount>,
}

impl Resources {
    fn new(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Self {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Amount::Text((*v).to_owned())))
                .collect()
        };
        Resources {
            requests: map(requests),
            limits: map(limits),
        }
    }
}

/// A quantity written as a string (`"4Gi"`) or a whole number (`1`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Amount {
    /// A whole number.
    Count(u64),
    /// A Kubernetes quantity.
    Text(String),
}

impl std::fmt::Display for Amount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Amount::Count(n) => write!(f, "{n}"),
            Amount::Text(s) => f.write_str(s),
        }
    }
}

/// Who sets a pool's Deployment's replicas.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scaler {
    /// Marie's Supervisor: with `supervisor.backend = "kubernetes"` it sets the
    /// Deployment's replicas through its `/scale`.
    Supervisor,
    /// A KEDA ScaledObject with a Prometheus trigger (scale to zero).
    Keda,
    /// An HPA on the guide's two External metrics (through prometheus-adapter).
    Hpa,
    /// Nobody: `replicas` of the pool.
    None,
}

impl Scaler {
    /// The name as written in `cluster.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scaler::Supervisor => "supervisor",
            Scaler::Keda => "keda",
            Scaler::Hpa => "hpa",
            Scaler::None => "none",
        }
    }
}

/// `[executor.pools.kubernetes]`: one pool's Deployment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolKubernetes {
    /// Who scales the pool [default: `supervisor` with an `autoscale` table, else
    /// `none`].
    pub scaler: Option<Scaler>,
    /// The pool's image [default: `kubernetes.image_gpu` for pools with a model or a
    /// GPU, else `kubernetes.image`].
    pub image: Option<String>,
    /// CPU, memory and GPUs [default: CPU pools 2–4 CPUs and 4–8 GiB; GPU pools
    /// 4 CPUs, 16 GiB and one `nvidia.com/gpu`, requests = limits].
    pub resources: Option<Resources>,
    /// Nodes the pods may run on [default for GPU pools:
    /// `"nvidia.com/gpu.present" = "true"`].
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Taints the pods tolerate [default for GPU pools: `nvidia.com/gpu`].
    pub tolerations: Option<Vec<TolerationConfig>>,
    /// More annotations on the pods (the guide's `scaleToZero.annotations`);
    /// `cluster-autoscaler.kubernetes.io/safe-to-evict = "true"` is always there.
    pub pod_annotations: BTreeMap<String, String>,
    /// How long a pod drains its jobs on SIGTERM [default: `node.drain_timeout_secs`].
    pub drain_timeout_secs: Option<u64>,
    /// The startup probe [default: GPU pools the guide's 30 s, then every 10 s, 60
    /// times; others every 2 s, 30 times].
    pub startup_probe: Option<StartupProbe>,
    /// The KEDA ScaledObject of `scaler = "keda"`.
    pub keda: KedaConfig,
    /// The HPA of `scaler = "hpa"`.
    pub hpa: HpaConfig,
}

impl PoolKubernetes {
    /// Who scales the pool: the configured scaler, else the Supervisor for a pool
    /// with an `[executor.pools.autoscale]` table (`autoscaled`) and nobody for the
    /// rest.
    pub fn scaler_or_default(&self, autoscaled: bool) -> Scaler {
        self.scaler.unwrap_or(match autoscaled {
            true => Scaler::Supervisor,
            false => Scaler::None,
        })
    }
}

/// A toleration (`key`, `operator`, `value`, `effect`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TolerationConfig {
    /// The taint's key.
    pub key: String,
    /// `Exists` or `Equal`.
    pub operator: String,
    /// The taint's value (with `Equal`).
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`; empty matches all.
    pub effect: Option<String>,
}

/// A startup probe's timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartupProbe {
    /// Seconds before the first probe.
    pub initial_delay_seconds: u32,
    /// Seconds between probes.
    pub period_seconds: u32,
    /// Failed probes before the pod is restarted.
    pub failure_threshold: u32,
}

/// What a KEDA ScaledObject scales on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KedaSignal {
    /// `sum(marie_jobs_pending)` of the pool: one pod per `threshold` waiting jobs.
    #[default]
    Pending,
    /// `max(marie_supervisor_desired_executors)` of the pool: KEDA carries out the
    /// Supervisor's decision (`supervisor.backend = "external"`).
    Desired,
}

/// `[executor.pools.kubernetes.keda]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KedaConfig {
    /// The query.
    pub signal: KedaSignal,
    /// Value per pod [default: the pool's slots for `pending`, 1 for `desired`].
    pub threshold: Option<u32>,
    /// Seconds between KEDA's queries.
    pub polling_interval: u32,
}

impl Default for KedaConfig {
    fn default() -> Self {
        KedaConfig {
            signal: KedaSignal::Pending,
            threshold: None,
            polling_interval: 15,
        }
    }
}

/// `[executor.pools.kubernetes.hpa]`: targets of the guide's two External metrics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HpaConfig {
    /// Waiting jobs per pod (`marie_jobs_pending`).
    pub pending_per_pod: u32,
    /// Busy slots per pod (`marie_executor_slots_used`) [default: three quarters of
    /// the pool's slots, rounded up].
    pub slots_used_per_pod: Option<u32>,
}

impl Default for HpaConfig {
    fn default() -> Self {
        HpaConfig {
            pending_per_pod: 10,
            slots_used_per_pod: None,
        }
    }
}
