//! The API server the backend talks to: the client, the namespace its objects live in
//! and the address messages name.

use kube::Client;

/// A client for one namespace of one API server.
#[derive(Clone)]
pub(crate) struct ApiServer {
    /// The client (cheap to clone: it shares one connection pool).
    pub client: Client,
    /// The namespace of the pools' Deployments and pods.
    pub namespace: String,
    /// The API server's address, for messages (`https://10.96.0.1:443`).
    pub address: String,
}
