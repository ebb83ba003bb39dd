//! The pods of drained executors, marked to be the ones a scale-down removes.
//!
//! A Deployment picks the pods it removes itself: not-ready pods first, then those with
//! the lowest `controller.kubernetes.io/pod-deletion-cost`. A drained executor's node
//! reads not ready (its `/readyz` fails once its executor has left); the backend gives
//! its pod the lowest deletion cost too, and waits briefly until the pod reads back not
//! Ready, so the ReplicaSet ranks it first when replicas go down. The ranking is best
//! effort: after the wait, replicas go down even if a pod still reads Ready.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use marie_actors::supervisor::ReplicaError;
use serde_json::json;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::api::ApiServer;
use crate::errors::Call;

/// The annotation a ReplicaSet ranks pods by when it removes some.
const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// The lowest deletion cost there is: remove this pod first.
const LOWEST_COST: &str = "-2147483648";

/// How long, in all, a scale-down waits for its leaving pods to read not Ready before
/// it lowers replicas anyway.
pub const READY_WAIT: Duration = Duration::from_secs(2);

/// The pods of one pool's Deployment.
pub(crate) struct PoolPods<'a> {
    server: &'a ApiServer,
    api: Api<Pod>,
    pool: &'a str,
}

impl<'a> PoolPods<'a> {
    /// The pods of `pool` on `server`.
    pub fn new(server: &'a ApiServer, pool: &'a str) -> Self {
        PoolPods {
            server,
            api: Api::namespaced(server.client.clone(), &server.namespace),
            pool,
        }
    }

    /// Marks the pods of the `leaving` executors among those `selector` lists and waits,
    /// [`READY_WAIT`] at most, until each reads not Ready.
    pub async fn mark_leaving(
        &self,
        selector: &str,
        leaving: &[String],
    ) -> Result<(), ReplicaError> {
        let deadline = Instant::now() + READY_WAIT;
        let listed = self
            .api
            .list(&ListParams::default().labels(selector))
            .await
            .map_err(|error| {
                pod_call("list", format!("pods -l {selector}")).failed(self.server, error)
            })?;
        let mut marked = Vec::new();
        for executor in leaving {
            let Some(pod) = executor.strip_suffix(&format!("-{}-1", self.pool)) else {
                warn!(
                    executor = %executor,
                    "a leaving executor of pool {} is not named <pod>-{}-1; its pod is not marked, so the Deployment may remove another pod (whose executor then drains on SIGTERM)",
                    self.pool, self.pool
                );
                continue;
            };
            let pod_listed = listed
                .items
                .iter()
                .any(|listed| listed.metadata.name.as_deref() == Some(pod));
            if !pod_listed {
                debug!(pod = %pod, selector = %selector, "the pod of a leaving executor is gone already");
                continue;
            }
            if let Some(pod) = self.annotate(pod).await? {
                marked.push(pod);
            }
        }
        for pod in marked {
            if is_ready(&pod) {
                self.wait_not_ready(&pod, deadline).await?;
            }
        }
        Ok(())
    }

    /// Gives pod `name` the lowest deletion cost; the pod as patched, or `None` if it
    /// is gone.
    async fn annotate(&self, name: &str) -> Result<Option<Pod>, ReplicaError> {
        let patch = json!({ "metadata": { "annotations": { DELETION_COST: LOWEST_COST } } });
        match self
            .api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(pod) => Ok(Some(pod)),
            Err(kube::Error::Api(status)) if status.code == 404 => {
                debug!(pod = %name, "the pod of a leaving executor went away before it was marked");
                Ok(None)
            }
            Err(error) => Err(pod_call("patch", format!("pod/{name}")).failed(self.server, error)),
        }
    }

    /// Watches `pod` from its patched version until it reads not Ready or is deleted,
    /// or `deadline` passes (then only a debug log: the scale-down goes on).
    async fn wait_not_ready(&self, pod: &Pod, deadline: Instant) -> Result<(), ReplicaError> {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let left = deadline.saturating_duration_since(Instant::now());
        let params = WatchParams::default()
            .fields(&format!("metadata.name={name}"))
            .timeout(u32::try_from(left.as_millis().div_ceil(1000).max(1)).unwrap_or(1))
            .disable_bookmarks();
        let version = pod.metadata.resource_version.as_deref().unwrap_or("0");
        let watched = tokio::time::timeout(left, async {
            let events = self.api.watch(&params, version).await.map_err(|error| {
                pod_call("watch", format!("pod/{name}")).failed(self.server, error)
            })?;
            let mut events = std::pin::pin!(events);
            while let Some(event) = events.next().await {
                match event {
                    Ok(WatchEvent::Added(pod) | WatchEvent::Modified(pod)) if !is_ready(&pod) => {
                        return Ok(true);
                    }
                    Ok(WatchEvent::Deleted(_)) => return Ok(true),
                    Ok(WatchEvent::Error(status)) => {
                        debug!(pod = %name, "the watch of a leaving pod ended: {}", status.message);
                        return Ok(false);
                    }
                    Ok(_) => {}
                    Err(error) => {
                        debug!(pod = %name, "the watch of a leaving pod broke off: {error}");
                        return Ok(false);
                    }
                }
            }
            Ok(false)
        })
        .await;
        match watched {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) | Err(_) => {
                debug!(
                    pod = %name,
                    "the pod of a leaving executor still read Ready after {READY_WAIT:?}; lowering replicas anyway (its deletion cost still ranks it first among ready pods)"
                );
                Ok(())
            }
            Ok(Err(error)) => Err(error),
        }
    }
}

/// A call on pods, about `object`.
fn pod_call(verb: &'static str, object: String) -> Call {
    Call {
        verb,
        resource: "pods",
        object,
    }
}

/// Whether `pod`'s `Ready` condition is true.
fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|status| status.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|condition| condition.type_ == "Ready" && condition.status == "True")
        })
}
