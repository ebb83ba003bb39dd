//! Declarative backends: the platform keeps a replica count per pool (a Kubernetes
//! Deployment's `spec.replicas`) and starts and replaces executors itself, under names
//! it picks. The Supervisor sets the count; executors show up under their own names
//! when they register, and a crashed one that the platform replaces is counted once:
//! supply is the count the platform is set to, not the starts the Supervisor made.

use async_trait::async_trait;

/// What went wrong when reading or setting a pool's replicas.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// Somebody else set the pool's replicas (an HPA or KEDA pointed at the same
    /// object, a person with `kubectl scale`). The Supervisor stops writing to the pool
    /// rather than fight, until it is told to resume.
    #[error(
        "{object} is being scaled by someone else: Marie set {expected} replicas and found {found}; give the pool one scaler (the Supervisor, KEDA or an HPA), then resume the Supervisor's scaling of it"
    )]
    ScaledElsewhere {
        /// The object, as `kubectl` names it (`deployment/marie-executor-extract`).
        object: String,
        /// The count the Supervisor set last.
        expected: u32,
        /// The count found.
        found: u32,
    },
    /// The platform refused the request or could not be reached. Retried with backoff;
    /// the rest of the cluster keeps running and queueing.
    #[error("{object}: {problem}; {fix}")]
    Failed {
        /// The object, as `kubectl` names it.
        object: String,
        /// What kind of failure (the Supervisor logs each kind once until it clears).
        kind: ReplicaFailure,
        /// What happened, with the platform's own message.
        problem: String,
        /// What to do about it.
        fix: String,
    },
}

/// The kinds of [`ReplicaError::Failed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReplicaFailure {
    /// The API server did not answer (connection refused, timeout, 5xx).
    Unreachable,
    /// The server's identity lacks a permission (HTTP 403).
    Forbidden,
    /// The object does not exist (HTTP 404).
    Missing,
    /// The object changed between read and write (HTTP 409): read again and retry.
    Conflict,
    /// Anything else the API server refused.
    Refused,
}

/// A platform that keeps a replica count per pool.
#[async_trait]
pub trait ReplicaBackend: Send + Sync + 'static {
    /// What the backend is called in logs (`kubernetes`).
    fn name(&self) -> &'static str;

    /// The object behind `pool`, as `kubectl` names it (for logs and messages).
    fn object(&self, pool: &str) -> String;

    /// The replica count `pool` is set to now (what was asked for, not what runs).
    async fn replicas(&self, pool: &str) -> Result<u32, ReplicaError>;

    /// Sets `pool` to `to` replicas, provided it is still at `from` (the count the
    /// Supervisor set or adopted last); otherwise [`ReplicaError::ScaledElsewhere`].
    /// When going down, `leaving` names drained executors whose pods are to be the
    /// ones removed.
    async fn set_replicas(
        &self,
        pool: &str,
        from: u32,
        to: u32,
        leaving: &[String],
    ) -> Result<(), ReplicaError>;
}
