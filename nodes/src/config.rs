//! The node's configuration: `cluster.toml`, then `MARIE_*` environment variables
//! (`MARIE_SECTION__KEY`, e.g. `MARIE_CLUSTER__PORT`), then command-line flags.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use marie_client::tls::TlsFiles;
use marie_decide::admission::{Limits, PoolRules};
use marie_decide::autoscale::{AutoscaleSettings, COLD_START_GUESS_MS, SUPERVISOR_TICK_MS};
use marie_decide::leadership::LeaderSettings;
use marie_decide::scheduling::{PoolSetup, SchedulerConfig};
use marie_gpu::{MODEL_HANDLERS, ModelConfig};
use serde::{Deserialize, Serialize};

pub(crate) mod check;

/// Everything a node reads at start.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// This node.
    pub node: NodeConfig,
    /// The cluster port and its authentication.
    pub cluster: ClusterConfig,
    /// The job store.
    pub store: StoreConfig,
    /// The leader's lease, with the Postgres store.
    pub leader: LeaderSettings,
    /// Admission limits and job defaults.
    pub gateway: GatewayConfig,
    /// Leases, heartbeats and retries.
    pub scheduler: SchedulerConfig,
    /// The executor pools.
    pub executor: ExecutorSection,
    /// Trace export.
    pub telemetry: TelemetryConfig,
    /// The Supervisor, which scales pools that have an `autoscale` table.
    pub supervisor: SupervisorConfig,
    /// The HTTP API.
    pub http: HttpConfig,
    /// The manifests `marie k8s render` writes (nodes do not read it).
    pub kubernetes: marie_deploy::config::KubernetesConfig,
}

/// This node's identity and files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeConfig {
    /// Unique name of the node in the cluster: `"auto"` is `<hostname>-<cluster port>`
    /// (see [`crate::identity`]), anything else is used as is.
    pub name: String,
    /// Where the store and the generated cookie live.
    pub data_dir: PathBuf,
    /// On shutdown, how long running jobs may take to finish before they are left to
    /// be re-queued at the next start.
    pub drain_timeout_secs: u64,
    /// On SIGTERM, how long the node keeps serving with `/readyz` answering 503 (so load
    /// balancers stop sending to it) before it shuts down, in seconds.
    pub shutdown_delay_secs: u64,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            name: crate::identity::AUTO.into(),
            data_dir: PathBuf::from(".marie"),
            drain_timeout_secs: 30,
            shutdown_delay_secs: 0,
        }
    }
}

/// The cluster port.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterConfig {
    /// Address the cluster port listens on.
    pub host: IpAddr,
    /// The cluster port (clients and other nodes connect here).
    pub port: u16,
    /// The shared secret; unset means read `cookie_file`, or generate one on loopback.
    pub cookie: Option<String>,
    /// A file holding the cookie.
    pub cookie_file: Option<PathBuf>,
    /// `host:port` other nodes use to reach this one [default: host:port]; `"auto"` is
    /// the address of the interface that routes to the first seed (or the host name's
    /// address) with the cluster port.
    pub advertise: Option<String>,
    /// Cluster addresses of nodes to join through (any node of the cluster will do).
    pub seeds: Vec<String>,
    /// How often a node greets its peers, in milliseconds.
    pub heartbeat_ms: u64,
    /// A peer silent for this long is unreachable: its session is cut and its
    /// executors' jobs re-queue.
    pub down_after_ms: u64,
    /// Mutual TLS on the cluster port, when set.
    pub tls: Option<TlsFiles>,
    /// Longest a TLS handshake may take before the connection is dropped, in milliseconds.
    pub tls_handshake_timeout_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 52000,
            cookie: None,
            cookie_file: None,
            advertise: None,
            seeds: Vec::new(),
            heartbeat_ms: 500,
            down_after_ms: 3000,
            tls: None,
            tls_handshake_timeout_ms: 2000,
        }
    }
}

impl ClusterConfig {
    /// The address other nodes use to reach this one (once [`crate::identity::resolve`]
    /// has replaced `"auto"`).
    pub fn advertised(&self) -> String {
        self.advertise
            .clone()
            .unwrap_or_else(|| SocketAddr::new(self.host, self.port).to_string())
    }
}

/// The HTTP API (`/api/jobs`, `/api/capacity`, health).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpConfig {
    /// Address the HTTP API listens on.
    pub host: IpAddr,
    /// The HTTP port.
    pub port: u16,
    /// When set, every route but `/healthz`, `/readyz` and `/metrics` wants
    /// `Authorization: Bearer <token>`.
    pub auth_token: Option<String>,
    /// Whether a node with a Gateway is ready (`/readyz`) only once every pool with a
    /// target has had an executor; `false` for front doors that must not wait for
    /// executors still being provisioned.
    pub ready_requires_executors: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 54322,
            auth_token: None,
            ready_requires_executors: true,
        }
    }
}

/// Who carries the Supervisor's decisions out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScaleBackendKind {
    /// Executor actors in the node that runs the Supervisor (`marie up`).
    Local,
    /// `marie node --role executor` processes on this machine.
    Process,
    /// Decide and export only (`target`, `marie_supervisor_desired_executors`); an
    /// HPA or KEDA acts on them.
    External,
    /// Set the replicas of the Deployment of each pool with `[executor.pools.kubernetes]
    /// scaler = "supervisor"` through the Kubernetes API (`[supervisor.kubernetes]`);
    /// decide and export only for the other pools, as `External`.
    Kubernetes,
}

/// The Supervisor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SupervisorConfig {
    /// Who starts and stops executors.
    pub backend: ScaleBackendKind,
    /// How often it decides, in milliseconds (it also decides at once when a job is
    /// queued for a pool with no executor).
    pub tick_ms: u64,
    /// First guess of an executor's start time, until one is measured, in milliseconds.
    pub cold_start_guess_ms: u64,
    /// The `kubernetes` backend (`[supervisor.kubernetes]`).
    pub kubernetes: SupervisorKubernetesConfig,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        SupervisorConfig {
            backend: ScaleBackendKind::Local,
            tick_ms: SUPERVISOR_TICK_MS,
            cold_start_guess_ms: COLD_START_GUESS_MS,
            kubernetes: SupervisorKubernetesConfig::default(),
        }
    }
}

/// `[supervisor.kubernetes]`: where the `kubernetes` backend finds the pools'
/// Deployments. It reaches the API server as `kube`'s `Config::infer` does: the pod's
/// service account in a cluster, else `KUBECONFIG` or `~/.kube/config`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SupervisorKubernetesConfig {
    /// Namespace of the Deployments `marie-executor-<pool>` [default: the pod's own
    /// namespace in a cluster, else the kubeconfig context's, else `default`].
    pub namespace: Option<String>,
    /// How often each pool's replicas are read back to notice another writer
    /// (`kubectl scale`, an HPA), in milliseconds.
    pub resync_ms: u64,
}

/// Default of `supervisor.kubernetes.resync_ms`.
pub const KUBERNETES_RESYNC_MS: u64 = 2000;

impl Default for SupervisorKubernetesConfig {
    fn default() -> Self {
        SupervisorKubernetesConfig {
            namespace: None,
            resync_ms: KUBERNETES_RESYNC_MS,
        }
    }
}

/// Where job traces go.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TelemetryConfig {
    /// OTLP/HTTP endpoint (e.g. `http://127.0.0.1:4318`) that receives job traces; unset
    /// reads `OTEL_EXPORTER_OTLP_ENDPOINT`, and with neither, traces are off.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans.
    pub service_name: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            service_name: "marie".into(),
        }
    }
}

/// Which store backs the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// A SQLite file under the data directory: durable.
    Sqlite,
    /// Memory only: nothing survives a restart (benchmarks).
    Memory,
    /// A Postgres database at `store.url`: durable, and shared by server nodes on other
    /// machines.
    Postgres,
}

/// The job store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoreConfig {
    /// `sqlite`, `postgres` or `memory`.
    pub backend: StoreBackend,
    /// SQLite: sync the disk on every commit (`true`), or leave it to the OS (`false`: a
    /// process crash loses nothing, a power loss may lose the last commits).
    pub sync_full: bool,
    /// Most writes folded into one commit.
    pub max_batch: usize,
    /// Postgres: `postgres://USER:PASSWORD@HOST:PORT/DATABASE` (better given as
    /// `MARIE_STORE__URL`, since it holds the password). Shown only with the password
    /// masked.
    pub url: Option<String>,
    /// Postgres: most connections the node holds open.
    pub pool_size: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: StoreBackend::Sqlite,
            sync_full: true,
            max_batch: 1024,
            url: None,
            pool_size: 8,
        }
    }
}

/// Admission limits and job defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GatewayConfig {
    /// Largest payload accepted, in bytes (must stay under the 16 MiB cluster frame).
    pub max_payload_bytes: u64,
    /// Runs allowed when a job does not say.
    pub default_max_attempts: u32,
    /// Most runs a job may ask for.
    pub max_attempts: u32,
    /// Run timeout when a job does not say, in seconds.
    pub default_timeout_secs: u64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            max_payload_bytes: 10 * 1024 * 1024,
            default_max_attempts: 3,
            max_attempts: 10,
            default_timeout_secs: 300,
        }
    }
}

/// The executor pools.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExecutorSection {
    /// One entry per pool.
    pub pools: Vec<PoolConfig>,
}

impl Default for ExecutorSection {
    fn default() -> Self {
        ExecutorSection {
            pools: vec![
                PoolConfig::new("cpu-general", 2, 4, &marie_handlers::BUILTIN),
                PoolConfig::new("extract", 1, 4, &["pdf-text", "image-normalize", "echo"]),
                PoolConfig {
                    gpu: true,
                    model: Some(page_classifier()),
                    ..PoolConfig::new("gpu-ocr", 1, 16, &MODEL_HANDLERS)
                },
            ],
        }
    }
}

/// One pool of executors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PoolConfig {
    /// The pool's name (jobs name it).
    pub name: String,
    /// Executors this node runs for the pool.
    pub replicas: u32,
    /// Jobs each executor runs at once.
    pub slots: u32,
    /// Whether the pool needs a GPU.
    pub gpu: bool,
    /// Handlers the pool offers.
    pub handlers: Vec<String>,
    /// Most jobs waiting in the pool's queue; more get "queue full, retry after".
    pub max_queued: u64,
    /// When set, the Supervisor scales the pool between `min` and `max` executors by
    /// queue pressure (and `replicas` is not used).
    pub autoscale: Option<AutoscaleSettings>,
    /// The TorchScript model behind the pool's `classify` and `infer` handlers
    /// (`[executor.pools.model]`); a model that cannot serve stops the node at start.
    pub model: Option<ModelConfig>,
    /// The pool's Deployment in `marie k8s render` (`[executor.pools.kubernetes]`).
    pub kubernetes: marie_deploy::config::PoolKubernetes,
}

/// The bundled page classifier (gpu/fixtures), the default `gpu-ocr` pool's model.
fn page_classifier() -> ModelConfig {
    ModelConfig {
        max_batch_size: 16,
        max_queue_delay_ms: 5,
        ..ModelConfig::new(
            "gpu/fixtures/page_classifier.pt",
            [1, 64, 64],
            &["letter", "form", "invoice", "receipt"],
        )
    }
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig::new("", 1, 1, &["echo"])
    }
}

impl PoolConfig {
    fn new(name: &str, replicas: u32, slots: u32, handlers: &[&str]) -> Self {
        PoolConfig {
            name: name.into(),
            replicas,
            slots,
            gpu: false,
            handlers: handlers.iter().map(|h| (*h).into()).collect(),
            max_queued: 100_000,
            autoscale: None,
            model: None,
            kubernetes: Default::default(),
        }
    }
}

/// Values from the command line that override the file and the environment.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Overrides {
    /// `--data-dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// The command opens no job store (`marie k8s`, `marie client`, an executor
    /// node): `store.url` is not required (the pods of a render read it from a
    /// Secret).
    #[serde(skip)]
    pub opens_no_store: bool,
}

impl Config {
    /// Reads `path` (or `./cluster.toml` when it exists), the environment, then the
    /// flags, and checks the result.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match path {
            Some(path) if !path.exists() => bail!("config file {} does not exist", path.display()),
            Some(path) => figment = figment.merge(Toml::file(path)),
            None if Path::new("cluster.toml").exists() => {
                figment = figment.merge(Toml::file("cluster.toml"))
            }
            None => {}
        }
        figment = figment.merge(Env::prefixed("MARIE_").split("__"));
        if let Some(dir) = &overrides.data_dir {
            figment = figment.merge(Serialized::default("node.data_dir", dir));
        }
        let config: Config = figment.extract().context("invalid configuration")?;
        config.validate(overrides.opens_no_store)?;
        Ok(config)
    }

    /// Refuses a configuration a node cannot run with, listing every problem (see
    /// [`check`]); the store's connection only where the command opens the store.
    fn validate(&self, opens_no_store: bool) -> anyhow::Result<()> {
        let mut problems = check::problems(self);
        problems.retain(|p| !(opens_no_store && p.key == check::STORE_URL));
        if problems.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = problems.iter().map(|p| format!("\n  - {p}")).collect();
        bail!(
            "invalid configuration, {} problem(s):{}",
            problems.len(),
            list.concat()
        )
    }

    /// The pools with their target slots.
    pub fn pool_setups(&self) -> Vec<PoolSetup> {
        self.executor
            .pools
            .iter()
            .map(|p| PoolSetup {
                name: p.name.clone(),
                target_slots: u64::from(p.autoscale.as_ref().map_or(p.replicas, |a| a.min))
                    * u64::from(p.slots),
            })
            .collect()
    }

    /// The Gateway's admission limits.
    pub fn limits(&self) -> Limits {
        let g = &self.gateway;
        Limits {
            pools: self
                .executor
                .pools
                .iter()
                .map(|p| {
                    let rules = PoolRules {
                        handlers: p.handlers.clone(),
                        max_queued: p.max_queued,
                    };
                    (p.name.clone(), rules)
                })
                .collect(),
            max_payload_bytes: g.max_payload_bytes,
            default_max_attempts: g.default_max_attempts,
            max_attempts_cap: g.max_attempts,
            default_timeout_ms: g.default_timeout_secs.saturating_mul(1000),
        }
    }
}

#[cfg(test)]
// figment::Jail's closures return figment::Error, a large type this crate does not own.
#[allow(clippy::result_large_err)]
pub(crate) mod tests {
    use super::*;

    /// Loads `path` as `marie` would, inside figment's Jail: the tests that set `MARIE_*`
    /// variables set them in a Jail too, which one test holds at a time, so none of their
    /// variables reaches this load.
    pub(crate) fn load_in_jail(path: &Path) -> anyhow::Result<Config> {
        load_in_jail_with(path, &Overrides::default(), &[])
    }

    /// [`load_in_jail`] with `overrides` and the environment `vars`.
    pub(crate) fn load_in_jail_with(
        path: &Path,
        overrides: &Overrides,
        vars: &[(&str, &str)],
    ) -> anyhow::Result<Config> {
        let mut loaded = None;
        figment::Jail::expect_with(|jail| {
            for (name, value) in vars {
                jail.set_env(name, value);
            }
            loaded = Some(Config::load(Some(path), overrides));
            Ok(())
        });
        loaded.expect("the jail ran its closure")
    }

    #[test]
    fn the_shipped_cluster_toml_loads_and_matches_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cluster.toml");
        let from_file: Config = Figment::from(Toml::file(&path))
            .extract()
            .expect("cluster.toml parses");
        assert_eq!(
            from_file,
            Config::default(),
            "cluster.toml and Config::default() disagree"
        );
    }

    #[test]
    fn the_shipped_configurations_pass_every_check() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        // As their pods run: a Postgres store's URL comes from a Secret.
        let url = [("MARIE_STORE__URL", "postgres://marie:secret@db:5432/marie")];
        for file in ["cluster.toml", "k8s/examples/full.toml"] {
            if let Err(e) = load_in_jail_with(&root.join(file), &Overrides::default(), &url) {
                panic!("{file} does not load: {e:#}");
            }
        }
    }

    #[test]
    fn only_commands_that_open_the_store_want_its_url() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../k8s/examples/full.toml");
        let node = load_in_jail(&path).expect_err("a Postgres store without a URL");
        assert!(format!("{node:#}").contains("MARIE_STORE__URL"), "{node:#}");
        let render = Overrides {
            opens_no_store: true,
            ..Overrides::default()
        };
        let config = load_in_jail_with(&path, &render, &[]).expect("loads to render");
        assert_eq!(config.store.url, None);
    }

    #[test]
    fn load_refuses_every_bad_value_at_once_naming_the_keys_and_variables() {
        figment::Jail::expect_with(|jail| {
            // A file, not the environment: other tests load configurations meanwhile.
            jail.create_file(
                "c.toml",
                "[scheduler]\nheartbeat_ms = 20000\n[http]\nauth_token = \"\"\n",
            )?;
            let err = Config::load(Some(Path::new("c.toml")), &Overrides::default()).unwrap_err();
            let message = format!("{err:#}");
            assert!(message.contains("3 problem(s)"), "{message}");
            assert!(
                message.contains("scheduler.heartbeat_ms (MARIE_SCHEDULER__HEARTBEAT_MS) = 20000: must be below scheduler.lease_ttl_ms = 10000"),
                "{message}"
            );
            assert!(
                message.contains("http.auth_token (MARIE_HTTP__AUTH_TOKEN) = \"\""),
                "{message}"
            );
            Ok(())
        });
    }

    #[test]
    fn environment_overrides_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("cluster.toml", "[cluster]\nport = 1234\n")?;
            jail.set_env("MARIE_CLUSTER__PORT", "4321");
            let config = Config::load(None, &Overrides::default()).expect("loads");
            assert_eq!(config.cluster.port, 4321);
            Ok(())
        });
    }

    #[test]
    fn a_pool_offering_classify_without_a_model_is_refused_and_others_have_none() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                "[[executor.pools]]\nname = \"a\"\n[[executor.pools]]\nname = \"b\"\n[[executor.pools]]\nname = \"c\"\n",
            )?;
            let config =
                Config::load(Some(Path::new("c.toml")), &Overrides::default()).expect("loads");
            assert!(
                config.executor.pools.iter().all(|p| p.model.is_none()),
                "a default model leaked in"
            );
            jail.create_file(
                "d.toml",
                "[[executor.pools]]\nname = \"a\"\nhandlers = [\"classify\"]\n",
            )?;
            let err = Config::load(Some(Path::new("d.toml")), &Overrides::default()).unwrap_err();
            assert!(
                format!("{err:#}").contains("[executor.pools.model]"),
                "{err:#}"
            );
            Ok(())
        });
    }

    #[test]
    fn the_kubernetes_backend_reads_its_table_and_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                "[supervisor]\nbackend = \"kubernetes\"\n[supervisor.kubernetes]\nresync_ms = 500\n",
            )?;
            jail.set_env("MARIE_SUPERVISOR__KUBERNETES__NAMESPACE", "marie-prod");
            let config =
                Config::load(Some(Path::new("c.toml")), &Overrides::default()).expect("loads");
            assert_eq!(config.supervisor.backend, ScaleBackendKind::Kubernetes);
            assert_eq!(
                config.supervisor.kubernetes,
                SupervisorKubernetesConfig {
                    namespace: Some("marie-prod".into()),
                    resync_ms: 500,
                }
            );
            jail.set_env("MARIE_SUPERVISOR__KUBERNETES__RESYNC_MS", "0");
            let err = Config::load(Some(Path::new("c.toml")), &Overrides::default()).unwrap_err();
            assert!(
                format!("{err:#}").contains(
                    "supervisor.kubernetes.resync_ms (MARIE_SUPERVISOR__KUBERNETES__RESYNC_MS) = 0"
                ),
                "{err:#}"
            );
            Ok(())
        });
    }

    #[test]
    fn a_duplicate_pool_is_refused() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                "[[executor.pools]]\nname = \"a\"\n[[executor.pools]]\nname = \"a\"\n",
            )?;
            let err = Config::load(Some(Path::new("c.toml")), &Overrides::default()).unwrap_err();
            assert!(format!("{err:#}").contains("defined twice"), "{err:#}");
            Ok(())
        });
    }
}
