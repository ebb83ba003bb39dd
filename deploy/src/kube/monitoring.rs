//! What Prometheus and the network see: the PodMonitor that scrapes every Marie pod,
//! the NetworkPolicy that admits only Marie, the ingress controller and Prometheus,
//! and the prometheus-adapter rules that serve the External metrics of HPA pools.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use super::crd::{PodMetricsEndpoint, PodMonitor, PodMonitorSpec};
use super::pod::{CLUSTER_PORT_NAME, HTTP_PORT_NAME, meta, selector};
use crate::plan::Plan;

fn part_of_marie() -> LabelSelector {
    selector(BTreeMap::from([(
        "app.kubernetes.io/part-of".to_owned(),
        "marie".to_owned(),
    )]))
}

/// The PodMonitor `marie`, when enabled. Each pod is scraped once, so `sum()` over
/// the queue gauges (exported by the server alone) is exact.
pub fn pod_monitor(plan: &Plan) -> Option<PodMonitor> {
    let p = &plan.cluster.kubernetes.prometheus;
    if !p.pod_monitor {
        return None;
    }
    let mut metadata = meta(plan, "marie", None, None);
    if let Some(labels) = metadata.labels.as_mut() {
        labels.extend(p.pod_monitor_labels.clone());
    }
    Some(PodMonitor {
        api_version: "monitoring.coreos.com/v1".into(),
        kind: "PodMonitor".into(),
        metadata,
        spec: PodMonitorSpec {
            selector: part_of_marie(),
            pod_metrics_endpoints: vec![PodMetricsEndpoint {
                port: HTTP_PORT_NAME.into(),
                path: "/metrics".into(),
                interval: "5s".into(),
                honor_labels: false,
            }],
        },
    })
}

/// The NetworkPolicy `marie`, when enabled: Marie's pods reach each other on both
/// ports; the listed namespaces reach the HTTP port. Egress stays open (DNS, OTLP).
pub fn network_policy(plan: &Plan) -> Option<NetworkPolicy> {
    let n = &plan.cluster.kubernetes.network_policy;
    if !n.enabled {
        return None;
    }
    let port = |name: &str| NetworkPolicyPort {
        port: Some(IntOrString::String(name.into())),
        protocol: Some("TCP".into()),
        ..NetworkPolicyPort::default()
    };
    let mut rules = vec![NetworkPolicyIngressRule {
        from: Some(vec![NetworkPolicyPeer {
            pod_selector: Some(part_of_marie()),
            ..NetworkPolicyPeer::default()
        }]),
        ports: Some(vec![port(CLUSTER_PORT_NAME), port(HTTP_PORT_NAME)]),
    }];
    if !n.http_from_namespaces.is_empty() {
        rules.push(NetworkPolicyIngressRule {
            from: Some(
                n.http_from_namespaces
                    .iter()
                    .map(|ns| NetworkPolicyPeer {
                        namespace_selector: Some(selector(BTreeMap::from([(
                            "kubernetes.io/metadata.name".to_owned(),
                            ns.clone(),
                        )]))),
                        ..NetworkPolicyPeer::default()
                    })
                    .collect(),
            ),
            ports: Some(vec![port(HTTP_PORT_NAME)]),
        });
    }
    Some(NetworkPolicy {
        metadata: meta(plan, "marie", None, None),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(part_of_marie()),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(rules),
            ..NetworkPolicySpec::default()
        }),
    })
}

/// Values of the prometheus-adapter chart (`rules.external`): Marie's queue gauges as
/// External metrics, summed per pool in the asking HPA's namespace.
#[derive(Serialize)]
pub struct AdapterValues {
    rules: AdapterRules,
}

#[derive(Serialize)]
struct AdapterRules {
    external: Vec<ExternalRule>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExternalRule {
    series_query: String,
    resources: RuleResources,
    metrics_query: String,
}

#[derive(Serialize)]
struct RuleResources {
    overrides: BTreeMap<String, BTreeMap<String, String>>,
}

/// The adapter's rules, when enabled.
pub fn adapter_values(plan: &Plan) -> Option<AdapterValues> {
    let p = &plan.cluster.kubernetes.prometheus;
    if !p.adapter_rules {
        return None;
    }
    let label = &p.namespace_label;
    Some(AdapterValues {
        rules: AdapterRules {
            external: vec![ExternalRule {
                series_query: format!(
                    "{{__name__=~\"marie_(jobs_pending|jobs_active|executor_slots_used|executor_slots_available|executor_slots_capacity|supervisor_desired_executors)\",executor!=\"\",{label}!=\"\"}}"
                ),
                resources: RuleResources {
                    overrides: BTreeMap::from([(
                        label.clone(),
                        BTreeMap::from([("resource".to_owned(), "namespace".to_owned())]),
                    )]),
                },
                metrics_query: "sum(<<.Series>>{<<.LabelMatchers>>}) by (executor)".into(),
            }],
        },
    })
}
