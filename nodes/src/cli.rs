//! The `marie` command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use marie_protocol::{JobId, JobState};

use crate::logging::LogFormat;

/// Marie runs document-AI jobs (OCR, extraction, classification, your own handlers) on
/// pools of executors, and never loses a job it accepted.
///
/// Start everything on this machine with `marie up`, then submit documents with
/// `marie submit`. Every command but `up` talks to a running cluster through its
/// cluster port (--connect) with the cluster's cookie.
#[derive(Debug, Parser)]
#[command(name = "marie", version, propagate_version = true)]
pub struct Cli {
    /// Settings shared by every command.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Settings shared by every command.
#[derive(Debug, Args)]
pub struct Global {
    /// Configuration file [default: ./cluster.toml when present, else built-in defaults].
    #[arg(long, global = true, env = "MARIE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory: the job store and the generated cookie [default: .marie].
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Log format on stderr (filter with RUST_LOG, e.g. RUST_LOG=marie=debug).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How a client command reaches the cluster.
#[derive(Debug, Args)]
pub struct Connect {
    /// A node's cluster port [default: 127.0.0.1 and cluster.port from the config].
    #[arg(long, value_name = "HOST:PORT")]
    pub connect: Option<String>,
    /// File holding the cluster cookie [default: MARIE_CLUSTER__COOKIE, cluster.cookie,
    /// or the cookie `marie up` generated in the data dir].
    #[arg(long, value_name = "FILE")]
    pub cookie_file: Option<PathBuf>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole cluster in this process: store, scheduler, gateway and every pool's
    /// executors, serving the cluster port. Ctrl-C drains running jobs and stops.
    Up,
    /// Run one node of a multi-node cluster: `server` (the store and the scheduler, one
    /// per cluster, plus a Gateway), `gateway` (clients' front door; several may run) or
    /// `executor --pool NAME` (that pool's executors). Nodes join through
    /// `cluster.seeds` and connect to every other node.
    Node {
        /// What the node runs.
        #[arg(long, value_enum)]
        role: crate::cluster::RoleKind,
        /// The pool an executor node serves.
        #[arg(long)]
        pool: Option<String>,
        /// Executors an executor node runs [default: the pool's `replicas`].
        #[arg(long)]
        executors: Option<u32>,
    },
    /// The commands that talk to a running cluster.
    #[command(flatten)]
    Client(ClientCommand),
    /// Measure jobs/s and end-to-end latency of no-op jobs through an embedded cluster,
    /// with the SQLite store and in memory, next to a raw ractor call.
    Bench(crate::bench::BenchArgs),
    /// Kubernetes and Docker Compose: render the manifests of this configuration, or
    /// lint manifests for what an API server or a controller would reject.
    K8s {
        /// What to do.
        #[command(subcommand)]
        command: K8sCommand,
    },
}

/// The commands that talk to a running cluster through its cluster port.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Submit one job per file (or one from stdin) and print each job's id.
    Submit(SubmitArgs),
    /// Show a job's state, attempts and last error.
    Status {
        /// The job.
        id: JobId,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        connect: Connect,
    },
    /// Wait until jobs end; exits non-zero if any did not succeed.
    Wait {
        /// The jobs.
        #[arg(required = true)]
        ids: Vec<JobId>,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        connect: Connect,
    },
    /// Write a succeeded job's output to stdout or a file.
    Result {
        /// The job.
        id: JobId,
        /// Write here instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        #[command(flatten)]
        connect: Connect,
    },
    /// Cancel a queued or running job.
    Cancel {
        /// The job.
        id: JobId,
        #[command(flatten)]
        connect: Connect,
    },
    /// List jobs, newest first.
    Jobs {
        /// Only jobs in this state (queued, running, succeeded, failed, cancelled, expired).
        #[arg(long)]
        state: Option<JobState>,
        /// Only jobs of this pool.
        #[arg(long)]
        pool: Option<String>,
        /// Jobs per page.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Continue after this job id (the `next` of the previous page).
        #[arg(long, value_name = "ID")]
        after: Option<JobId>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        connect: Connect,
    },
    /// Print slots per pool (capacity, target, used, available, holders) as JSON, the
    /// same document as `GET /api/capacity`.
    Capacity {
        #[command(flatten)]
        connect: Connect,
    },
}

/// `marie k8s`.
#[derive(Debug, Subcommand)]
pub enum K8sCommand {
    /// Render every object of the cluster from --config (its `[kubernetes]` section and
    /// each pool's `[executor.pools.kubernetes]` table; every key has a default): the
    /// server StatefulSet and its headless Service, the gateway Deployment, Service,
    /// HPA, PDB and Ingress, one Deployment, PDB and scaler (KEDA ScaledObject, HPA,
    /// the Supervisor, or none) per pool, the ConfigMap holding the cluster.toml
    /// verbatim, and the optional PodMonitor, NetworkPolicy and prometheus-adapter
    /// rules. The pods read the cookie from the Secret `marie-cookie` (key `cookie`)
    /// and, with store.backend = "postgres", the store's URL from `marie-store` (key
    /// `url`; several server pods then share it, one leader and standbys):
    ///
    ///   kubectl create secret generic marie-cookie -n marie --from-literal=cookie=$(openssl rand -hex 32)
    ///   kubectl create secret generic marie-store -n marie --from-literal=url='postgres://USER:PASSWORD@HOST:5432/marie'
    ///   marie k8s render --config cluster.toml --out k8s && kubectl apply -k k8s
    ///
    /// A configuration Kubernetes would run wrongly (two scalers on one pool, an HPA
    /// asked to reach zero, a GPU pool that is not Guaranteed, …) is refused with what
    /// to change.
    #[command(verbatim_doc_comment)]
    Render {
        /// `-` prints one YAML stream; a folder gets one file per object and a
        /// kustomization.yaml (files of its previous render are replaced), or
        /// compose.yaml with --format compose.
        #[arg(long, value_name = "DIR|-", default_value = "-")]
        out: PathBuf,
        /// `yaml`: Kubernetes objects; `compose`: a Docker Compose file with the same
        /// nodes (write the cookie to ./marie-cookie beside it).
        #[arg(long, value_enum, default_value_t = RenderFormat::Yaml)]
        format: RenderFormat,
        /// The namespace [default: kubernetes.namespace].
        #[arg(long)]
        namespace: Option<String>,
        /// The image of the server, gateways and pools without a model or GPU
        /// [default: kubernetes.image; GPU pools use kubernetes.image_gpu].
        #[arg(long)]
        image: Option<String>,
    },
    /// Lint the manifests (*.yaml) of DIR for what schemas miss: DNS-1123 names and
    /// label lengths, port names, selectors matching their pods, Service target ports
    /// that exist, one scaler per workload with an existing target and min <= max, no
    /// `replicas` on scaled Deployments, GPU pods Guaranteed, grace periods that cover
    /// the shutdown delay and the drain, probes, a restricted securityContext, and
    /// ConfigMaps/Secrets that exist. Exits 1 when it finds a problem.
    Check {
        /// The folder of manifests.
        dir: PathBuf,
        /// A Secret created apart from the manifests (`kubectl create secret`) that
        /// pods may reference; repeat for more [default: the cookie's and the
        /// Postgres store's].
        #[arg(
            long = "secret",
            value_name = "NAME",
            default_values = ["marie-cookie", "marie-store"]
        )]
        secrets: Vec<String>,
    },
}

/// What `marie k8s render` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RenderFormat {
    /// Kubernetes objects.
    Yaml,
    /// A Docker Compose file.
    Compose,
}

/// `marie submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The pool that runs the jobs.
    #[arg(long)]
    pub pool: String,
    /// The handler within the pool (e.g. echo, sleep, pdf-text, image-normalize).
    #[arg(long)]
    pub handler: String,
    /// Documents, one job each; none reads one document from stdin.
    pub files: Vec<PathBuf>,
    /// Higher runs first.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i32,
    /// Project the jobs belong to.
    #[arg(long, default_value = "")]
    pub project_id: String,
    /// Kind of the referenced document; with --ref-id, the deduplication key.
    #[arg(long, default_value = "")]
    pub ref_type: String,
    /// Id of the referenced document (only with one file).
    #[arg(long, default_value = "")]
    pub ref_id: String,
    /// Runs allowed before a job fails [default: gateway.default_max_attempts].
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// Longest one run may take, in seconds [default: gateway.default_timeout_secs].
    #[arg(long)]
    pub timeout_secs: Option<u64>,
    /// Wait for every job to end and print its final state.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: write each succeeded job's output to DIR/<job id>.
    #[arg(long, value_name = "DIR", requires = "wait")]
    pub output_dir: Option<PathBuf>,
    /// Print one JSON object per job.
    #[arg(long)]
    pub json: bool,
    /// Submissions in flight at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// While a pool's queue is full, wait the time the cluster names and submit again,
    /// for at most this many seconds per job (0: fail at once).
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub retry_for_secs: u64,
    #[command(flatten)]
    pub connect: Connect,
}
