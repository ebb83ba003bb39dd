//! The `marie` container every pod runs: its arguments, environment, ports, probes,
//! resources, restricted security context and mounts.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction,
    ObjectFieldSelector, Probe, ResourceRequirements, SecretKeySelector, SecurityContext,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::pod::{CLUSTER_PORT_NAME, CONFIG_PATH, COOKIE_DIR, DATA_DIR, HTTP_PORT_NAME, PodShape};
use super::to_i32;
use crate::config::StartupProbe;
use crate::plan::Plan;

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

/// The key of the store Secret that holds the Postgres URL.
pub const STORE_URL_KEY: &str = "url";

/// The Postgres store's URL, password included, from the store Secret: never in the
/// ConfigMap nor in the manifests.
pub fn store_url_env(plan: &Plan) -> EnvVar {
    EnvVar {
        name: "MARIE_STORE__URL".into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: plan.cluster.kubernetes.store_secret.clone(),
                key: STORE_URL_KEY.into(),
                ..SecretKeySelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// Every server pod's stable address as `MARIE_CLUSTER__SEEDS`: any of them lets a
/// node in.
pub fn seeds_env(plan: &Plan) -> EnvVar {
    let quoted: Vec<String> = plan
        .server_addresses()
        .iter()
        .map(|a| format!("\"{a}\""))
        .collect();
    env("MARIE_CLUSTER__SEEDS", format!("[{}]", quoted.join(",")))
}

/// Gateways and executors: reached at their pod IP, joining through the servers.
pub fn joining_env(plan: &Plan) -> Vec<EnvVar> {
    vec![
        env_field("POD_IP", "status.podIP"),
        env(
            "MARIE_CLUSTER__ADVERTISE",
            format!("$(POD_IP):{}", plan.cluster.cluster_port),
        ),
        seeds_env(plan),
    ]
}

/// The container of one role.
pub(super) fn container(plan: &Plan, shape: PodShape) -> Container {
    let mut args = shape.args;
    args.extend(["--config", CONFIG_PATH, "--log-format", "json"].map(String::from));
    let mut env_vars = node_env(shape.shutdown_delay_secs, shape.drain_timeout_secs);
    env_vars.extend(shape.env);
    Container {
        name: "marie".into(),
        image: Some(shape.image.into()),
        args: Some(args),
        ports: Some(ports(plan)),
        env: Some(env_vars),
        startup_probe: Some(startup_probe(shape.startup)),
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
        security_context: Some(security_context()),
        volume_mounts: Some(vec![
            mount("config", CONFIG_PATH, true, Some("cluster.toml")),
            mount("cookie", COOKIE_DIR, true, None),
            mount("data", DATA_DIR, false, None),
            mount("tmp", "/tmp", false, None),
        ]),
        ..Container::default()
    }
}

/// What every node reads from its environment: its name, data directory, shutdown,
/// cookie, and listening on every interface.
fn node_env(shutdown_delay_secs: u64, drain_timeout_secs: u64) -> Vec<EnvVar> {
    vec![
        env_field("MARIE_NODE__NAME", "metadata.name"),
        env("MARIE_NODE__DATA_DIR", DATA_DIR),
        env(
            "MARIE_NODE__DRAIN_TIMEOUT_SECS",
            drain_timeout_secs.to_string(),
        ),
        env(
            "MARIE_NODE__SHUTDOWN_DELAY_SECS",
            shutdown_delay_secs.to_string(),
        ),
        env("MARIE_CLUSTER__HOST", "0.0.0.0"),
        env("MARIE_CLUSTER__COOKIE_FILE", format!("{COOKIE_DIR}/cookie")),
        env("MARIE_HTTP__HOST", "0.0.0.0"),
    ]
}

/// The cluster port and the HTTP port, by name.
fn ports(plan: &Plan) -> Vec<ContainerPort> {
    [
        (CLUSTER_PORT_NAME, plan.cluster.cluster_port),
        (HTTP_PORT_NAME, plan.cluster.http_port),
    ]
    .map(|(name, port)| ContainerPort {
        name: Some(name.into()),
        container_port: i32::from(port),
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    })
    .into()
}

/// `/healthz` until the node has started, as patient as the plan says.
fn startup_probe(startup: StartupProbe) -> Probe {
    Probe {
        initial_delay_seconds: (startup.initial_delay_seconds > 0)
            .then(|| to_i32(startup.initial_delay_seconds)),
        period_seconds: Some(to_i32(startup.period_seconds)),
        failure_threshold: Some(to_i32(startup.failure_threshold)),
        ..http_probe("/healthz")
    }
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

fn quantities(map: &BTreeMap<String, String>) -> Option<BTreeMap<String, Quantity>> {
    (!map.is_empty()).then(|| {
        map.iter()
            .map(|(k, v)| (k.clone(), Quantity(v.clone())))
            .collect()
    })
}

/// No privilege escalation, a read-only root filesystem, no capabilities.
fn security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Capabilities::default()
        }),
        ..SecurityContext::default()
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
