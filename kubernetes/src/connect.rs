//! Connecting to the API server the node runs under: in a pod, its service account;
//! elsewhere, `KUBECONFIG` or `~/.kube/config`.

use std::time::Duration;

use kube::config::InferConfigError;
use kube::{Client, Config};

use crate::KubernetesBackend;

/// The most one call to the API server may take (connect, send, each read), so that an
/// API server that stops answering cannot hold up the Supervisor.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the backend could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Neither a pod's service account nor a kubeconfig was found.
    #[error(
        "no Kubernetes API server to talk to ({0}); run the server in a pod under ServiceAccount marie-server, or point KUBECONFIG at a cluster"
    )]
    NoConfig(#[source] InferConfigError),
    /// The configuration was found but a client could not be built from it.
    #[error(
        "cannot build a Kubernetes client for {address} ({source}); check the kubeconfig's certificates and credentials"
    )]
    Client {
        /// The API server's address.
        address: String,
        /// What kube reported.
        #[source]
        source: kube::Error,
    },
}

impl KubernetesBackend {
    /// A backend for `pools` on the API server this process runs under (kube's
    /// `Config::infer`: the pod's service account in a cluster, else `KUBECONFIG` or
    /// `~/.kube/config`). `namespace` unset: the configuration's own (the pod's
    /// namespace in a cluster, else the kubeconfig context's, else `default`).
    pub async fn connect(
        namespace: Option<&str>,
        pools: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Self, ConnectError> {
        let config = Config::infer().await.map_err(ConnectError::NoConfig)?;
        Self::from_config(config, namespace, pools)
    }

    /// A backend for `pools` on the API server `config` names, each call bounded by
    /// [`CALL_TIMEOUT`] and not retried by the client (the Supervisor retries with its
    /// own backoff). `namespace` unset: `config`'s default namespace.
    pub fn from_config(
        mut config: Config,
        namespace: Option<&str>,
        pools: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Self, ConnectError> {
        config.connect_timeout = Some(CALL_TIMEOUT);
        config.read_timeout = Some(CALL_TIMEOUT);
        config.write_timeout = Some(CALL_TIMEOUT);
        // Count the read timeout from each request, not from when a pooled connection
        // went idle.
        config.reset_reader_on_write = true;
        config.default_retry = false;
        let namespace = namespace.map_or_else(|| config.default_namespace.clone(), str::to_string);
        let address = config.cluster_url.to_string();
        let client = Client::try_from(config).map_err(|source| ConnectError::Client {
            address: address.clone(),
            source,
        })?;
        Ok(Self::new(client, namespace, address, pools))
    }
}
