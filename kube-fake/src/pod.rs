//! Pods as the ReplicaSet creates them and the kubelet reports them: the fields of
//! `metadata` and `status` the simulator writes, and the ones ranking reads.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, Pod, PodCondition, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;

/// The annotation the ReplicaSet controller ranks scale-down victims by.
pub const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// The node every simulated pod is scheduled to.
const NODE: &str = "kube-fake";

/// Now, at the second precision the API server stores times with.
pub(crate) fn now() -> Time {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Time(
        Timestamp::from_second(i64::try_from(seconds).unwrap_or_default())
            .unwrap_or(Timestamp::UNIX_EPOCH),
    )
}

/// A new pod of `deployment`'s template, Pending until the kubelet starts its process.
pub(crate) fn new_pod(
    deployment: &Deployment,
    name: &str,
    template_hash: &str,
    uid: String,
) -> Pod {
    let template = deployment
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let template_meta = template.metadata.unwrap_or_default();
    let mut labels = template_meta.labels.unwrap_or_default();
    labels.insert("pod-template-hash".into(), template_hash.into());
    let replica_set = format!(
        "{}-{template_hash}",
        deployment.metadata.name.as_deref().unwrap_or_default()
    );
    let mut spec = template.spec.unwrap_or_default();
    spec.node_name = Some(NODE.into());
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: deployment.metadata.namespace.clone(),
            uid: Some(uid),
            labels: Some(labels),
            annotations: template_meta.annotations,
            creation_timestamp: Some(now()),
            generate_name: Some(format!("{replica_set}-")),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: replica_set,
                uid: format!(
                    "{}-rs",
                    deployment.metadata.uid.as_deref().unwrap_or_default()
                ),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        spec: Some(spec),
        status: Some(PodStatus {
            phase: Some("Pending".into()),
            conditions: Some(vec![condition("PodScheduled", true)]),
            ..Default::default()
        }),
    }
}

fn condition(kind: &str, status: bool) -> PodCondition {
    PodCondition {
        type_: kind.into(),
        status: if status { "True" } else { "False" }.into(),
        last_transition_time: Some(now()),
        ..Default::default()
    }
}

fn container_name(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .map(|c| c.name.clone())
        .unwrap_or_default()
}

/// The container is running (again): phase Running, not ready until the probe says so.
pub(crate) fn set_running(
    pod: &mut Pod,
    restart_count: i32,
    last_exit: Option<ContainerStateTerminated>,
) {
    let name = container_name(pod);
    let status = pod.status.get_or_insert_with(Default::default);
    status.phase = Some("Running".into());
    status.pod_ip = Some("127.0.0.1".into());
    status.host_ip = Some("127.0.0.1".into());
    status.start_time.get_or_insert_with(now);
    status.conditions = Some(vec![
        condition("PodScheduled", true),
        condition("Initialized", true),
        condition("ContainersReady", false),
        condition("Ready", false),
    ]);
    status.container_statuses = Some(vec![ContainerStatus {
        name,
        ready: false,
        restart_count,
        started: Some(true),
        state: Some(ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(now()),
            }),
            ..Default::default()
        }),
        last_state: last_exit.map(|t| ContainerState {
            terminated: Some(t),
            ..Default::default()
        }),
        ..Default::default()
    }]);
}

/// The container exited and waits to be restarted.
pub(crate) fn set_waiting(
    pod: &mut Pod,
    reason: &str,
    last_exit: Option<ContainerStateTerminated>,
) {
    set_ready(pod, false);
    let name = container_name(pod);
    let status = pod.status.get_or_insert_with(Default::default);
    let statuses = status.container_statuses.get_or_insert_with(Vec::new);
    if statuses.is_empty() {
        statuses.push(ContainerStatus {
            name,
            ..Default::default()
        });
    }
    for container in statuses {
        container.ready = false;
        container.started = Some(false);
        container.state = Some(ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.into()),
                message: None,
            }),
            ..Default::default()
        });
        if last_exit.is_some() {
            container.last_state = last_exit.clone().map(|t| ContainerState {
                terminated: Some(t),
                ..Default::default()
            });
        }
    }
}

/// Sets the Ready and ContainersReady conditions (and the container's `ready`).
pub(crate) fn set_ready(pod: &mut Pod, ready: bool) {
    let status = pod.status.get_or_insert_with(Default::default);
    for c in status.conditions.iter_mut().flatten() {
        if (c.type_ == "Ready" || c.type_ == "ContainersReady") && (c.status == "True") != ready {
            *c = condition(&c.type_, ready);
        }
    }
    for container in status.container_statuses.iter_mut().flatten() {
        container.ready = ready;
    }
}

/// The terminated state of a container that exited with `status`.
pub(crate) fn terminated(
    status: &std::process::ExitStatus,
    started: Option<Time>,
) -> ContainerStateTerminated {
    use std::os::unix::process::ExitStatusExt;
    ContainerStateTerminated {
        exit_code: status.code().unwrap_or(128 + status.signal().unwrap_or(0)),
        signal: status.signal(),
        reason: Some(
            if status.success() {
                "Completed"
            } else {
                "Error"
            }
            .into(),
        ),
        started_at: started,
        finished_at: Some(now()),
        ..Default::default()
    }
}

/// When the running container started, for its next `lastState`.
pub(crate) fn started_at(pod: &Pod) -> Option<Time> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .state
        .as_ref()?
        .running
        .as_ref()?
        .started_at
        .clone()
}

/// Whether the pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The pod's phase ("Pending", "Running", …).
pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// The pod's `controller.kubernetes.io/pod-deletion-cost`, 0 when absent or not a number.
pub fn deletion_cost(pod: &Pod) -> i32 {
    annotation(pod, DELETION_COST)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Restarts of the pod's container.
pub fn restart_count(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
        .unwrap_or(0)
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a: &BTreeMap<String, String>| a.get(key))
        .map(String::as_str)
}

/// Whether the pod has been deleted and waits for its process to exit.
pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}
