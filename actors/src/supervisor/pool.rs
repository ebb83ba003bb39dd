//! What the Supervisor is given per pool: its policy's settings and who carries its
//! decisions out.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use marie_decide::autoscale::{AutoscaleSettings, REPLICA_RESYNC_MS};

use super::backend::ScaleBackend;
use super::replicas::ReplicaBackend;

/// How often a declarative pool's replica count is read again by default, to notice
/// another writer.
pub const REPLICA_RESYNC: Duration = Duration::from_millis(REPLICA_RESYNC_MS);

/// Who carries a pool's decisions out.
#[derive(Clone)]
pub enum PoolBackend {
    /// A backend that starts and releases executors one by one, by name (local,
    /// process, external).
    Executors(Arc<dyn ScaleBackend>),
    /// A platform that keeps the pool's replica count (a Kubernetes Deployment).
    Replicas {
        /// The platform.
        backend: Arc<dyn ReplicaBackend>,
        /// How often the count is read again to notice another writer.
        resync: Duration,
    },
}

impl PoolBackend {
    /// A declarative pool read again every [`REPLICA_RESYNC`].
    pub fn replicas(backend: Arc<dyn ReplicaBackend>) -> Self {
        PoolBackend::Replicas {
            backend,
            resync: REPLICA_RESYNC,
        }
    }

    /// The backend's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            PoolBackend::Executors(backend) => backend.name(),
            PoolBackend::Replicas { backend, .. } => backend.name(),
        }
    }
}

impl fmt::Debug for PoolBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One pool the Supervisor scales.
#[derive(Clone, Debug)]
pub struct ScaledPool {
    /// The pool's name.
    pub name: String,
    /// Slots of each executor.
    pub slots: u32,
    /// The policy's settings.
    pub settings: AutoscaleSettings,
    /// A first guess of the time from asking for an executor to its first free slot,
    /// until one is measured, in milliseconds.
    pub cold_start_guess_ms: u64,
    /// Who carries the pool's decisions out.
    pub backend: PoolBackend,
}
