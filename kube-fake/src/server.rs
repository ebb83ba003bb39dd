//! The handle a test holds: start, load objects, act as a second writer or as the node
//! (kill a container, delete a pod), read pods and the journal, stop.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::cluster::Cluster;
use crate::journal::{JournalEntry, TerminationCause};
use crate::kubelet::{self, Control};
use crate::options::FakeOptions;
use crate::pod;
use crate::rbac::{RbacUsage, User};
use crate::{apply, kubeconfig, replicaset, routes};

/// How long [`FakeApiServer::stop`] waits for processes and connections to end.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// A running fake API server with its ReplicaSet and kubelet simulators.
pub struct FakeApiServer {
    cluster: Arc<Cluster>,
    addr: SocketAddr,
    admin_token: String,
    service_account_tokens: BTreeMap<String, String>,
    tasks: Vec<JoinHandle<()>>,
}

/// A pod as a test reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    /// Pod name.
    pub name: String,
    /// Phase: Pending before the process started, then Running.
    pub phase: String,
    /// The Ready condition (`/readyz` answered 200 at the last probe).
    pub ready: bool,
    /// Deleted, waiting for its process to exit.
    pub terminating: bool,
    /// Restarts of its container.
    pub restart_count: i32,
    /// `controller.kubernetes.io/pod-deletion-cost` (0 when absent).
    pub deletion_cost: i32,
    /// The http port handed to the pod runner.
    pub http_port: u16,
    /// The running process, if any.
    pub pid: Option<u32>,
}

impl FakeApiServer {
    /// Starts the server on a free loopback port, with the ReplicaSet loop.
    pub async fn start(options: FakeOptions) -> anyhow::Result<Self> {
        let admin_token = new_token();
        let mut tokens = BTreeMap::from([(admin_token.clone(), User::admin())]);
        let mut service_account_tokens = BTreeMap::new();
        for account in &options.service_accounts {
            let token = new_token();
            tokens.insert(
                token.clone(),
                User::service_account(&options.namespace, account),
            );
            service_account_tokens.insert(account.clone(), token);
        }
        let cluster = Arc::new(Cluster::new(options, tokens));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding a loopback port")?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let mut shutdown = cluster.shutdown.subscribe();
        let app = routes::router(cluster.clone());
        let serve = tokio::spawn(async move {
            let stopped = async move {
                // An error means the sender is gone: stop as well.
                let _ = shutdown.wait_for(|stop| *stop).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
            {
                tracing::warn!(error = %e, "the fake API server stopped serving");
            }
        });
        let replicasets = tokio::spawn(replicaset::run(cluster.clone()));
        Ok(FakeApiServer {
            cluster,
            addr,
            admin_token,
            service_account_tokens,
            tasks: vec![serve, replicasets],
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The namespace of [`FakeOptions::namespace`].
    pub fn namespace(&self) -> &str {
        &self.cluster.options.namespace
    }

    /// The administrator's token: every request allowed, as `kubectl` with cluster-admin.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The token of a service account listed in [`FakeOptions::service_accounts`].
    pub fn token(&self, service_account: &str) -> Option<&str> {
        self.service_account_tokens
            .get(service_account)
            .map(String::as_str)
    }

    /// Applies every document of a YAML stream (Deployments and RBAC objects, decoded
    /// strictly); returns `Kind/name` of each.
    pub fn apply_yaml(&self, yaml: &str) -> anyhow::Result<Vec<String>> {
        apply::yaml(&self.cluster, yaml)
    }

    /// Applies one typed object (e.g. a k8s-openapi `Deployment` or `Role`); returns `Kind/name`.
    pub fn apply<T: Serialize>(&self, object: &T) -> anyhow::Result<String> {
        apply::object(
            &self.cluster,
            serde_json::to_value(object).context("serialising the object")?,
        )
    }

    /// Sets a Deployment's replicas as another writer would (an HPA, or a person with
    /// `kubectl scale`): the resourceVersion moves on.
    pub fn scale_by_admin(&self, deployment: &str, replicas: i32) -> anyhow::Result<()> {
        let key = self.key(deployment);
        let mut store = self.cluster.store();
        self.cluster
            .scale(&mut store, &key, replicas, &User::admin().name)
            .map_err(|e| anyhow::anyhow!(e.message))
    }

    /// The Deployment as stored (spec and status).
    pub fn deployment(&self, name: &str) -> Option<Deployment> {
        self.cluster
            .store()
            .deployments
            .get(&self.key(name))
            .cloned()
    }

    /// The pods of a Deployment (terminating ones included), oldest first.
    pub fn pods(&self, deployment: &str) -> Vec<PodView> {
        let store = self.cluster.store();
        let mut records: Vec<_> = store
            .pods
            .iter()
            .filter(|((ns, _), r)| ns == self.namespace() && r.deployment == deployment)
            .map(|(_, r)| r)
            .collect();
        records.sort_by_key(|r| r.created);
        records
            .into_iter()
            .map(|r| PodView {
                name: r.pod.metadata.name.clone().unwrap_or_default(),
                phase: pod::phase(&r.pod).to_string(),
                ready: pod::is_ready(&r.pod),
                terminating: pod::is_terminating(&r.pod),
                restart_count: pod::restart_count(&r.pod),
                deletion_cost: pod::deletion_cost(&r.pod),
                http_port: r.http_port,
                pid: r.pid,
            })
            .collect()
    }

    /// A pod as the API serves it.
    pub fn pod(&self, name: &str) -> Option<Pod> {
        self.cluster
            .store()
            .pods
            .get(&self.key(name))
            .map(|r| r.pod.clone())
    }

    /// SIGKILLs the pod's process: the kubelet restarts it under the same pod name.
    pub fn kill_container(&self, pod: &str) -> anyhow::Result<()> {
        let store = self.cluster.store();
        let Some(record) = store.pods.get(&self.key(pod)) else {
            bail!("no pod {pod}")
        };
        if record.pid.is_none() {
            bail!("pod {pod} has no running process to kill");
        }
        record
            .control
            .send(Control::Kill)
            .with_context(|| format!("pod {pod} has no kubelet"))
    }

    /// Deletes the pod gracefully (SIGTERM, SIGKILL after its grace period); the
    /// ReplicaSet creates a replacement with a new name.
    pub fn delete_pod(&self, pod: &str) -> anyhow::Result<()> {
        let key = self.key(pod);
        let mut store = self.cluster.store();
        kubelet::terminate(
            &self.cluster,
            &mut store,
            &key,
            TerminationCause::Deleted,
            None,
        )
        .with_context(|| format!("no pod {pod}"))?;
        self.cluster.changed.notify_one();
        Ok(())
    }

    /// Everything that happened so far, in order.
    pub fn journal(&self) -> Vec<JournalEntry> {
        self.cluster.journal.entries()
    }

    /// Which grants of the loaded Roles and ClusterRoles requests used, and which none did.
    pub fn rbac_usage(&self) -> RbacUsage {
        self.cluster.store().rbac.usage()
    }

    /// Writes a kubeconfig for this server, its namespace and `token`.
    pub fn write_kubeconfig(&self, path: &Path, token: &str) -> anyhow::Result<()> {
        kubeconfig::write(path, &self.url(), self.namespace(), token)
    }

    /// Stops serving, SIGKILLs every pod's process and waits (bounded) for them to be gone.
    pub async fn stop(mut self) {
        self.cluster.shutdown.send_replace(true);
        for record in self.cluster.store().pods.values() {
            // A closed channel: that kubelet is gone already.
            let _ = record.control.send(Control::Stop);
        }
        let kubelets = std::mem::take(
            &mut *self
                .cluster
                .kubelets
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        let tasks = std::mem::take(&mut self.tasks);
        let all = futures::future::join_all(kubelets.into_iter().chain(tasks));
        if tokio::time::timeout(STOP_TIMEOUT, all).await.is_err() {
            tracing::warn!(
                "the fake API server did not stop within {STOP_TIMEOUT:?}; its tasks are aborted"
            );
        }
    }

    fn key(&self, name: &str) -> (String, String) {
        (self.namespace().to_string(), name.to_string())
    }
}

impl Drop for FakeApiServer {
    /// Without [`FakeApiServer::stop`] (a failing test): abort every task, which kills
    /// every pod's process (`kill_on_drop`).
    fn drop(&mut self) {
        self.cluster.shutdown.send_replace(true);
        for task in self.tasks.drain(..) {
            task.abort();
        }
        for task in self
            .cluster
            .kubelets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }
}

fn new_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
