//! How a test configures the server: the namespace, the service accounts given tokens, and
//! how a pod's process is started.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use tokio::process::Command;

/// What the kubelet knows when it starts a pod's container.
#[derive(Debug, Clone, Copy)]
pub struct PodStart<'a> {
    /// The pod's namespace.
    pub namespace: &'a str,
    /// The Deployment the pod belongs to (its template: args, env, grace period).
    pub deployment: &'a Deployment,
    /// The pod's name (what `fieldRef: metadata.name` resolves to).
    pub pod: &'a str,
    /// A free loopback port, the same for every start of this pod: the process must serve
    /// `GET /readyz` there (200 = Ready).
    pub http_port: u16,
    /// Restarts before this start (0 for the first).
    pub restart_count: i32,
}

/// Builds the command that runs a pod's container; called again for every restart.
pub trait PodRunner: Send + Sync + 'static {
    /// The command for this start. The kubelet adds `kill_on_drop`, a parent-death signal
    /// and, when [`FakeOptions::log_dir`] is set, the log file as stdout and stderr.
    fn command(&self, start: &PodStart<'_>) -> Command;
}

impl<F> PodRunner for F
where
    F: Fn(&PodStart<'_>) -> Command + Send + Sync + 'static,
{
    fn command(&self, start: &PodStart<'_>) -> Command {
        self(start)
    }
}

/// Settings of a [`crate::FakeApiServer`].
#[derive(Clone)]
pub struct FakeOptions {
    /// Namespace given to objects applied without one (and the kubeconfig's namespace).
    pub namespace: String,
    /// Service accounts of `namespace` that get a bearer token
    /// ([`crate::FakeApiServer::token`]); they are authorized by the loaded RBAC objects.
    pub service_accounts: Vec<String>,
    /// Starts pods' processes.
    pub runner: Arc<dyn PodRunner>,
    /// Time between a pod's creation and its process start (scheduling and image pull);
    /// the pod is Pending meanwhile.
    pub pod_start_delay: Duration,
    /// How often the kubelet reads each pod's `/readyz`.
    pub probe_interval: Duration,
    /// How long the kubelet waits before restarting a container that exited.
    pub restart_backoff: Duration,
    /// Where each pod's output goes, as `<log_dir>/<pod>.log`; None discards it.
    pub log_dir: Option<PathBuf>,
}

impl FakeOptions {
    /// Options for `namespace` with `runner` starting pods; no service accounts, no start
    /// delay, readiness read every 200 ms, restarts after 500 ms.
    pub fn new(namespace: impl Into<String>, runner: impl PodRunner) -> Self {
        FakeOptions {
            namespace: namespace.into(),
            service_accounts: Vec::new(),
            runner: Arc::new(runner),
            pod_start_delay: Duration::ZERO,
            probe_interval: Duration::from_millis(200),
            restart_backoff: Duration::from_millis(500),
            log_dir: None,
        }
    }

    /// Gives the service account `name` of the namespace a token.
    pub fn service_account(mut self, name: impl Into<String>) -> Self {
        self.service_accounts.push(name.into());
        self
    }

    /// Sets [`FakeOptions::pod_start_delay`].
    pub fn pod_start_delay(mut self, delay: Duration) -> Self {
        self.pod_start_delay = delay;
        self
    }

    /// Sets [`FakeOptions::log_dir`].
    pub fn log_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.log_dir = Some(dir.into());
        self
    }
}

impl fmt::Debug for FakeOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeOptions")
            .field("namespace", &self.namespace)
            .field("service_accounts", &self.service_accounts)
            .field("pod_start_delay", &self.pod_start_delay)
            .field("probe_interval", &self.probe_interval)
            .field("restart_backoff", &self.restart_backoff)
            .field("log_dir", &self.log_dir)
            .finish_non_exhaustive()
    }
}
