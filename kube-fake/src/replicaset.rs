//! The ReplicaSet controller, simplified: keeps each Deployment's live pods at
//! `spec.replicas`, naming new pods `<deployment>-<pod-template-hash>-<5 random>`, and on
//! scale-down deletes the pods the real controller would pick first.

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use tokio::sync::mpsc;

use crate::cluster::Cluster;
use crate::journal::{JournalEvent, TerminationCause};
use crate::kubelet;
use crate::pod;
use crate::store::{Key, PodRecord, Store};

/// How often the loop looks even when nothing woke it.
const RESYNC: Duration = Duration::from_millis(200);

/// The characters Kubernetes uses in generated names (no vowels, no look-alikes).
const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Runs until the server stops.
pub(crate) async fn run(cluster: Arc<Cluster>) {
    let mut shutdown = cluster.shutdown.subscribe();
    loop {
        if cluster.stopping() {
            return;
        }
        reconcile(&cluster);
        tokio::select! {
            _ = cluster.changed.notified() => {}
            _ = tokio::time::sleep(RESYNC) => {}
            _ = shutdown.changed() => {}
        }
    }
}

fn reconcile(cluster: &Arc<Cluster>) {
    let mut store = cluster.store();
    let deployments: Vec<(Key, Deployment)> = store
        .deployments
        .iter()
        .map(|(k, d)| (k.clone(), d.clone()))
        .collect();
    for (key, deployment) in deployments {
        let wanted = deployment
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1)
            .max(0) as usize;
        let mut active: Vec<(&Key, &PodRecord)> = store
            .pods
            .iter()
            .filter(|((ns, _), r)| {
                *ns == key.0 && r.deployment == key.1 && !pod::is_terminating(&r.pod)
            })
            .collect();
        if active.len() < wanted {
            for _ in active.len()..wanted {
                create_pod(cluster, &mut store, &key, &deployment);
            }
        } else if active.len() > wanted {
            active.sort_by(|a, b| deletion_order(a.1, b.1));
            let victims: Vec<(Key, bool, i32)> = active[..active.len() - wanted]
                .iter()
                .map(|(k, r)| {
                    (
                        (*k).clone(),
                        pod::is_ready(&r.pod),
                        pod::deletion_cost(&r.pod),
                    )
                })
                .collect();
            for (victim, ready, deletion_cost) in victims {
                cluster.journal.record(JournalEvent::ScaleDownVictim {
                    deployment: key.1.clone(),
                    pod: victim.1.clone(),
                    ready,
                    deletion_cost,
                });
                kubelet::terminate(
                    cluster,
                    &mut store,
                    &victim,
                    TerminationCause::ScaleDown,
                    None,
                );
            }
        }
    }
}

/// The ReplicaSet controller's ranking of pods to delete (`ActivePodsWithRanks.Less`): the
/// pod that orders first goes first. Not modelled: unscheduled pods (every pod here is
/// bound to the one node), pods doubled up on a node, and the logarithmic bucketing of
/// ages (`LogarithmicScaleDown`), so ages compare exactly.
pub(crate) fn deletion_order(a: &PodRecord, b: &PodRecord) -> Ordering {
    let phase = |r: &PodRecord| match pod::phase(&r.pod) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    };
    let (ready_a, ready_b) = (pod::is_ready(&a.pod), pod::is_ready(&b.pod));
    phase(a)
        .cmp(&phase(b))
        .then(ready_a.cmp(&ready_b))
        .then(pod::deletion_cost(&a.pod).cmp(&pod::deletion_cost(&b.pod)))
        .then(if ready_a && ready_b {
            b.ready_since.cmp(&a.ready_since)
        } else {
            Ordering::Equal
        })
        .then(pod::restart_count(&b.pod).cmp(&pod::restart_count(&a.pod)))
        .then(b.created.cmp(&a.created))
}

fn create_pod(cluster: &Arc<Cluster>, store: &mut Store, key: &Key, deployment: &Deployment) {
    let hash = template_hash(deployment);
    let name = loop {
        let name = format!("{}-{hash}-{}", key.1, random_suffix());
        if !store.pods.contains_key(&(key.0.clone(), name.clone())) {
            break name;
        }
    };
    let http_port = match free_port(store) {
        Ok(port) => port,
        Err(e) => {
            tracing::warn!(error = %e, "no free loopback port for a new pod; retrying on the next pass");
            return;
        }
    };
    let pod_key = (key.0.clone(), name.clone());
    let (control, control_rx) = mpsc::unbounded_channel();
    let record = PodRecord {
        pod: pod::new_pod(deployment, &name, &hash, uuid::Uuid::new_v4().to_string()),
        deployment: key.1.clone(),
        created: store.next_created(),
        ready_since: None,
        http_port,
        pid: None,
        control,
    };
    store.insert_pod(pod_key.clone(), record);
    cluster.journal.record(JournalEvent::PodCreated {
        deployment: key.1.clone(),
        pod: name,
    });
    let task = kubelet::spawn(
        cluster.clone(),
        pod_key,
        deployment.clone(),
        http_port,
        control_rx,
    );
    cluster
        .kubelets
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(task);
}

/// `pod-template-hash`: a 32-bit hash of the template, its decimal digits written in the
/// safe alphabet (as the Deployment controller writes it).
fn template_hash(deployment: &Deployment) -> String {
    let template =
        serde_json::to_string(&deployment.spec.as_ref().map(|s| &s.template)).unwrap_or_default();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    template.hash(&mut hasher);
    let hash = hasher.finish() as u32;
    hash.to_string()
        .bytes()
        .map(|b| SAFE[usize::from(b) % SAFE.len()] as char)
        .collect()
}

fn random_suffix() -> String {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes[..5]
        .iter()
        .map(|b| SAFE[usize::from(*b) % SAFE.len()] as char)
        .collect()
}

/// A loopback port free now and not handed to another pod.
fn free_port(store: &Store) -> std::io::Result<u16> {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        if !store.pods.values().any(|r| r.http_port == port) {
            return Ok(port);
        }
    }
}
