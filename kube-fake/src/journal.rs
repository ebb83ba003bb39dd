//! What the server and its simulated ReplicaSets and kubelet did, in order, with times:
//! the record a test reads to explain what happened (or print when it fails).

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// One thing that happened.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    /// Time since the server started.
    pub since_start: Duration,
    /// Wall-clock time.
    pub at: SystemTime,
    /// What happened.
    pub event: JournalEvent,
}

/// Why a pod's process was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminationCause {
    /// The ReplicaSet chose it on scale-down.
    ScaleDown,
    /// The pod was deleted (`DELETE …/pods/{name}` or [`crate::FakeApiServer::delete_pod`]).
    Deleted,
    /// The server stopped.
    ServerStopped,
}

/// The events of the journal.
#[derive(Debug, Clone, PartialEq)]
pub enum JournalEvent {
    /// An HTTP request and its answer.
    Request {
        /// HTTP method.
        method: String,
        /// Path and query.
        path: String,
        /// The authenticated user, None when the token was missing or unknown.
        user: Option<String>,
        /// HTTP status of the answer.
        status: u16,
    },
    /// A Deployment's `spec.replicas` changed.
    Scaled {
        /// Deployment name.
        deployment: String,
        /// Replicas before.
        from: i32,
        /// Replicas after.
        to: i32,
        /// Who wrote it.
        by: String,
    },
    /// The ReplicaSet created a pod.
    PodCreated {
        /// Deployment name.
        deployment: String,
        /// Pod name.
        pod: String,
    },
    /// The kubelet started the pod's process (again, when `restart_count` > 0).
    ContainerStarted {
        /// Pod name.
        pod: String,
        /// Process id.
        pid: u32,
        /// The http port handed to the pod runner.
        http_port: u16,
        /// Restarts before this start.
        restart_count: i32,
    },
    /// The process could not be started.
    ContainerFailedToStart {
        /// Pod name.
        pod: String,
        /// The spawn error.
        error: String,
    },
    /// The Ready condition changed (from the `/readyz` probe).
    ReadinessChanged {
        /// Pod name.
        pod: String,
        /// Ready now.
        ready: bool,
    },
    /// The process exited without being asked to (a crash, or [`crate::FakeApiServer::kill_container`]);
    /// the kubelet restarts it under the same pod name.
    ContainerExited {
        /// Pod name.
        pod: String,
        /// Exit status as Rust prints it ("exit status: 1", "signal: 9 (SIGKILL)").
        status: String,
    },
    /// The ReplicaSet chose this pod to remove on scale-down.
    ScaleDownVictim {
        /// Deployment name.
        deployment: String,
        /// Pod name.
        pod: String,
        /// Its ranking key: ready, deletion cost, creation order.
        ready: bool,
        /// `controller.kubernetes.io/pod-deletion-cost` (0 when absent).
        deletion_cost: i32,
    },
    /// The pod got its deletionTimestamp; its process was sent SIGTERM.
    PodTerminating {
        /// Pod name.
        pod: String,
        /// Why.
        cause: TerminationCause,
        /// The grace period before SIGKILL.
        grace: Duration,
    },
    /// The grace period ran out: SIGKILL.
    GracePeriodExpired {
        /// Pod name.
        pod: String,
    },
    /// The pod is gone from the API (its process has exited).
    PodRemoved {
        /// Pod name.
        pod: String,
        /// How its last process ended, None if it never started.
        status: Option<String>,
    },
}

impl fmt::Display for JournalEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:>9.3}s ", self.since_start.as_secs_f64())?;
        match &self.event {
            JournalEvent::Request {
                method,
                path,
                user,
                status,
            } => {
                write!(
                    f,
                    "{method} {path} -> {status} ({})",
                    user.as_deref().unwrap_or("anonymous")
                )
            }
            JournalEvent::Scaled {
                deployment,
                from,
                to,
                by,
            } => write!(f, "scaled {deployment} {from} -> {to} by {by}"),
            JournalEvent::PodCreated { deployment, pod } => {
                write!(f, "created pod {pod} of {deployment}")
            }
            JournalEvent::ContainerStarted {
                pod,
                pid,
                http_port,
                restart_count,
            } => {
                write!(
                    f,
                    "started {pod}: pid {pid}, http port {http_port}, restarts {restart_count}"
                )
            }
            JournalEvent::ContainerFailedToStart { pod, error } => {
                write!(f, "could not start {pod}: {error}")
            }
            JournalEvent::ReadinessChanged { pod, ready } => write!(f, "{pod} ready = {ready}"),
            JournalEvent::ContainerExited { pod, status } => {
                write!(f, "{pod} exited on its own ({status}); restarting")
            }
            JournalEvent::ScaleDownVictim {
                deployment,
                pod,
                ready,
                deletion_cost,
            } => {
                write!(
                    f,
                    "scale-down of {deployment} chose {pod} (ready {ready}, deletion cost {deletion_cost})"
                )
            }
            JournalEvent::PodTerminating { pod, cause, grace } => {
                write!(
                    f,
                    "terminating {pod} ({cause:?}): SIGTERM, SIGKILL after {grace:?}"
                )
            }
            JournalEvent::GracePeriodExpired { pod } => {
                write!(f, "{pod} outlived its grace period: SIGKILL")
            }
            JournalEvent::PodRemoved { pod, status } => {
                write!(
                    f,
                    "removed pod {pod} ({})",
                    status.as_deref().unwrap_or("never started")
                )
            }
        }
    }
}

/// The append-only journal.
#[derive(Debug)]
pub(crate) struct Journal {
    started: Instant,
    entries: Mutex<Vec<JournalEntry>>,
}

impl Journal {
    pub fn new() -> Self {
        Journal {
            started: Instant::now(),
            entries: Mutex::new(Vec::new()),
        }
    }

    pub fn record(&self, event: JournalEvent) {
        tracing::debug!(?event, "kube-fake");
        let entry = JournalEntry {
            since_start: self.started.elapsed(),
            at: SystemTime::now(),
            event,
        };
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(entry);
    }

    pub fn entries(&self) -> Vec<JournalEntry> {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
