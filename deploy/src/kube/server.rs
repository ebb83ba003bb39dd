//! The server: a StatefulSet of one pod that owns the store (a ReadWriteOnce volume
//! while the store is SQLite) and its headless Service, which publishes the pod before
//! it is ready (executors register through it before the server turns ready).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    EnvVar, PersistentVolumeClaim, PersistentVolumeClaimSpec, Service, ServicePort, ServiceSpec,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::container::{env, env_field};
use super::pod::{
    CLUSTER_PORT_NAME, PodShape, meta, pod_spec, pod_template, selector, selector_labels,
};
use crate::config::{ServerConfig, StartupProbe};
use crate::plan::{Component, Plan, quantities, server_address};

/// The headless Service `marie-server`.
pub fn service(plan: &Plan) -> Service {
    Service {
        metadata: meta(plan, "marie-server", Some(Component::Server), None),
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
            spread: false,
            data_claim: claim,
        },
    );
    StatefulSet {
        metadata: meta(plan, "marie-server", Some(Component::Server), None),
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            service_name: Some("marie-server".into()),
            pod_management_policy: Some("OrderedReady".into()),
            selector: selector(selector_labels(Component::Server, None)),
            template: pod_template(Component::Server, None, None, spec),
            volume_claim_templates: claim.map(|name| vec![data_claim(name, &k.server)]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

/// The server's own environment: its stable address, and where it scales pools, the
/// namespace of their Deployments (its own).
fn server_env(plan: &Plan) -> Vec<EnvVar> {
    let mut vars = vec![env(
        "MARIE_CLUSTER__ADVERTISE",
        server_address(plan.cluster),
    )];
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
