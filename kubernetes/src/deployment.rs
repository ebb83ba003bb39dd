//! A pool's Deployment, read and written only through its `/scale` subresource:
//! `get` and `patch` on `deployments/scale`, nothing else.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v1::Scale;
use kube::api::{Api, Patch, PatchParams};
use marie_actors::supervisor::ReplicaError;
use serde_json::json;

use crate::api::ApiServer;
use crate::errors::Call;

/// The Deployment behind one pool: `marie-executor-<pool>`.
pub(crate) struct PoolDeployment<'a> {
    server: &'a ApiServer,
    api: Api<Deployment>,
    pool: String,
    name: String,
    object: String,
}

/// What the Supervisor needs from one read of `/scale`.
pub(crate) struct ScaleRead {
    /// `spec.replicas`: the count the Deployment is set to.
    pub replicas: u32,
    /// `status.selector`: the label selector of the Deployment's pods.
    pub selector: String,
    /// `metadata.resourceVersion`, for a conflict-checked write.
    pub resource_version: String,
}

impl<'a> PoolDeployment<'a> {
    /// The Deployment of `pool` on `server`.
    pub fn new(server: &'a ApiServer, pool: &str) -> Self {
        let name = name(pool);
        PoolDeployment {
            server,
            api: Api::namespaced(server.client.clone(), &server.namespace),
            object: format!("deployment/{name}"),
            pool: pool.to_string(),
            name,
        }
    }

    /// The object, as `kubectl` names it.
    pub fn object(&self) -> &str {
        &self.object
    }

    /// Reads `/scale`. `spec.replicas` absent means 0: the API server leaves a zero out
    /// of the Scale it returns (it fills a Deployment created without replicas with 1).
    pub async fn read(&self) -> Result<ScaleRead, ReplicaError> {
        let scale = self
            .api
            .get_scale(&self.name)
            .await
            .map_err(|error| self.call("get").failed(self.server, error))?;
        Ok(self.scale_read(scale))
    }

    /// Sets `spec.replicas` to `replicas`, provided the Deployment is still at
    /// `resource_version` (the API server answers 409 Conflict otherwise).
    pub async fn write(&self, replicas: u32, resource_version: &str) -> Result<(), ReplicaError> {
        let patch = json!({
            "metadata": { "resourceVersion": resource_version },
            "spec": { "replicas": replicas },
        });
        self.api
            .patch_scale(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|error| self.call("patch").failed(self.server, error))?;
        Ok(())
    }

    /// What the Supervisor needs from `scale`; the selector the render gives the
    /// pool's pods when the API server sends none.
    fn scale_read(&self, scale: Scale) -> ScaleRead {
        let replicas = scale.spec.and_then(|spec| spec.replicas).unwrap_or(0);
        ScaleRead {
            replicas: u32::try_from(replicas).unwrap_or(0),
            selector: scale
                .status
                .and_then(|status| status.selector)
                .unwrap_or_else(|| format!("app=marie-executor,marie.ai/pool={}", self.pool)),
            resource_version: scale.metadata.resource_version.unwrap_or_default(),
        }
    }

    fn call(&self, verb: &'static str) -> Call {
        Call {
            verb,
            resource: "deployments/scale",
            object: self.object.clone(),
        }
    }
}

/// The Deployment name of `pool`.
pub(crate) fn name(pool: &str) -> String {
    format!("marie-executor-{pool}")
}
