//! What every Marie pod shares: labels, the container (image, args, environment,
//! probes, restricted security context), the config, cookie and data volumes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector, PodAffinityTerm, PodAntiAffinity,
    PodSecurityContext, PodSpec, Probe, ResourceRequirements, SeccompProfile, SecretVolumeSource,
    SecurityContext, Toleration, TopologySpreadConstraint, Volume, VolumeMount,
    WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::config::StartupProbe;
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

/// A plain environment variable.
pub fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

/// An environment variable from the pod's own fields (downward API).
pub fn env_field(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field_path.into(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// Gateways and executors: reached at their pod IP, joining through the server.
pub fn joining_env(plan: &Plan) -> Vec<EnvVar> {
    vec![
        env_field("POD_IP", "status.podIP"),
        env(
            "MARIE_CLUSTER__ADVERTISE",
            format!("$(POD_IP):{}", plan.cluster.cluster_port),
        ),
        env(
            "MARIE_CLUSTER__SEEDS",
            format!("[\"{}\"]", crate::plan::server_address(plan.cluster)),
        ),
    ]
}

fn quantities(map: &BTreeMap<String, String>) -> Option<BTreeMap<String, Quantity>> {
    (!map.is_empty()).then(|| {
        map.iter()
            .map(|(k, v)| (k.clone(), Quantity(v.clone())))
            .collect()
    })
}

fn http_probe(path: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(HTTP_PORT_NAME.into()),
            ..HTTPGetAction::default()
        }),
        ..Probe::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool, sub_path: Option<&str>) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        sub_path: sub_path.map(Into::into),
        ..VolumeMount::default()
    }
}

/// The pod spec of one role.
pub fn pod_spec(plan: &Plan, shape: PodShape) -> PodSpec {
    let cluster = plan.cluster;
    let k = &cluster.kubernetes;
    let mut env_vars = vec![
        env_field("MARIE_NODE__NAME", "metadata.name"),
        env("MARIE_NODE__DATA_DIR", DATA_DIR),
        env(
            "MARIE_NODE__DRAIN_TIMEOUT_SECS",
            shape.drain_timeout_secs.to_string(),
        ),
        env(
            "MARIE_NODE__SHUTDOWN_DELAY_SECS",
            shape.shutdown_delay_secs.to_string(),
        ),
        env("MARIE_CLUSTER__HOST", "0.0.0.0"),
        env("MARIE_CLUSTER__COOKIE_FILE", format!("{COOKIE_DIR}/cookie")),
        env("MARIE_HTTP__HOST", "0.0.0.0"),
    ];
    env_vars.extend(shape.env);
    let mut args = shape.args;
    args.extend(["--config", CONFIG_PATH, "--log-format", "json"].map(String::from));
    let container = Container {
        name: "marie".into(),
        image: Some(shape.image.into()),
        args: Some(args),
        ports: Some(vec![
            ContainerPort {
                name: Some(CLUSTER_PORT_NAME.into()),
                container_port: i32::from(cluster.cluster_port),
                protocol: Some("TCP".into()),
                ..ContainerPort::default()
            },
            ContainerPort {
                name: Some(HTTP_PORT_NAME.into()),
                container_port: i32::from(cluster.http_port),
                protocol: Some("TCP".into()),
                ..ContainerPort::default()
            },
        ]),
        env: Some(env_vars),
        startup_probe: Some(Probe {
            initial_delay_seconds: (shape.startup.initial_delay_seconds > 0)
                .then(|| clamp(shape.startup.initial_delay_seconds)),
            period_seconds: Some(clamp(shape.startup.period_seconds)),
            failure_threshold: Some(clamp(shape.startup.failure_threshold)),
            ..http_probe("/healthz")
        }),
        liveness_probe: Some(Probe {
            period_seconds: Some(10),
            failure_threshold: Some(3),
            ..http_probe("/healthz")
        }),
        readiness_probe: Some(Probe {
            period_seconds: Some(5),
            failure_threshold: Some(3),
            ..http_probe("/readyz")
        }),
        resources: Some(ResourceRequirements {
            requests: quantities(shape.requests),
            limits: quantities(shape.limits),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![
            mount("config", CONFIG_PATH, true, Some("cluster.toml")),
            mount("cookie", COOKIE_DIR, true, None),
            mount("data", DATA_DIR, false, None),
            mount("tmp", "/tmp", false, None),
        ]),
        ..Container::default()
    };
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
                secret_name: Some(k.cookie_secret.clone()),
                default_mode: Some(0o440),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        },
        empty_dir("tmp"),
    ];
    if shape.data_claim.is_none() {
        volumes.push(empty_dir("data"));
    }
    let selector_labels = selector_labels(shape.component, shape.pool);
    PodSpec {
        service_account_name: Some(match shape.component {
            Component::Server => "marie-server".into(),
            _ => "marie".into(),
        }),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        termination_grace_period_seconds: Some(i64::try_from(shape.grace_secs).unwrap_or(i64::MAX)),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(k.security.run_as_user),
            run_as_group: Some(k.security.run_as_group),
            fs_group: Some(k.security.run_as_group),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..SeccompProfile::default()
            }),
            ..PodSecurityContext::default()
        }),
        affinity: shape.spread.then(|| Affinity {
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
        }),
        topology_spread_constraints: shape.spread.then(|| {
            vec![TopologySpreadConstraint {
                max_skew: 1,
                topology_key: "topology.kubernetes.io/zone".into(),
                when_unsatisfiable: "ScheduleAnyway".into(),
                label_selector: Some(selector(selector_labels)),
                ..TopologySpreadConstraint::default()
            }]
        }),
        containers: vec![container],
        volumes: Some(volumes),
        ..PodSpec::default()
    }
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

fn clamp(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
