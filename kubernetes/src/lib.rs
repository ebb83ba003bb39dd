//! The Supervisor's `kubernetes` backend: each pool the Supervisor scales is a
//! Deployment, `marie-executor-<pool>`, and the Supervisor sets its replicas.
//!
//! It talks to the Kubernetes API server (through `kube`), and to nothing else:
//! - reads and writes `spec.replicas` through the Deployment's `/scale` subresource,
//!   the same object `kubectl scale`, an HPA and KEDA write, so a second writer is
//!   noticed ([`ReplicaError::ScaledElsewhere`]) and the write itself is
//!   conflict-checked against the version read;
//! - when replicas go down, marks the drained executors' pods with the lowest
//!   `controller.kubernetes.io/pod-deletion-cost` and waits briefly for them to read
//!   not Ready, so the ReplicaSet removes those pods first.
//!
//! Why Deployments and `/scale` rather than pods the Supervisor creates itself: the
//! pools are Deployments that `kubectl get deploy`, rollouts and disruption budgets
//! handle as operators expect, and moving a pool between the Supervisor, KEDA and an
//! HPA changes only who writes `replicas`. `/scale` is all the Supervisor needs of a
//! Deployment, so its Role grants no more: `get`/`patch` on `deployments/scale` and
//! `list`/`watch`/`patch` on `pods` (no delete, no update). The price is a best-effort
//! choice of the pods removed: an executor on a pod removed instead drains on its
//! SIGTERM, so no work is lost.
//!
//! [`ReplicaError::ScaledElsewhere`]: marie_actors::supervisor::ReplicaError::ScaledElsewhere

#![warn(missing_docs)]

mod api;
mod backend;
mod connect;
mod deployment;
mod errors;
mod leaving;

pub use backend::KubernetesBackend;
pub use connect::{CALL_TIMEOUT, ConnectError};
pub use leaving::READY_WAIT;
