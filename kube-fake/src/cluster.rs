//! The state every part of the server shares: options, objects, journal, tokens.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::journal::{Journal, JournalEvent};
use crate::options::FakeOptions;
use crate::rbac::User;
use crate::status::{ApiError, Target};
use crate::store::Store;

/// Shared by the HTTP handlers, the ReplicaSet loop and the kubelet tasks.
pub(crate) struct Cluster {
    pub options: FakeOptions,
    store: Mutex<Store>,
    pub journal: Journal,
    /// Wakes the ReplicaSet loop after a change.
    pub changed: Notify,
    /// Bearer token → user.
    pub tokens: BTreeMap<String, User>,
    /// Becomes true when the server stops.
    pub shutdown: watch::Sender<bool>,
    /// The kubelet task of every pod ever created.
    pub kubelets: Mutex<Vec<JoinHandle<()>>>,
}

impl Cluster {
    pub fn new(options: FakeOptions, tokens: BTreeMap<String, User>) -> Self {
        Cluster {
            options,
            store: Mutex::new(Store::new()),
            journal: Journal::new(),
            changed: Notify::new(),
            tokens,
            shutdown: watch::channel(false).0,
            kubelets: Mutex::new(Vec::new()),
        }
    }

    /// The objects, locked (never held across an await).
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }
}

impl Cluster {
    /// Writes a Deployment's `spec.replicas` (journaled, and the ReplicaSet woken).
    pub fn scale(
        &self,
        store: &mut Store,
        key: &crate::store::Key,
        replicas: i32,
        by: &str,
    ) -> Result<(), ApiError> {
        let target = Target {
            group: "apps",
            resource: "deployments",
            name: &key.1,
        };
        if replicas < 0 {
            return Err(ApiError::invalid(
                target,
                &format!(
                    "spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0"
                ),
            ));
        }
        let from = store
            .set_replicas(key, replicas)
            .ok_or_else(|| ApiError::not_found(target))?;
        if from != replicas {
            self.journal.record(JournalEvent::Scaled {
                deployment: key.1.clone(),
                from,
                to: replicas,
                by: by.into(),
            });
            self.changed.notify_one();
        }
        Ok(())
    }
}
