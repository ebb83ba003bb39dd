//! What an API call that went wrong means for the Supervisor: each `kube::Error` becomes
//! a [`ReplicaError::Failed`] of the right kind, naming the object, the verb the call
//! used and what to do about it.

use kube::Error;
use marie_actors::supervisor::{ReplicaError, ReplicaFailure};

use crate::api::ApiServer;

/// One request to the API server, described for messages: `patch` on
/// `deployments/scale` of `deployment/marie-executor-extract`.
pub(crate) struct Call {
    /// The RBAC verb (`get`, `list`, `watch`, `patch`).
    pub verb: &'static str,
    /// The RBAC resource (`deployments/scale`, `pods`).
    pub resource: &'static str,
    /// The object, as `kubectl` names it.
    pub object: String,
}

impl Call {
    /// The [`ReplicaError`] for `error`, which this call got from `server`.
    pub fn failed(self, server: &ApiServer, error: Error) -> ReplicaError {
        let (kind, problem, fix) = match error {
            Error::Api(status) => self.refused(server, status.code, &status.message),
            Error::HyperError(_) | Error::Service(_) | Error::ReadEvents(_) => (
                ReplicaFailure::Unreachable,
                format!(
                    "the API server at {} did not answer `{} {}`: {}",
                    server.address,
                    self.verb,
                    self.resource,
                    chain(&error)
                ),
                unreachable_fix(server),
            ),
            other => (
                ReplicaFailure::Refused,
                format!("`{} {}` failed: {}", self.verb, self.resource, chain(&other)),
                "check the server's Kubernetes client configuration (service account token, kubeconfig) and the API server's logs".to_string(),
            ),
        };
        ReplicaError::Failed {
            object: self.object,
            kind,
            problem,
            fix,
        }
    }

    /// Kind, problem and fix for an answer with HTTP status `code`.
    fn refused(
        &self,
        server: &ApiServer,
        code: u16,
        message: &str,
    ) -> (ReplicaFailure, String, String) {
        let (verb, resource, namespace) = (self.verb, self.resource, &server.namespace);
        match code {
            401 => (
                ReplicaFailure::Forbidden,
                format!("the API server did not accept the server's credentials for `{verb} {resource}`: {message}"),
                "run the server in the cluster under ServiceAccount marie-server (its token is mounted in the pod), or point KUBECONFIG at valid credentials".to_string(),
            ),
            403 => (
                ReplicaFailure::Forbidden,
                format!("the server may not `{verb} {resource}` in namespace {namespace}: {message}"),
                format!(
                    "the Role marie-supervisor rendered by `marie k8s render` grants `{verb} {resource}` and is bound to ServiceAccount marie-server: apply it (`kubectl apply -k k8s/`) and run the server under that ServiceAccount"
                ),
            ),
            404 => (
                ReplicaFailure::Missing,
                format!("not found in namespace {namespace}: {message}"),
                "apply the render (`kubectl apply -k k8s/`), or set this pool's scaler to one that does not need the Deployment".to_string(),
            ),
            409 => (
                ReplicaFailure::Conflict,
                format!("changed since it was read: {message}"),
                "read it again and retry".to_string(),
            ),
            code if code >= 500 => (
                ReplicaFailure::Unreachable,
                format!(
                    "the API server at {} answered `{verb} {resource}` with {code}: {message}",
                    server.address
                ),
                unreachable_fix(server),
            ),
            code => (
                ReplicaFailure::Refused,
                format!("the API server refused `{verb} {resource}` with {code}: {message}"),
                "fix what the API server's message names; the Supervisor retries".to_string(),
            ),
        }
    }
}

/// How to check an API server that does not answer.
fn unreachable_fix(server: &ApiServer) -> String {
    format!(
        "check that the API server at {0} is up and reachable from here (`kubectl --server {0} get --raw /readyz`); the Supervisor retries",
        server.address
    )
}

/// `error` and its sources, outermost first (a connection error's cause is in its
/// source), each said once: many errors repeat their source's text in their own.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}
