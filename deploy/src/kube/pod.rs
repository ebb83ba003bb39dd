//! What every Marie pod shares: labels, the pod template, its security context, its
//! spread over hosts and zones, the config, cookie and data volumes, and the `marie`
//! container (in `container.rs`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, ConfigMapVolumeSource, EmptyDirVolumeSource, EnvVar, PodAffinityTerm,
    PodAntiAffinity, PodSecurityContext, PodSpec, PodTemplateSpec, SeccompProfile,
    SecretVolumeSource, Toleration, TopologySpreadConstraint, Volume, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::container::container;
use super::rbac::SERVER_ACCOUNT;

use crate::config::{SecurityConfig, StartupProbe};
use crate::plan::{Component, Plan};

/// Where the image keeps the binary's config, as the node's `--config`.
pub const CONFIG_PATH: &str = "/etc/marie/cluster.toml";
/// The data directory inside a pod.
pub const DATA_DIR: &str = "/var/lib/marie";
/// Directory the cookie Secret is mounted in.
pub const COOKIE_DIR: &str = "/etc/marie/cookie";
/// Name of the cluster port on containers and Services.
pub const CLUSTER_PORT_NAME: &str = "tcp-cluster";
/// Name of the HTTP port on containers and Services.
pub const HTTP_PORT_NAME: &str = "http";

/// Labels every object carries.
pub fn common_labels(component: Option<Component>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "marie".to_owned()),
        ("app.kubernetes.io/part-of".to_owned(), "marie".to_owned()),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "marie".to_owned(),
        ),
    ]);
    if let Some(component) = component {
        labels.insert(
            "app.kubernetes.io/component".into(),
            component.as_str().into(),
        );
    }
    labels
}

/// Metadata of a namespaced object.
pub fn meta(
    plan: &Plan,
    name: &str,
    component: Option<Component>,
    pool: Option<&str>,
) -> ObjectMeta {
    let mut labels = common_labels(component);
    if let Some(pool) = pool {
        labels.insert("marie.ai/pool".into(), pool.into());
    }
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(plan.cluster.kubernetes.namespace.clone()),
        labels: Some(labels),
        ..ObjectMeta::default()
    }
}

/// The labels a workload selects its pods by (the guide's `app`, and the pool).
pub fn selector_labels(component: Component, pool: Option<&str>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([("app".to_owned(), format!("marie-{}", component.as_str()))]);
    if let Some(pool) = pool {
        labels.insert("marie.ai/pool".into(), pool.into());
    }
    labels
}

/// A selector on `labels`.
pub fn selector(labels: BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels),
        ..LabelSelector::default()
    }
}

/// The pod template's labels: the selector's and the common ones.
pub fn pod_labels(component: Component, pool: Option<&str>) -> BTreeMap<String, String> {
    let mut labels = common_labels(Some(component));
    labels.extend(selector_labels(component, pool));
    labels
}

/// What differs between the pods of the three roles.
pub struct PodShape<'a> {
    /// The role.
    pub component: Component,
    /// The executor pool.
    pub pool: Option<&'a str>,
    /// The image.
    pub image: &'a str,
    /// `marie` arguments.
    pub args: Vec<String>,
    /// Environment beyond the shared one.
    pub env: Vec<EnvVar>,
    /// `node.shutdown_delay_secs`.
    pub shutdown_delay_secs: u64,
    /// `node.drain_timeout_secs`.
    pub drain_timeout_secs: u64,
    /// `terminationGracePeriodSeconds`.
    pub grace_secs: u64,
    /// The startup probe.
    pub startup: StartupProbe,
    /// Requests.
    pub requests: &'a BTreeMap<String, String>,
    /// Limits.
    pub limits: &'a BTreeMap<String, String>,
    /// Spread the pods over hosts and zones (not for the single server).
    pub spread: bool,
    /// Where the data directory comes from: a claim template's name, or an emptyDir.
    pub data_claim: Option<&'a str>,
}

/// The pod spec of one role.
pub fn pod_spec(plan: &Plan, shape: PodShape) -> PodSpec {
    let selector_labels = selector_labels(shape.component, shape.pool);
    PodSpec {
        service_account_name: Some(match shape.component {
            Component::Server => SERVER_ACCOUNT.into(),
            _ => "marie".into(),
        }),
        // A token only where the Supervisor calls the API, bound to its Role.
        automount_service_account_token: Some(
            shape.component == Component::Server && plan.server_calls_api(),
        ),
        enable_service_links: Some(false),
        termination_grace_period_seconds: Some(i64::try_from(shape.grace_secs).unwrap_or(i64::MAX)),
        security_context: Some(security_context(&plan.cluster.kubernetes.security)),
        affinity: shape.spread.then(|| host_anti_affinity(&selector_labels)),
        topology_spread_constraints: shape.spread.then(|| zone_spread(selector_labels)),
        volumes: Some(volumes(plan, shape.data_claim.is_none())),
        containers: vec![container(plan, shape)],
        ..PodSpec::default()
    }
}

/// The pod template of one role: its labels, annotations and spec.
pub fn pod_template(
    component: Component,
    pool: Option<&str>,
    annotations: Option<BTreeMap<String, String>>,
    spec: PodSpec,
) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels(component, pool)),
            annotations,
            ..ObjectMeta::default()
        }),
        spec: Some(spec),
    }
}

/// The configured non-root user and group, and the runtime's seccomp profile.
fn security_context(security: &SecurityConfig) -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(security.run_as_user),
        run_as_group: Some(security.run_as_group),
        fs_group: Some(security.run_as_group),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

/// Rather not two pods of the role on one host.
fn host_anti_affinity(selector_labels: &BTreeMap<String, String>) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        label_selector: Some(selector(selector_labels.clone())),
                        topology_key: "kubernetes.io/hostname".into(),
                        ..PodAffinityTerm::default()
                    },
                },
            ]),
            ..PodAntiAffinity::default()
        }),
        ..Affinity::default()
    }
}

/// The role's pods spread evenly over zones, where the scheduler can.
fn zone_spread(selector_labels: BTreeMap<String, String>) -> Vec<TopologySpreadConstraint> {
    vec![TopologySpreadConstraint {
        max_skew: 1,
        topology_key: "topology.kubernetes.io/zone".into(),
        when_unsatisfiable: "ScheduleAnyway".into(),
        label_selector: Some(selector(selector_labels)),
        ..TopologySpreadConstraint::default()
    }]
}

/// The config (from the plan's ConfigMap), the cookie Secret, `/tmp`, and the data
/// directory unless a claim template provides it.
fn volumes(plan: &Plan, data_on_empty_dir: bool) -> Vec<Volume> {
    let mut volumes = vec![
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: plan.config_map.clone(),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "cookie".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(plan.cluster.kubernetes.cookie_secret.clone()),
                default_mode: Some(0o440),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        },
        empty_dir("tmp"),
    ];
    if data_on_empty_dir {
        volumes.push(empty_dir("data"));
    }
    volumes
}

/// The tolerations of a pool.
pub fn tolerations(configured: &[crate::config::TolerationConfig]) -> Option<Vec<Toleration>> {
    (!configured.is_empty()).then(|| {
        configured
            .iter()
            .map(|t| Toleration {
                key: Some(t.key.clone()).filter(|k| !k.is_empty()),
                operator: Some(t.operator.clone()).filter(|o| !o.is_empty()),
                value: t.value.clone(),
                effect: t.effect.clone(),
                ..Toleration::default()
            })
            .collect()
    })
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}
