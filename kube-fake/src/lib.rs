//! A Kubernetes API server for tests, small and faithful where Marie's `kubernetes`
//! backend depends on it.
//!
//! It serves the API server's own paths for Deployments (`get`, and the `/scale`
//! subresource: get, merge patch, update) and pods (list with label and field selectors,
//! watch, get, merge patch, delete); decodes every body strictly into its k8s-openapi type
//! (an unknown field is a 400, as with `fieldValidation=Strict`); takes only
//! `application/merge-patch+json` patches (else 415); treats a `metadata.resourceVersion`
//! in a write as a precondition (409 when stale); answers errors as `metav1.Status`;
//! authenticates bearer tokens and authorizes them against the loaded Roles and
//! RoleBindings (403 in the API server's words, admin token exempt, 401 without a token).
//!
//! Beside it run a ReplicaSet simulator (each Deployment's live pods kept at
//! `spec.replicas`, scale-down victims ranked as the controller ranks them) and a kubelet
//! per pod that runs a real process from the test's [`PodRunner`], reads its Ready
//! condition from `/readyz`, restarts it when it exits on its own, and on deletion sends
//! SIGTERM, then SIGKILL after the grace period.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use marie_kube_fake::{FakeApiServer, FakeOptions, PodStart};
//! let runner = |start: &PodStart<'_>| {
//!     let mut command = tokio::process::Command::new("python3");
//!     command.args(["-m", "http.server", &start.http_port.to_string()]);
//!     command
//! };
//! let server = FakeApiServer::start(FakeOptions::new("marie", runner).service_account("marie-server")).await?;
//! server.apply_yaml(&std::fs::read_to_string("k8s/deployment-marie-executor-extract.yaml")?)?;
//! server.write_kubeconfig(std::path::Path::new("/tmp/kubeconfig"), server.token("marie-server").unwrap_or_default())?;
//! server.stop().await;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod apply;
mod cluster;
mod decode;
mod journal;
mod kubeconfig;
mod kubelet;
mod options;
mod pod;
mod rbac;
mod replicaset;
mod routes;
mod selector;
mod server;
mod status;
mod store;

pub use journal::{JournalEntry, JournalEvent, TerminationCause};
pub use options::{FakeOptions, PodRunner, PodStart};
pub use pod::DELETION_COST;
pub use rbac::{Grant, RbacUsage};
pub use server::{FakeApiServer, PodView};
