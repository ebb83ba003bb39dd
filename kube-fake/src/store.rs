//! The objects the server holds, the global resourceVersion counter, and the pod change
//! history that watches replay.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
use k8s_openapi::api::autoscaling::v1::{Scale, ScaleSpec, ScaleStatus};
use k8s_openapi::api::core::v1::Pod;
use tokio::sync::{broadcast, mpsc};

use crate::kubelet::Control;
use crate::pod;
use crate::rbac::Rbac;
use crate::selector::Labels;

/// (namespace, name).
pub(crate) type Key = (String, String);

/// How many pod changes watches can resume from.
const HISTORY: usize = 10_000;

/// A pod and what the simulator keeps beside it.
#[derive(Debug)]
pub(crate) struct PodRecord {
    pub pod: Pod,
    pub deployment: String,
    /// Orders pods by creation more finely than `creationTimestamp`'s seconds.
    pub created: u64,
    /// When the Ready condition last turned True.
    pub ready_since: Option<Instant>,
    pub http_port: u16,
    pub pid: Option<u32>,
    pub control: mpsc::UnboundedSender<Control>,
}

/// Watch event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    Added,
    Modified,
    Deleted,
}

/// One pod change, as watches see it.
#[derive(Debug)]
pub(crate) struct PodChange {
    pub resource_version: u64,
    pub change: Change,
    pub old: Option<Pod>,
    pub new: Pod,
}

/// A receiver of pod changes as they happen.
pub(crate) type Changes = broadcast::Receiver<Arc<PodChange>>;

/// The server's objects.
#[derive(Debug)]
pub(crate) struct Store {
    resource_version: u64,
    created: u64,
    pub deployments: BTreeMap<Key, Deployment>,
    pub pods: BTreeMap<Key, PodRecord>,
    history: VecDeque<Arc<PodChange>>,
    changes: broadcast::Sender<Arc<PodChange>>,
    pub rbac: Rbac,
}

impl Store {
    pub fn new() -> Self {
        Store {
            resource_version: 1,
            created: 0,
            deployments: BTreeMap::new(),
            pods: BTreeMap::new(),
            history: VecDeque::new(),
            changes: broadcast::channel(4096).0,
            rbac: Rbac::default(),
        }
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.resource_version
    }

    fn bump(&mut self) -> String {
        self.resource_version += 1;
        self.resource_version.to_string()
    }

    /// The next creation sequence number.
    pub fn next_created(&mut self) -> u64 {
        self.created += 1;
        self.created
    }

    /// Creates or replaces a Deployment (its status and identity are kept on replace).
    pub fn put_deployment(&mut self, key: Key, mut deployment: Deployment) {
        let spec = deployment.spec.get_or_insert_with(Default::default);
        spec.replicas.get_or_insert(1);
        match self.deployments.get(&key) {
            Some(old) => {
                deployment.metadata.uid = old.metadata.uid.clone();
                deployment.metadata.creation_timestamp = old.metadata.creation_timestamp.clone();
                deployment.status = old.status.clone();
                let generation = old.metadata.generation.unwrap_or(1);
                let changed = old.spec != deployment.spec;
                deployment.metadata.generation = Some(generation + i64::from(changed));
            }
            None => {
                deployment.metadata.uid = Some(uuid::Uuid::new_v4().to_string());
                deployment.metadata.creation_timestamp = Some(pod::now());
                deployment.metadata.generation = Some(1);
            }
        }
        deployment.metadata.resource_version = Some(self.bump());
        self.deployments.insert(key.clone(), deployment);
        self.refresh_status(&key);
    }

    /// Sets a Deployment's `spec.replicas`; returns the replicas before.
    pub fn set_replicas(&mut self, key: &Key, replicas: i32) -> Option<i32> {
        let rv = self.resource_version + 1;
        let deployment = self.deployments.get_mut(key)?;
        let spec = deployment.spec.get_or_insert_with(Default::default);
        let before = spec.replicas.unwrap_or(1);
        if before != replicas {
            spec.replicas = Some(replicas);
            deployment.metadata.generation = Some(deployment.metadata.generation.unwrap_or(1) + 1);
            deployment.metadata.resource_version = Some(rv.to_string());
            self.resource_version = rv;
            self.refresh_status(key);
        }
        Some(before)
    }

    /// Recomputes a Deployment's status from its pods, bumping its resourceVersion when it
    /// changed (as the Deployment controller's status writes do).
    pub fn refresh_status(&mut self, key: &Key) {
        let (namespace, name) = key;
        let active: Vec<&Pod> = self
            .pods
            .iter()
            .filter(|((ns, _), r)| {
                ns == namespace && &r.deployment == name && !pod::is_terminating(&r.pod)
            })
            .map(|(_, r)| &r.pod)
            .collect();
        let replicas = active.len() as i32;
        let ready = active.iter().filter(|p| pod::is_ready(p)).count() as i32;
        let rv = self.resource_version + 1;
        let Some(deployment) = self.deployments.get_mut(key) else {
            return;
        };
        let wanted = deployment
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1);
        let status = DeploymentStatus {
            observed_generation: deployment.metadata.generation,
            replicas: Some(replicas),
            updated_replicas: Some(replicas),
            ready_replicas: Some(ready),
            available_replicas: Some(ready),
            unavailable_replicas: Some((wanted - ready).max(0)),
            ..Default::default()
        };
        if deployment.status.as_ref() != Some(&status) {
            deployment.status = Some(status);
            deployment.metadata.resource_version = Some(rv.to_string());
            self.resource_version = rv;
        }
    }

    /// The Deployment's `/scale` subresource as autoscaling/v1 Scale.
    pub fn scale(&self, key: &Key) -> Option<Scale> {
        let deployment = self.deployments.get(key)?;
        let spec = deployment.spec.as_ref();
        let selector = spec
            .map(|s| Labels::from_selector(&s.selector).to_string())
            .unwrap_or_default();
        let mut metadata = deployment.metadata.clone();
        metadata.labels = None;
        metadata.annotations = None;
        metadata.generation = None;
        metadata.managed_fields = None;
        Some(Scale {
            metadata,
            spec: Some(ScaleSpec {
                replicas: spec.and_then(|s| s.replicas),
            }),
            status: Some(ScaleStatus {
                replicas: deployment
                    .status
                    .as_ref()
                    .and_then(|s| s.replicas)
                    .unwrap_or(0),
                selector: Some(selector),
            }),
        })
    }

    /// Adds a new pod (ADDED).
    pub fn insert_pod(&mut self, key: Key, mut record: PodRecord) {
        record.pod.metadata.resource_version = Some(self.bump());
        let change = PodChange {
            resource_version: self.resource_version,
            change: Change::Added,
            old: None,
            new: record.pod.clone(),
        };
        let deployment = (key.0.clone(), record.deployment.clone());
        self.pods.insert(key, record);
        self.publish(change);
        self.refresh_status(&deployment);
    }

    /// Changes a pod through `edit` (MODIFIED when anything changed); returns false when
    /// there is no such pod.
    pub fn update_pod(&mut self, key: &Key, edit: impl FnOnce(&mut PodRecord)) -> bool {
        let rv = self.resource_version + 1;
        let Some(record) = self.pods.get_mut(key) else {
            return false;
        };
        let old = record.pod.clone();
        edit(record);
        if record.pod == old {
            return true;
        }
        let now_ready = pod::is_ready(&record.pod);
        if now_ready != pod::is_ready(&old) {
            record.ready_since = now_ready.then(Instant::now);
        }
        record.pod.metadata.resource_version = Some(rv.to_string());
        self.resource_version = rv;
        let change = PodChange {
            resource_version: rv,
            change: Change::Modified,
            old: Some(old),
            new: record.pod.clone(),
        };
        let deployment = (key.0.clone(), record.deployment.clone());
        self.publish(change);
        self.refresh_status(&deployment);
        true
    }

    /// Removes a pod (DELETED).
    pub fn remove_pod(&mut self, key: &Key) -> Option<PodRecord> {
        let mut record = self.pods.remove(key)?;
        let old = record.pod.clone();
        record.pod.metadata.resource_version = Some(self.bump());
        let change = PodChange {
            resource_version: self.resource_version,
            change: Change::Deleted,
            old: Some(old),
            new: record.pod.clone(),
        };
        self.publish(change);
        self.refresh_status(&(key.0.clone(), record.deployment.clone()));
        Some(record)
    }

    fn publish(&mut self, change: PodChange) {
        let change = Arc::new(change);
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(change.clone());
        // No receiver is fine: nobody watches.
        let _ = self.changes.send(change);
    }

    /// The pod changes after `resource_version`, and a receiver of the ones to come; None
    /// when the history no longer reaches back that far.
    pub fn changes_since(&self, resource_version: u64) -> Option<(Vec<Arc<PodChange>>, Changes)> {
        let oldest = self
            .history
            .front()
            .map_or(self.resource_version, |c| c.resource_version);
        if resource_version + 1 < oldest && self.history.len() == HISTORY {
            return None;
        }
        let backlog = self
            .history
            .iter()
            .filter(|c| c.resource_version > resource_version)
            .cloned()
            .collect();
        Some((backlog, self.subscribe()))
    }

    /// A receiver of the pod changes to come.
    pub fn subscribe(&self) -> Changes {
        self.changes.subscribe()
    }
}
