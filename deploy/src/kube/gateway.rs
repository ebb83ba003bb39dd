//! The front door: the gateway Deployment, the `marie-gateway` Service, its HPA on CPU
//! and memory, its PodDisruptionBudget and an optional Ingress.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::container::{env, joining_env, store_url_env};
use super::pod::{
    CLUSTER_PORT_NAME, HTTP_PORT_NAME, PodShape, meta, pod_spec, pod_template, selector,
    selector_labels,
};
use super::to_i32;
use crate::config::StartupProbe;
use crate::plan::{Component, Plan, quantities};

/// Seconds the Ingress waits for an answer beyond the API's longest long poll.
pub const READ_TIMEOUT_MARGIN_SECS: u64 = 10;
/// Bytes a request carries beyond its document (multipart framing, JSON).
pub const BODY_MARGIN_BYTES: u64 = 64 * 1024;

const NAME: &str = "marie-gateway";

/// A target reference to the Deployment `name`.
pub fn deployment_ref(name: &str) -> CrossVersionObjectReference {
    CrossVersionObjectReference {
        api_version: Some("apps/v1".into()),
        kind: "Deployment".into(),
        name: name.into(),
    }
}

/// A rolling update with these bounds.
pub fn rolling(max_surge: i32, max_unavailable: i32) -> DeploymentStrategy {
    DeploymentStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateDeployment {
            max_surge: Some(IntOrString::Int(max_surge)),
            max_unavailable: Some(IntOrString::Int(max_unavailable)),
        }),
    }
}

/// The gateway Deployment: no `replicas` when the HPA owns them.
pub fn deployment(plan: &Plan) -> Deployment {
    let k = &plan.cluster.kubernetes;
    let g = &k.gateway;
    let requests = quantities(&g.resources.requests);
    let limits = quantities(&g.resources.limits);
    let mut extra_env = joining_env(plan);
    // A gateway is ready when it can take requests, not when every pool has an
    // executor: a GPU node still provisioning must not take the front door down.
    extra_env.push(env("MARIE_HTTP__READY_REQUIRES_EXECUTORS", "false"));
    if plan.shared_store() {
        // Gateways commit submits to Postgres themselves.
        extra_env.push(store_url_env(plan));
    }
    let spec = pod_spec(
        plan,
        PodShape {
            component: Component::Gateway,
            pool: None,
            image: &k.image,
            args: ["node", "--role", "gateway"].map(String::from).into(),
            env: extra_env,
            shutdown_delay_secs: plan.front_shutdown_delay_secs,
            drain_timeout_secs: plan.cluster.drain_timeout_secs,
            grace_secs: plan.front_grace_secs,
            startup: StartupProbe {
                initial_delay_seconds: 0,
                period_seconds: 2,
                failure_threshold: 30,
            },
            requests: &requests,
            limits: &limits,
            spread: true,
            data_claim: None,
        },
    );
    Deployment {
        metadata: meta(plan, NAME, Some(Component::Gateway), None),
        spec: Some(DeploymentSpec {
            replicas: (!g.autoscaling.enabled).then(|| to_i32(g.replicas)),
            revision_history_limit: Some(3),
            strategy: Some(rolling(1, 0)),
            selector: selector(selector_labels(Component::Gateway, None)),
            template: pod_template(Component::Gateway, None, None, spec),
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// The Service `marie-gateway`: the cluster port and `http`.
pub fn service(plan: &Plan) -> Service {
    let port = |name: &str, port: u16, protocol: &str| ServicePort {
        name: Some(name.into()),
        port: i32::from(port),
        target_port: Some(IntOrString::String(name.into())),
        app_protocol: Some(protocol.into()),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    };
    Service {
        metadata: meta(plan, NAME, Some(Component::Gateway), None),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector_labels(Component::Gateway, None)),
            session_affinity: Some("None".into()),
            ports: Some(vec![
                port(CLUSTER_PORT_NAME, plan.cluster.cluster_port, "tcp"),
                port(
                    HTTP_PORT_NAME,
                    plan.cluster.kubernetes.gateway.http_port,
                    "http",
                ),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The HPA on CPU and memory, when enabled.
pub fn hpa(plan: &Plan) -> Option<HorizontalPodAutoscaler> {
    let a = &plan.cluster.kubernetes.gateway.autoscaling;
    let utilization = |name: &str, percent: u32| MetricSpec {
        type_: "Resource".into(),
        resource: Some(ResourceMetricSource {
            name: name.into(),
            target: MetricTarget {
                type_: "Utilization".into(),
                average_utilization: Some(to_i32(percent)),
                ..MetricTarget::default()
            },
        }),
        ..MetricSpec::default()
    };
    a.enabled.then(|| HorizontalPodAutoscaler {
        metadata: meta(plan, NAME, Some(Component::Gateway), None),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: deployment_ref(NAME),
            min_replicas: Some(to_i32(a.min_replicas)),
            max_replicas: to_i32(a.max_replicas),
            metrics: Some(vec![
                utilization("cpu", a.target_cpu_utilization_percentage),
                utilization("memory", a.target_memory_utilization_percentage),
            ]),
            ..HorizontalPodAutoscalerSpec::default()
        }),
        ..HorizontalPodAutoscaler::default()
    })
}

/// `marie-gateway-pdb`: the guide's `minAvailable`.
pub fn pdb(plan: &Plan) -> PodDisruptionBudget {
    let min = plan.cluster.kubernetes.gateway.pdb_min_available;
    PodDisruptionBudget {
        metadata: meta(plan, "marie-gateway-pdb", Some(Component::Gateway), None),
        spec: Some(PodDisruptionBudgetSpec {
            min_available: Some(IntOrString::Int(to_i32(min))),
            selector: Some(selector(selector_labels(Component::Gateway, None))),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

/// nginx's body limit: the largest document plus the request's framing, in whole
/// mebibytes rounded up (`11m` for the default 10 MiB).
pub fn proxy_body_size(max_payload_bytes: u64) -> String {
    let mib = (max_payload_bytes + BODY_MARGIN_BYTES).div_ceil(1024 * 1024);
    format!("{mib}m")
}

/// nginx's read and send timeouts: the longest long poll plus a margin.
pub fn proxy_timeout_secs(long_poll_secs: u64) -> u64 {
    long_poll_secs + READ_TIMEOUT_MARGIN_SECS
}

/// The Ingress `marie-ingress`, when enabled.
pub fn ingress(plan: &Plan) -> Option<Ingress> {
    let i = &plan.cluster.kubernetes.gateway.ingress;
    if !i.enabled {
        return None;
    }
    let timeout = proxy_timeout_secs(plan.cluster.long_poll_secs).to_string();
    let mut annotations = BTreeMap::from([
        (
            "nginx.ingress.kubernetes.io/proxy-body-size".to_owned(),
            proxy_body_size(plan.cluster.max_payload_bytes),
        ),
        (
            "nginx.ingress.kubernetes.io/proxy-read-timeout".to_owned(),
            timeout.clone(),
        ),
        (
            "nginx.ingress.kubernetes.io/proxy-send-timeout".to_owned(),
            timeout,
        ),
    ]);
    annotations.extend(i.annotations.clone());
    let mut metadata = meta(plan, "marie-ingress", Some(Component::Gateway), None);
    metadata.annotations = Some(annotations);
    Some(Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: Some(i.class_name.clone()),
            tls: (!i.tls_secret.is_empty()).then(|| {
                vec![IngressTLS {
                    hosts: Some(vec![i.host.clone()]),
                    secret_name: Some(i.tls_secret.clone()),
                }]
            }),
            rules: Some(vec![IngressRule {
                host: Some(i.host.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/".into()),
                        path_type: "Prefix".into(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: NAME.into(),
                                port: Some(ServiceBackendPort {
                                    name: Some(HTTP_PORT_NAME.into()),
                                    ..ServiceBackendPort::default()
                                }),
                            }),
                            ..IngressBackend::default()
                        },
                    }],
                }),
            }]),
            ..IngressSpec::default()
        }),
        ..Ingress::default()
    })
}
