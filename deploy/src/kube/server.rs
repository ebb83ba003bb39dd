//! The server: a StatefulSet whose pods have stable names under a headless Service,
//! which publishes them before they are ready (executors register through them before
//! the server turns ready). With SQLite, one pod owns the store on a ReadWriteOnce
//! volume; with Postgres, several pods share it — one leader, hot standbys — started
//! in parallel, spread over hosts and zones, one at a time disrupted (a PDB).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    EnvVar, PersistentVolumeClaim, PersistentVolumeClaimSpec, Service, ServicePort, ServiceSpec,
    VolumeResourceRequirements,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::container::{env, env_field, seeds_env, store_url_env};
use super::pod::{
    CLUSTER_PORT_NAME, PodShape, meta, pod_spec, pod_template, selector, selector_labels,
};
use super::to_i32;
use crate::config::{ServerConfig, StartupProbe};
use crate::plan::{Component, Plan, quantities, server_address};

const NAME: &str = "marie-server";

/// The headless Service `marie-server`.
pub fn service(plan: &Plan) -> Service {
    Service {
        metadata: meta(plan, NAME, Some(Component::Server), None),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector_labels(Component::Server, None)),
            ports: Some(vec![ServicePort {
                name: Some(CLUSTER_PORT_NAME.into()),
                port: i32::from(plan.cluster.cluster_port),
                target_port: Some(IntOrString::String(CLUSTER_PORT_NAME.into())),
                app_protocol: Some("tcp".into()),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The StatefulSet `marie-server`.
pub fn stateful_set(plan: &Plan) -> StatefulSet {
    let k = &plan.cluster.kubernetes;
    let requests = quantities(&k.server.resources.requests);
    let limits = quantities(&k.server.resources.limits);
    let claim = plan.persistent_store().then_some("data");
    let spec = pod_spec(
        plan,
        PodShape {
            component: Component::Server,
            pool: None,
            image: &k.image,
            args: ["node", "--role", "server"].map(String::from).into(),
            env: server_env(plan),
            shutdown_delay_secs: plan.front_shutdown_delay_secs,
            drain_timeout_secs: plan.cluster.drain_timeout_secs,
            grace_secs: plan.front_grace_secs,
            startup: StartupProbe {
                initial_delay_seconds: 0,
                period_seconds: 2,
                failure_threshold: 60,
            },
            requests: &requests,
            limits: &limits,
            spread: plan.server_replicas > 1,
            data_claim: claim,
        },
    );
    StatefulSet {
        metadata: meta(plan, NAME, Some(Component::Server), None),
        spec: Some(StatefulSetSpec {
            replicas: Some(to_i32(plan.server_replicas)),
            service_name: Some(NAME.into()),
            // Standbys need no leader to start: they wait for the lease in Postgres.
            pod_management_policy: Some(
                match plan.shared_store() {
                    true => "Parallel",
                    false => "OrderedReady",
                }
                .into(),
            ),
            selector: selector(selector_labels(Component::Server, None)),
            template: pod_template(Component::Server, None, None, spec),
            volume_claim_templates: claim.map(|name| vec![data_claim(name, &k.server)]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

/// `marie-server`, one server at a time disrupted, when there are several (a PDB on a
/// single pod would block every node drain).
pub fn pdb(plan: &Plan) -> Option<PodDisruptionBudget> {
    (plan.server_replicas > 1).then(|| PodDisruptionBudget {
        metadata: meta(plan, NAME, Some(Component::Server), None),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(selector(selector_labels(Component::Server, None))),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    })
}

/// The server's own environment: its stable address (its own pod's name under the
/// headless Service); with several servers, the others as seeds and readiness that
/// does not wait for executors; the store's URL from its Secret with Postgres; and
/// where it scales pools, the namespace of their Deployments (its own).
fn server_env(plan: &Plan) -> Vec<EnvVar> {
    // `MARIE_NODE__NAME` (the pod's name) comes first in the container's environment,
    // so Kubernetes expands it here.
    let mut vars = vec![env(
        "MARIE_CLUSTER__ADVERTISE",
        server_address(plan.cluster, "$(MARIE_NODE__NAME)"),
    )];
    if plan.server_replicas > 1 {
        // Every server runs a Gateway; a standby can take requests as soon as it
        // answers, and a server waiting for a pool scaled to zero must not stall a
        // rollout or a node drain.
        vars.push(seeds_env(plan));
        vars.push(env("MARIE_HTTP__READY_REQUIRES_EXECUTORS", "false"));
    }
    if plan.shared_store() {
        vars.push(store_url_env(plan));
    }
    if plan.server_calls_api() {
        vars.push(env_field(
            "MARIE_SUPERVISOR__KUBERNETES__NAMESPACE",
            "metadata.namespace",
        ));
    }
    vars
}

/// The claim template `name` of the server's data: one ReadWriteOnce volume of the
/// configured size and class (the cluster's default class when none is set).
fn data_claim(name: &str, server: &ServerConfig) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: Some(server.storage_class.clone()).filter(|s| !s.is_empty()),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(server.storage.clone()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}
