//! [`KubernetesBackend`]: the [`ReplicaBackend`] over the pools' Deployments.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use kube::Client;
use marie_actors::supervisor::{ReplicaBackend, ReplicaError, ReplicaFailure};

use crate::api::ApiServer;
use crate::deployment::{self, PoolDeployment};
use crate::leaving::PoolPods;

/// Scales pools by setting the replicas of their Deployments (`marie-executor-<pool>`)
/// in one namespace, through each Deployment's `/scale` subresource. Cheap to clone.
///
/// It uses exactly what the Role `marie-supervisor` grants: `get` and `patch` on
/// `deployments/scale`; `list`, `watch` and `patch` on `pods`.
#[derive(Clone)]
pub struct KubernetesBackend {
    server: ApiServer,
    pools: Arc<BTreeSet<String>>,
}

impl KubernetesBackend {
    /// A backend scaling `pools` in `namespace` through `client`; `api_server` is the
    /// API server's address as messages name it (`https://10.96.0.1:443`).
    ///
    /// The client should bound each call (see [`KubernetesBackend::from_config`]), so
    /// that an API server that stops answering cannot hold up the Supervisor.
    pub fn new(
        client: Client,
        namespace: impl Into<String>,
        api_server: impl Into<String>,
        pools: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        KubernetesBackend {
            server: ApiServer {
                client,
                namespace: namespace.into(),
                address: api_server.into(),
            },
            pools: Arc::new(pools.into_iter().map(Into::into).collect()),
        }
    }

    /// The namespace the pools' Deployments live in.
    pub fn namespace(&self) -> &str {
        &self.server.namespace
    }

    /// The Deployment of `pool`, if this backend scales it.
    fn deployment<'a>(&'a self, pool: &str) -> Result<PoolDeployment<'a>, ReplicaError> {
        if self.pools.contains(pool) {
            return Ok(PoolDeployment::new(&self.server, pool));
        }
        let scaled: Vec<&str> = self.pools.iter().map(String::as_str).collect();
        Err(ReplicaError::Failed {
            object: self.object(pool),
            kind: ReplicaFailure::Refused,
            problem: format!(
                "pool {pool} is not scaled by the kubernetes backend (it scales: {})",
                scaled.join(", ")
            ),
            fix: format!(
                "set scaler = \"supervisor\" in [executor.pools.kubernetes] of pool {pool} and render again, or leave its scaling to KEDA or an HPA"
            ),
        })
    }
}

#[async_trait]
impl ReplicaBackend for KubernetesBackend {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn object(&self, pool: &str) -> String {
        format!("deployment/{}", deployment::name(pool))
    }

    async fn replicas(&self, pool: &str) -> Result<u32, ReplicaError> {
        Ok(self.deployment(pool)?.read().await?.replicas)
    }

    async fn set_replicas(
        &self,
        pool: &str,
        from: u32,
        to: u32,
        leaving: &[String],
    ) -> Result<(), ReplicaError> {
        let deployment = self.deployment(pool)?;
        let scale = deployment.read().await?;
        if scale.replicas != from {
            return Err(ReplicaError::ScaledElsewhere {
                object: deployment.object().to_string(),
                expected: from,
                found: scale.replicas,
            });
        }
        if to < from && !leaving.is_empty() {
            PoolPods::new(&self.server, pool)
                .mark_leaving(&scale.selector, leaving)
                .await?;
        }
        deployment.write(to, &scale.resource_version).await
    }
}
